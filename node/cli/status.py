"""`picogrid status URL`: a node's peers, their sync lag, and chain heights."""

from __future__ import annotations

import argparse

from node.cli.common import table, with_client
from node.errors import UserError
from node.p2p.client import PeerClient, PeerError


def register(sub: argparse._SubParsersAction) -> None:
    """Add `picogrid status` to the command line."""
    p = sub.add_parser("status", help="peers, sync lag and chain heights of a node")
    p.add_argument("url", metavar="URL")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print a node's peers, sync lag and chain heights."""
    async def fetch(client: PeerClient) -> tuple[dict, list]:
        return await client.json("/v1/info"), await client.json("/v1/agents")

    try:
        info, agents = with_client(args.url, fetch)
    except PeerError as exc:
        print(f"cannot reach {args.url}: {exc}")
        return 2
    except UserError:
        raise
    print(f"{info['name']} ({info['role']}, grid {info['grid']}) in community "
          f"{info['community']!r}, agent {info['agent'][:16]}, up {info['uptime_s']} s")
    print(f"{info['actions_stored']} actions stored, {info['pending']} pending, charter version "
          f"{info['charter_version']}")
    print()
    peers = [[p["url"] or "(unreachable)", (p["agent"] or "")[:16],
              "yes" if p["live"] else "no", p["lag"], p["behind"],
              p["seconds_since_ok"], p["last_error"] or ""] for p in info["peers"]]
    print(table(peers, ["peer", "agent", "live", "we lack", "they lack", "last ok (s)",
                        "last error"]) if peers else "no peers known")
    print()
    rows = [[a["name"], a["id"][:16], a["grid"], a["role"], a["length"],
             "FORKED" if a["forked"] else "", a["url"] or ""] for a in agents]
    print(table(rows, ["agent", "id", "grid", "role", "height", "", "url"]))
    return 0
