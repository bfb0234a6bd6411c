"""`picogrid status URL`: a node's peers, their sync lag, and chain heights."""

from __future__ import annotations

import argparse
from pathlib import Path

from ledger.keys import KeyFileError, load_identity
from node.cli.common import table, with_client
from node.errors import UserError
from node.p2p.client import PeerClient, PeerError
from node.p2p.session import RequestSigner


def register(sub: argparse._SubParsersAction) -> None:
    """Add `picogrid status` to the command line."""
    p = sub.add_parser("status", help="peers, sync lag and chain heights of a node")
    p.add_argument("url", metavar="URL")
    p.add_argument("--key", metavar="FILE", type=Path,
                   help="sign the requests with this key (your node's agent.key): needed for "
                        "a node of a closed community")
    p.add_argument("--ca", metavar="FILE", help="trust this CA file for an https:// URL")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print a node's peers, sync lag and chain heights."""
    signer = None
    if args.key is not None:
        try:
            signer = RequestSigner(load_identity(args.key))
        except KeyFileError as exc:
            raise UserError(str(exc)) from None

    async def fetch(client: PeerClient) -> tuple[dict, list]:
        if signer is not None:  # the public charter names the community to sign for
            signer.community = (await client.charter()).community
        return await client.json("/v1/info"), await client.json("/v1/agents")

    try:
        info, agents = with_client(args.url, fetch, signer=signer, ca_file=args.ca)
    except PeerError as exc:
        hint = ": the community is closed, pass --key FILE (your node's agent.key)" \
            if exc.status in (401, 403) else ""
        print(f"cannot reach {args.url}: {exc}{hint}")
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
