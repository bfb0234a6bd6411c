"""Sub-commands of the `picogrid` command line."""
