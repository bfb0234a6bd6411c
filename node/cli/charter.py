"""`picogrid charter`: the admin signs and publishes a new charter version."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ledger import codec
from ledger.chain import now_us
from ledger.charter import (
    MECHANISMS,
    Charter,
    CharterError,
    GridRules,
    charter_from_map,
    parse_charter,
)
from ledger.membrane import Membrane
from ledger.store import Store
from market.intervals import interval_at
from node.cli.common import agent_hex_arg, with_client
from node.cli.community import load_admin
from node.config import NodeConfig, load_config
from node.errors import UserError
from node.http.tls import tls_files
from node.p2p.client import PeerClient, PeerError

SETTABLE = ("interval_ms", "lead_ms", "grace_ms", "epoch_us", "effective_from", "view_ms",
            "final_ms", "exclude_intervals")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `picogrid charter` to the command line."""
    p = sub.add_parser("charter", help="sign and publish a new charter version (admin only)",
                       description="Sign a new version of the community charter with DIR's "
                                   "admin.key and publish it through DIR's node. It takes effect "
                                   "from a future interval (default: two intervals ahead).")
    p.add_argument("--dir", required=True, type=Path, help="the founding node's directory")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"change a setting: {', '.join(SETTABLE)}")
    p.add_argument("--grid", help="add or change this grid")
    p.add_argument("--mechanism", choices=MECHANISMS)
    p.add_argument("--retail", type=int)
    p.add_argument("--feed-in", type=int)
    p.add_argument("--community-price", type=int)
    p.add_argument("--household-price", type=int)
    p.add_argument("--max-order-wh", type=int, help="largest order of the grid (protocol 2 limit)")
    p.add_argument("--max-price", type=int, help="highest order price of the grid")
    p.add_argument("--max-capacity-wh", type=int, help="largest storage a genesis may declare")
    p.add_argument("--max-power-w", type=int, help="largest power a genesis may declare")
    p.add_argument("--invite-only", action="store_true", help="close the community")
    p.add_argument("--open", action="store_true", help="open the community to anyone")
    p.add_argument("--auditor", action="append", default=[], metavar="HEX",
                   help="let this key read the closed community, never post (repeatable)")
    p.add_argument("--remove-auditor", action="append", default=[], metavar="HEX",
                   help="take an auditor key off the charter (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Sign the next charter version with the admin key, and publish or save it."""
    cfg = load_config(args.dir)
    if not cfg.admin_key_path.exists():
        raise UserError(f"{cfg.admin_key_path} not found: only the admin can sign charters")
    admin = load_admin(cfg.admin_key_path)
    if admin.agent.hex() != cfg.admin:
        raise UserError("admin.key is not the key this community pins")
    current, held = _current_charter(cfg, admin.agent)
    if args.invite_only and args.open:
        raise UserError("--invite-only and --open contradict each other")
    m = _next_version_map(current, held, args)
    try:
        # Checked exactly as a peer will check it: from its canonical encoding.
        new = charter_from_map(codec.decode(codec.encode(m))).sign(admin)
    except (CharterError, codec.CodecError) as exc:  # a number beyond 64 bits fails either way
        raise UserError(f"charter refused: {exc}") from None
    assert new.signed is not None
    where = _publish(cfg, new.version, new.signed)
    print(f"charter version {new.version}, effective from interval {new.effective_from}: {where}")
    return 0


def _current_charter(cfg: NodeConfig, admin: bytes) -> tuple[Charter, set[bytes]]:
    """The newest charter this node holds, and every agent whose chain it holds."""
    store = Store(cfg.store_path, Membrane(cfg.community))
    try:
        signed = store.charters()
        current = parse_charter(signed[-1], admin) if signed else None
        held = set(store.heads())  # every chain this node admitted
    finally:
        store.close()
    if current is None:
        raise UserError("this node holds no charter yet")
    return current, held


def _next_version_map(current: Charter, held: set[bytes], args: argparse.Namespace) -> dict:
    """The next charter version's map: the current one with the command's changes."""
    m = current.to_map()
    m["version"] = current.version + 1
    m["effective_from"] = max(0, interval_at(current, now_us())) + 2
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key not in SETTABLE:
            raise UserError(f"--set takes KEY=VALUE with KEY one of {', '.join(SETTABLE)}")
        try:
            m[key] = int(value)
        except ValueError:
            raise UserError(f"--set {key} needs an integer") from None
    if args.invite_only:
        m["open"] = False
        if current.open:  # closing keeps the members: every one admitted so far is listed
            m["members"] = sorted(held | set(current.members))
            print(f"closing the community: {len(m['members'])} member(s) admitted so far "
                  "stay members")
    if args.open:
        m["open"] = True
    _auditors(m, current, args)
    grid_flags = {"mechanism": args.mechanism, "retail": args.retail, "feed_in": args.feed_in,
                  "community_price": args.community_price,
                  "household_price": args.household_price, "max_order_wh": args.max_order_wh,
                  "max_price": args.max_price, "max_capacity_wh": args.max_capacity_wh,
                  "max_power_w": args.max_power_w}
    if any(v is not None for v in grid_flags.values()) and not args.grid:
        raise UserError("--mechanism, the tariffs and the limits need --grid G")
    if args.grid:
        rules = current.grids.get(args.grid, GridRules())
        changes = {k: v for k, v in grid_flags.items() if v is not None}
        if any(isinstance(v, int) and v < 0 for v in changes.values()):
            raise UserError("tariffs and limits must be >= 0")
        m["grids"][args.grid] = dataclasses.replace(rules, **changes).to_map()
    return m


def _auditors(m: dict, current: Charter, args: argparse.Namespace) -> None:
    """Add and remove the read-only auditor keys the charter lists."""
    keys = set(current.auditors) | {agent_hex_arg(h) for h in args.auditor}
    keys -= {agent_hex_arg(h) for h in args.remove_auditor}
    m.pop("auditors", None)
    if keys:
        m["auditors"] = sorted(keys)
    for h in args.auditor:
        print(f"auditor {agent_hex_arg(h).hex()} may read the community (never post)")


def _publish(cfg: NodeConfig, version: int, signed: bytes) -> str:
    """Hand the charter to DIR's node; saved in its store only when no node answers there (the
    node publishes it when it next runs). A running node's refusal is the user's to see: saving
    behind its back would leave it on the old charter while the command said it was done."""
    async def publish(client: PeerClient) -> None:
        await client.post_charter(signed)

    try:
        with_client(cfg.url, publish, ca_file=tls_files(cfg).ca)
        return f"published through {cfg.url}"
    except PeerError as exc:
        if not exc.unreachable:
            again = " (it is busy: run the command again)" if exc.status == 429 else ""
            raise UserError(f"the node at {cfg.url} did not take charter version {version}"
                            f"{again}: {exc}; nothing was saved") from None
        store = Store(cfg.store_path, Membrane(cfg.community))
        try:
            store.save_charter(version, signed)
        finally:
            store.close()
        return "saved; the node publishes it when it next runs"
