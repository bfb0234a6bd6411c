"""`picogrid invite`: the admin signs an invite for one agent to join one grid."""

from __future__ import annotations

import argparse
from pathlib import Path

from ledger.membrane import Binding, make_invite
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
    bind = p.add_argument_group("binding (protocol 2): the genesis must declare exactly these")
    bind.add_argument("--role", choices=("consumer", "generator", "storage"))
    bind.add_argument("--household")
    bind.add_argument("--capacity-wh", type=int, default=0)
    bind.add_argument("--max-power-w", type=int)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print a signed invite for an agent to join a closed community's grid."""
    agent = agent_hex_arg(args.agent)
    admin = load_admin(args.admin_key)
    given = (args.role, args.household, args.max_power_w)
    if any(v is not None for v in given) and not all(v is not None for v in given):
        print("a binding invite needs --role, --household and --max-power-w together")
        return 2
    binding = None
    if args.role is not None:
        binding = Binding(args.role, args.household, args.capacity_wh, args.max_power_w)
    print(make_invite(admin, args.community, args.grid, agent, binding).hex())
    return 0
