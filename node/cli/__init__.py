"""The `picogrid` command: one module per subcommand, and the process launcher of the demo."""
