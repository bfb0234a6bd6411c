"""`picogrid init`: create an agent (key, config, genesis), founding or joining a community."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import aiohttp

from ledger.charter import MECHANISMS, Charter
from ledger.keys import Identity, KeyFileError, load_identity
from ledger.schemas import ROLES
from node.cli import join_url
from node.cli.common import agent_hex_arg
from node.cli.community import create_admin, create_identity, default_charter, write_genesis
from node.config import DEFAULT_PORT, NodeConfig
from node.errors import UserError
from node.p2p.client import PATIENCE, PeerClient, PeerError


def register(sub: argparse._SubParsersAction) -> None:
    """Add `picogrid init` to the command line."""
    p = sub.add_parser("init", help="create an agent: key, config and genesis",
                       description="Create an agent in DIR. Without --join it founds community "
                                   "C (admin key and charter in DIR); with --join it joins "
                                   "the community of a running member.")
    p.add_argument("--dir", required=True, type=Path, help="data directory for this agent")
    p.add_argument("--name", required=True, help='agent name, e.g. "Home 1"')
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--household", required=True, help='household, e.g. home1 or "community"')
    p.add_argument("--grid", required=True, help="the grid (market) this agent trades in")
    p.add_argument("--community", required=True, help="the community name")
    p.add_argument("--join", metavar="URL", help="URL of a member node of the community")
    p.add_argument("--admin", metavar="HEX", help="expected admin key of the community (pins it)")
    p.add_argument("--yes", action="store_true", help="accept the fetched charter without asking")
    p.add_argument("--new-grid", action="store_true",
                   help="joining only: start a grid the charter does not have yet (it has no "
                        "market until the admin adds it to the charter)")
    p.add_argument("--capacity-wh", type=int, default=0, help="storage capacity (storage only)")
    p.add_argument("--max-power-w", type=int, default=0, help="largest power in or out")
    p.add_argument("--invite", metavar="HEX", help="admin invite (closed communities)")
    p.add_argument("--listen", default=f"127.0.0.1:{DEFAULT_PORT}", help="HOST:PORT to serve on")
    p.add_argument("--public-url", help='URL peers reach this node at ("" if unreachable)')
    p.add_argument("--mechanism", choices=MECHANISMS, default="merit-order",
                   help="founding only: the grid's clearing mechanism")
    p.add_argument("--interval-seconds", type=int, default=3600,
                   help="founding only: interval length (default 3600)")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> bytes | None:
    if args.capacity_wh < 0 or args.max_power_w < 0:
        raise UserError("--capacity-wh and --max-power-w must be >= 0")
    if args.role != "storage" and args.capacity_wh:
        raise UserError("--capacity-wh is for storage agents only")
    if args.role == "storage" and not args.capacity_wh:
        raise UserError("a storage agent needs --capacity-wh")
    if args.interval_seconds < 1:
        raise UserError("--interval-seconds must be at least 1")
    if args.invite:
        try:
            invite = bytes.fromhex(args.invite)
        except ValueError:
            raise UserError("--invite must be hex") from None
        if len(invite) != 64:
            raise UserError("--invite must be 64 bytes (128 hex characters)")
        return invite
    return None


def fetch_charter(url: str, community: str, admin_hex: str | None, yes: bool) -> Charter:
    """The charter of the community at `url`, checked against the admin key given or asked for."""
    async def get() -> Charter:
        async with aiohttp.ClientSession() as session:
            return await PeerClient(session, url, timeout=5, patience=PATIENCE).charter()

    try:
        charter = asyncio.run(get())
    except PeerError as exc:
        raise UserError(f"cannot fetch the charter: {join_url.explain(url, exc)}") from None
    if charter.community != community:
        raise UserError(f"{url} belongs to community {charter.community!r}, not {community!r}")
    print(f"community:  {charter.community}")
    print(f"admin key:  {charter.admin.hex()}")
    print(f"charter:    version {charter.version}, {'open' if charter.open else 'invite only'}, "
          f"grids {', '.join(sorted(charter.grids)) or '(none)'}")
    if admin_hex:
        if charter.admin != agent_hex_arg(admin_hex):
            raise UserError("the community's admin key differs from --admin; refusing to join")
    elif not yes:
        if not sys.stdin.isatty():
            raise UserError("confirm the admin key with --admin HEX (or --yes)")
        if input("Pin this admin key and join? [y/N] ").strip().lower() not in ("y", "yes"):
            raise UserError("not joined")
    return charter


def _check_grid(charter: Charter, grid: str, new_grid: bool) -> None:
    """A grid the charter lacks is a typo unless `--new-grid` says a new grid starts here."""
    if grid in charter.grids or new_grid:
        return
    have = ", ".join(sorted(charter.grids)) or "(none)"
    raise UserError(
        f"the community's charter has no grid {grid!r}; its grids are: {have}. "
        "Check the spelling, or pass --new-grid to start a new grid (it has no market "
        "until the admin adds it with `picogrid charter --grid`)"
    )


def _key_for_join(directory: Path) -> Identity:
    """A key left by an earlier attempt (waiting for an invite) is reused, never replaced."""
    if (directory / "agent.key").exists():
        try:
            return load_identity(directory / "agent.key")
        except KeyFileError as exc:
            raise UserError(str(exc)) from None
    return create_identity(directory)


def run(args: argparse.Namespace) -> int:
    """Create an agent: key, config and genesis (founding or joining a community)."""
    invite = _check_args(args)
    directory: Path = args.dir
    if (directory / "config.toml").exists():
        raise UserError(f"{directory} already holds an agent (config.toml); refusing to overwrite")
    if args.join:
        args.join = join_url.base_url(args.join)
        announced = args.public_url if args.public_url is not None else f"http://{args.listen}"
        join_url.check_announced(announced, args.join, args.listen)
        charter = fetch_charter(args.join, args.community, args.admin, args.yes)
        _check_grid(charter, args.grid, args.new_grid)
        identity = _key_for_join(directory)
        if not charter.open and invite is None:
            raise UserError(
                "this community is invite only. Ask its admin to run:\n"
                f"  picogrid invite --admin-key admin.key --community {args.community} "
                f"--grid {args.grid} {identity.agent_hex}\n"
                "then run this command again with --invite HEX (the key in "
                f"{directory} is kept)"
            )
        admin_key = charter.admin
    else:
        identity = create_identity(directory)
        admin = create_admin(directory)
        admin_key = admin.agent
        charter = default_charter(args.community, admin.agent, args.grid, args.mechanism,
                                  interval_ms=args.interval_seconds * 1000).sign(admin)
    cfg = NodeConfig(
        dir=directory, name=args.name, role=args.role, household=args.household, grid=args.grid,
        community=args.community, admin=admin_key.hex(), capacity_wh=args.capacity_wh,
        max_power_w=args.max_power_w, listen=args.listen, public_url=args.public_url,
        peers=[args.join.rstrip("/")] if args.join else [],
    )
    cfg.listen_host_port()
    cfg.save()
    write_genesis(cfg, identity, charter, invite)
    action = "joined" if args.join else "founded"
    print(f"{action} community {args.community!r} as {args.name!r} ({args.role}, grid {args.grid})")
    print(f"agent id:   {identity.agent_hex}")
    print(f"data dir:   {directory}")
    print(f"next:       picogrid run --dir {directory}")
    return 0
