"""`picogrid audit URL`: verify a node's chains (and trades) without trusting it."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from ledger.keys import KeyFileError, load_identity
from node.audit.remote import AuditResult, safe_audit
from node.cli.common import agent_hex_arg, table
from node.errors import UserError
from node.p2p.session import RequestSigner


def register(sub: argparse._SubParsersAction) -> None:
    """Add `picogrid audit` to the command line."""
    p = sub.add_parser("audit", help="re-verify every chain a node serves",
                       description="Pull every chain (or one) from URL and re-verify it locally: "
                                   "signatures, links, schemas, membrane, forks, and every "
                                   "settlement recomputed from the signed orders. Exit 0 when "
                                   "all is valid, 1 when anything is forked, invalid or "
                                   "disputed, 2 when the node cannot be reached (or cannot "
                                   "fetch another grid's chains for the audit).")
    p.add_argument("url", metavar="URL")
    p.add_argument("--agent", metavar="HEX", help="audit only this agent's chain")
    p.add_argument("--grid", metavar="NAME", help="audit every chain of this grid and its "
                                                  "market (a node that keeps its own grid only "
                                                  "fetches another grid's for the audit)")
    p.add_argument("--admin", metavar="HEX", help="the admin key you expect (else taken from "
                                                  "the charter the node serves)")
    p.add_argument("--key", metavar="FILE", type=Path,
                   help="sign every request with this key (a member's agent.key or an auditor "
                        "key the charter lists): needed to audit a closed community")
    p.add_argument("--ca", metavar="FILE", help="trust this CA file for an https:// URL "
                                                "(default: the system's authorities)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Audit a node by URL; exit 0 when every chain and settlement checks out."""
    if not args.url.startswith(("http://", "https://")):
        raise UserError(f"expected an http:// or https:// URL, got {args.url!r}")
    agent = agent_hex_arg(args.agent) if args.agent else None
    admin = agent_hex_arg(args.admin) if args.admin else None
    signer = None
    if args.key is not None:
        try:
            signer = RequestSigner(load_identity(args.key))
        except KeyFileError as exc:
            raise UserError(str(exc)) from None
    if agent is not None and args.grid:
        raise UserError("--agent and --grid exclude each other")
    result = asyncio.run(safe_audit(args.url, agent, admin, signer, args.ca, args.grid))
    unreachable = result.error.startswith(("unreachable", "refused", "unavailable"))
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    else:
        print(render(result))
    if unreachable:
        return 2
    return 0 if result.ok else 1


def render(result: AuditResult) -> str:
    """The audit as text for a terminal."""
    data = result.to_json()
    lines = [f"audit of {result.url}"]
    if result.error:
        lines.append(f"error: {result.error}")
    if result.charter:
        how = "pinned with --admin" if result.admin_pinned else "taken from the node's charter"
        lines.append(f"community {data['community']!r}, charter version "
                     f"{data['charter_version']}, admin {data['admin']} ({how})")
    rows = [[a["name"], a["agent"][:16], a["grid"], a["role"], a["length"], a["status"],
             "; ".join(a["problems"])[:80]] for a in data["agents"]]
    if rows:
        lines.append(table(rows, ["agent", "id", "grid", "role", "length", "status", "problems"]))
    for missing in data.get("missing_members", []):
        lines.append(f"  ! member {missing} (listed by the charter) is not served by this node: "
                     "not validated")
    market = data.get("market") or {}
    if market:
        lines.append(f"settlements recomputed: {market.get('settlements_checked', 0)}, "
                     f"trades confirmed: {market.get('confirmed', 0)}, disputed: "
                     f"{market.get('disputed', 0)}, pending: {market.get('pending', 0)}")
        for problem in market.get("problems", [])[:50]:
            lines.append(f"  ! {problem}")
        for d in market.get("disputes", [])[:50]:
            lacked = "; ".join(f"{who} lacked {len(hs)} order(s): {', '.join(h[:12] for h in hs)}"
                               for who, hs in d["lacked"].items()) or "cause not found"
            lines.append(f"  disputed: interval {d['interval']} {d['seller']} -> {d['buyer']} "
                         f"{d['energy_wh']} Wh at {d['price']} ({lacked})")
        for note in market.get("notes", [])[:20]:
            lines.append(f"  note: {note}")
    for note in data.get("notes", []):
        lines.append(f"note: {note}")
    verdict = "ALL VALID" if result.ok else "PROBLEMS FOUND"
    lines.append(f"{len(rows)} agents, {data['forked']} forked, {data['invalid']} invalid: "
                 f"{verdict}")
    return "\n".join(lines)
