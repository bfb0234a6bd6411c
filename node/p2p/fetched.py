"""The cache of other grids' chains that a node with `replicate = "grid"` fetched on demand.

Each grid fetched gets a side store of its own, a SQLite file under `DIR/fetched/`, never the
node's own store: nothing in it is gossiped, announced in heads or told to the agent loop. The
cache is bounded (docs/scaling.md, "Another grid, on demand"):
- a grid not read for KEEP_S is dropped, its file deleted (`sweep`, run every SWEEP_S);
- at most MAX_GRIDS grids are kept: a new one drops the least recently read, unless that one is
  being read or was fetched less than MIN_KEEP_S ago (then the new grid is refused, `Busy`);
- a grid whose fetched chains pass MAX_GRID_BYTES is dropped (the fetch refuses it);
- the directory is emptied when the node starts, and every file is deleted when it stops.
A store is closed and its files deleted on one thread that also runs every write to it, so a
write a cancelled request left behind finishes first.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ledger.actions import blake2b256
from ledger.store import Store

KEEP_S = 300.0  # a grid nobody read for this long is dropped
MIN_KEEP_S = 30.0  # a grid fetched more recently is not dropped to make room for another
MAX_GRIDS = 2
MAX_GRID_BYTES = 64 * 1024 * 1024  # signed actions of one grid, at most
SWEEP_S = 60.0
PREFIX = "grid-"


class Busy(Exception):
    """No room for another grid now: MAX_GRIDS are kept and none may be dropped yet."""


@dataclass(eq=False)
class Fetched:
    """One grid's side store and what the cache knows of it."""

    grid: str
    store: Store
    path: Path
    created: float
    used: float
    refreshed: float = float("-inf")  # when the last complete fetch began (monotonic)
    bytes: int = 0  # signed actions fetched into it
    readers: int = 0  # requests using it now (it is not closed under them)
    dropped: bool = False
    last_peer: str = ""  # the peer that completed the last fetch: asked first next time
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FetchedGrids:
    """The side stores, by grid, under `directory`."""

    def __init__(self, directory: Path, main: Store) -> None:
        self.directory = Path(directory)
        self.main = main  # membrane and charter limits are the node's own
        self.grids: dict[str, Fetched] = {}
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="fetched")
        self._made = 0
        self._emptied = False

    def entry(self, grid: str) -> Fetched:
        """The grid's entry, made (with an empty store) when there is none; Busy when full."""
        now = time.monotonic()
        self.sweep(now)
        entry = self.grids.get(grid)
        if entry is not None:
            entry.used = now
            return entry
        if len(self.grids) >= MAX_GRIDS:
            idle = [e for e in self.grids.values()
                    if e.readers == 0 and now - e.created >= MIN_KEEP_S]
            if not idle:
                raise Busy(f"this node is serving {len(self.grids)} other grids' chains already")
            self.drop(min(idle, key=lambda e: e.used))
        entry = Fetched(grid, *self._open(grid), created=now, used=now)
        self.grids[grid] = entry
        return entry

    def _open(self, grid: str) -> tuple[Store, Path]:
        if not self._emptied:
            self.empty()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._made += 1
        path = self.directory / f"{PREFIX}{blake2b256(grid.encode())[:6].hex()}-{self._made}.sqlite3"
        store = Store(path, self.main.membrane, limits=self.main.limits)
        return store, path

    def empty(self) -> None:
        """Delete what an earlier run left (a killed node deletes nothing)."""
        self._emptied = True
        if self.directory.is_dir():
            for old in self.directory.glob(f"{PREFIX}*.sqlite3*"):
                old.unlink(missing_ok=True)

    def sweep(self, now: float | None = None) -> None:
        """Drop the grids nobody read for KEEP_S."""
        now = time.monotonic() if now is None else now
        for entry in list(self.grids.values()):
            if entry.readers == 0 and now - entry.used > KEEP_S:
                self.drop(entry)

    def drop(self, entry: Fetched) -> None:
        """Forget a grid; its store is closed and deleted once no request reads it."""
        if self.grids.get(entry.grid) is entry:
            del self.grids[entry.grid]
        entry.dropped = True
        if entry.readers == 0:
            self._close(entry)

    def release(self, entry: Fetched) -> None:
        """A request is done with `entry`."""
        entry.readers -= 1
        entry.used = time.monotonic()
        if entry.dropped and entry.readers == 0:
            self._close(entry)

    def _close(self, entry: Fetched) -> None:
        def close() -> None:
            entry.store.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{entry.path}{suffix}").unlink(missing_ok=True)

        self.writer.submit(close)

    async def write(self, fn, *args):
        """Run a write to a side store on the cache's one writing thread."""
        return await asyncio.get_running_loop().run_in_executor(self.writer, fn, *args)

    def held_bytes(self) -> int:
        """Signed actions held in the cache, every grid together."""
        return sum(e.bytes for e in self.grids.values())

    def close(self) -> None:
        """Drop every grid (files deleted) and stop the writing thread."""
        for entry in list(self.grids.values()):
            entry.readers = 0
            self.drop(entry)
        self.writer.shutdown(wait=True)
