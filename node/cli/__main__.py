"""`python -m node.cli ...` runs the `picogrid` command."""

from node.cli.main import main

raise SystemExit(main())
