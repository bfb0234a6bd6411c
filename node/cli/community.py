"""Founding and joining a community: key files, the first charter, the genesis action."""

from __future__ import annotations

import time
from pathlib import Path

from ledger.chain import SourceChain
from ledger.charter import Charter, GridRules
from ledger.keys import Identity, KeyFileError, load_identity, save_identity
from ledger.store import Store
from node.config import NodeConfig
from node.errors import UserError

HOUR_MS = 3_600_000
DAY_US = 86_400_000_000


def midnight_utc_us(now_us: int) -> int:
    """The last UTC midnight at or before `now_us`."""
    return now_us - now_us % DAY_US


def default_charter(community: str, admin: bytes, grid: str, mechanism: str = "merit-order",
                    *, interval_ms: int = HOUR_MS, epoch_us: int | None = None,
                    open_: bool = True) -> Charter:
    """Version 1: open, hourly intervals from midnight UTC today, the kit's tariffs."""
    if epoch_us is None:
        epoch_us = midnight_utc_us(time.time_ns() // 1000)
    if interval_ms <= 60_000:  # demo pace: orders close 40% of an interval ahead
        lead, grace = interval_ms * 2 // 5, interval_ms // 5
    else:
        lead = min(300_000, interval_ms // 4)
        grace = lead // 5
    return Charter(community=community, admin=admin, version=1, effective_from=0, open=open_,
                   epoch_us=epoch_us, interval_ms=interval_ms, lead_ms=lead, grace_ms=grace,
                   grids={grid: GridRules(mechanism=mechanism)})


def create_identity(directory: Path) -> Identity:
    """A new agent key in `directory`; refuses to overwrite one."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "agent.key").exists():
        raise UserError(f"{directory} already holds an identity (agent.key); refusing to overwrite")
    return _new_key(directory / "agent.key")


def create_admin(directory: Path) -> Identity:
    """A new community admin key in `directory`."""
    return _new_key(directory / "admin.key")


def _new_key(path: Path) -> Identity:
    """A fresh key written with mode 0600; never over an existing one."""
    identity = Identity.generate()
    try:
        save_identity(identity, path)
    except KeyFileError as exc:
        raise UserError(str(exc)) from None
    return identity


def load_admin(path: Path) -> Identity:
    """The admin key at `path`; UserError when it cannot be read."""
    try:
        return load_identity(path)
    except KeyFileError as exc:
        raise UserError(str(exc)) from None


def write_genesis(cfg: NodeConfig, identity: Identity, charter: Charter,
                  invite: bytes | None) -> bytes:
    """Store the charter, then sign our genesis; returns the genesis hash."""
    store = Store(cfg.store_path, charter.membrane())
    try:
        assert charter.signed is not None
        store.save_charter(charter.version, charter.signed)
        chain = SourceChain(store, identity)
        genesis = chain.append("genesis", {
            "community": cfg.community,
            "grid": cfg.grid,
            "name": cfg.name,
            "role": cfg.role,
            "household": cfg.household,
            "capacity_wh": cfg.capacity_wh,
            "max_power_w": cfg.max_power_w,
            "invite": invite,
        })
        return genesis.hash
    finally:
        store.close()
