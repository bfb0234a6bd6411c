"""Devices of a running node: the status LED, the kit LEDs and meter sampling."""
