"""The `picogrid` command line: one sub-command per module in `node.cli`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib.metadata import PackageNotFoundError, version

from node.errors import UserError

# Each module registers its sub-command(s) with `register(subparsers)` and sets `func(args) -> int`.
COMMAND_MODULES = [
    "node.cli.init",
    "node.cli.run",
    "node.cli.join",
    "node.cli.audit_cmd",
    "node.cli.status",
    "node.cli.invite",
    "node.cli.keygen",
    "node.cli.charter",
    "node.cli.demo_cmd",
    "node.cli.hw",
    "node.cli.simulate",
    "node.cli.export",
]


def _version() -> str:
    try:
        return version("picogrid")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The `picogrid` argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="picogrid",
        description="PicoGrid: a peer-to-peer energy trading ledger node.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"picogrid {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `picogrid`; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except UserError as exc:
        print(f"picogrid: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
