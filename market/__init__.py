"""PicoGrid market layer."""
