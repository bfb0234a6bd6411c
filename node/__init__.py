"""PicoGrid node layer."""
