"""`picogrid invite`: the admin signs an invite for one agent to join one grid."""

from __future__ import annotations

import argparse
from pathlib import Path

from ledger.membrane import make_invite
from node.cli.common import agent_hex_arg
from node.cli.community import load_admin


def register(sub: argparse._SubParsersAction) -> None:
    """Add `picogrid invite` to the command line."""
    p = sub.add_parser("invite", help="issue a membrane invite (admin only)",
                       description="Sign an invite that lets AGENT_HEX join grid G of a "
                                   "closed community. Prints the invite as hex.")
    p.add_argument("--admin-key", required=True, type=Path, help="the community's admin.key")
    p.add_argument("--community", required=True)
    p.add_argument("--grid", required=True)
    p.add_argument("agent", metavar="AGENT_HEX", help="the joining agent's id")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print a signed invite for an agent to join a closed community's grid."""
    agent = agent_hex_arg(args.agent)
    admin = load_admin(args.admin_key)
    print(make_invite(admin, args.community, args.grid, agent).hex())
    return 0
