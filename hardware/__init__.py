"""PicoGrid hardware layer."""
