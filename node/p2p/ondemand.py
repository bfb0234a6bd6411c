"""Another grid's chains, fetched when asked (replication scoped by grid, docs/scaling.md).

A node with `replicate = "grid"` holds its own grid's chains whole and, of other grids, the
geneses, fork evidence and pointers (node.p2p.scoping). When its API is asked for another
grid's data (a chain, an audit, an interval, the trades, the summary, a bill), the handler reads
through `OnDemand.reading(grid)`: a store that holds that grid's chains, fetched from live peers
of that grid (their genesis names it) into a side store (node.p2p.fetched, the cache and its
bounds). Every page goes through the checks gossip makes: `Journal.verify` (encoding,
signature, schema, time) and `Store.ingest` (links, membrane, charter limits, forks).

- A grid read again within FRESH_S is not fetched again; later, only what is new is fetched
  (each chain from its held head + 1, until the peer answers an empty page).
- One peer of the grid is asked for every chain; a peer that fails hands the chains not done
  yet to the next (at most MAX_PEERS_TRIED), the one that completed last time first.
- A fetch not complete within DEADLINE_S raises `GridUnavailable` (HTTP 503): the node never
  answers with part of a grid. What was fetched and verified is kept for the next try.
- A fork found in fetched chains is handed to the node's own store as evidence (it then
  spreads like any fork); forks the node knows of that grid's authors are laid over the side
  store, so a forked author's orders never count there either.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from ledger.actions import Action, decode_action
from ledger.chain import now_us
from ledger.errors import Invalid
from ledger.store import Store
from node.p2p.client import PeerError, PeerTransport
from node.p2p.fetched import MAX_GRID_BYTES, Busy, Fetched, FetchedGrids
from node.p2p.gossip import Gossip

FRESH_S = 3.0
DEADLINE_S = 8.0  # within the 10 s that `picogrid audit` waits for an answer
MAX_PEERS_TRIED = 3
PAGE = 1000
PULLS_AT_ONCE = 4  # chains fetched from one peer at a time

log = logging.getLogger(__name__)

NO_PEER, TIMEOUT, TOO_LARGE, BUSY, DISK = "no-peer", "timeout", "too-large", "busy", "disk"
RETRY_AFTER_S = {NO_PEER: 30, TIMEOUT: 5, TOO_LARGE: 300, BUSY: 30, DISK: 60}


class GridUnavailable(Exception):
    """Another grid's chains could not be fetched now; `reason` is one of NO_PEER, TIMEOUT,
    TOO_LARGE, BUSY, DISK (answered 503, docs/http-api.md)."""

    def __init__(self, grid: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.grid = grid
        self.reason = reason
        self.retry_after_s = RETRY_AFTER_S[reason]


class _TooLarge(Exception):
    pass


class OnDemand:
    """Reads of other grids' chains for a node whose gossip holds its own grid only."""

    def __init__(self, gossip: Gossip, directory: Path) -> None:
        self.gossip = gossip
        self.store: Store = gossip.store
        self.scope = gossip.scope
        self.metrics: Counter[str] = gossip.metrics
        self.cache = FetchedGrids(directory, gossip.store)
        if self.scope.scoped:
            self.cache.empty()  # what a killed run left

    def fetches(self, grid: str) -> bool:
        """Whether reading `grid` needs a fetch: another grid than ours, under grid scope,
        with members we know of (a grid we know no member of is empty here as anywhere)."""
        rule = self.scope.rule
        return rule is not None and grid != rule.grid and bool(self._authors(grid))

    @asynccontextmanager
    async def reading(self, grid: str) -> AsyncIterator[Store]:
        """The store to read `grid` from: ours, or the side store brought up to date."""
        if not self.fetches(grid):
            yield self.store
            return
        try:
            entry = self.cache.entry(grid)
        except Busy as exc:
            self.metrics["ondemand_refused"] += 1
            raise GridUnavailable(grid, BUSY, f"{exc}; try again in a minute") from None
        except (sqlite3.Error, OSError) as exc:  # a full or failing disk: named, never a 500
            raise self._disk(grid, exc) from None
        entry.readers += 1
        try:
            try:
                await self._up_to_date(entry)
            except (sqlite3.Error, OSError) as exc:
                raise self._disk(grid, exc) from None
            yield entry.store
        finally:
            self.cache.release(entry)

    def _disk(self, grid: str, exc: Exception) -> GridUnavailable:
        self.metrics["ondemand_disk_error"] += 1
        log.warning("fetching grid %r: the side store failed: %s", grid, exc)
        return GridUnavailable(grid, DISK, f"the chains of grid {grid!r} could not be stored "
                               f"here ({exc}); free some disk space or ask a node of that grid")

    @asynccontextmanager
    async def reading_author(self, author: bytes) -> AsyncIterator[Store]:
        """The store to read `author`'s chain from (ours when we hold no genesis of it)."""
        async with self.reading(self.scope.grid_of(author) or "") as store:
            yield store

    def held(self) -> dict[str, int]:
        """The other grids held now, with the bytes of signed actions fetched for each."""
        return {e.grid: e.bytes for e in self.cache.grids.values()}

    def sweep(self) -> None:
        """Drop the grids nobody read lately (the node calls it every SWEEP_S)."""
        self.cache.sweep()

    def close(self) -> None:
        """Delete every fetched grid."""
        self.cache.close()

    # -- fetching ----------------------------------------------------------------------------

    def _authors(self, grid: str) -> list[bytes]:
        return [r["author"] for r in self.store.agents() if r["grid"] == grid]

    async def _up_to_date(self, entry: Fetched) -> None:
        async with entry.lock:
            if time.monotonic() - entry.refreshed < FRESH_S:
                return
            started = time.monotonic()
            try:
                async with asyncio.timeout(DEADLINE_S):
                    await self._fetch(entry)
            except TimeoutError:
                self.metrics["ondemand_timeout"] += 1
                raise GridUnavailable(
                    entry.grid, TIMEOUT, f"the chains of grid {entry.grid!r} were not all "
                    f"fetched within {DEADLINE_S:.0f} s; what came is kept: try again") from None
            except _TooLarge:
                self.metrics["ondemand_too_large"] += 1
                self.cache.drop(entry)
                raise GridUnavailable(
                    entry.grid, TOO_LARGE, f"the chains of grid {entry.grid!r} are larger than "
                    f"the {MAX_GRID_BYTES // 2**20} MiB this node fetches on demand; ask a node "
                    "of that grid") from None
            except GridUnavailable:
                if entry.bytes == 0:  # nothing came: it holds no room that another grid needs
                    self.cache.drop(entry)
                raise
            entry.refreshed = started
            self.metrics["ondemand_fetches"] += 1

    async def _fetch(self, entry: Fetched) -> None:
        if entry.store.membrane is not self.store.membrane:  # a new charter since
            entry.store.membrane = self.store.membrane
        authors = self._authors(entry.grid)
        await self._geneses(entry, authors)
        peers = self._peers_of(entry)
        if not peers:
            self.metrics["ondemand_no_peer"] += 1
            raise GridUnavailable(entry.grid, NO_PEER,
                                  f"no live peer of grid {entry.grid!r} is known to this node")
        todo = set(authors)
        errors = []
        for peer in peers[:MAX_PEERS_TRIED]:
            failed = await self._pull_all(entry, self.gossip.client(peer.url), todo)
            if failed:
                errors.append(str(failed[0]))
                if failed[0].status != 429:  # "slow down" is an answer, not a failure
                    self.gossip.peers.failed(peer, time.monotonic(), str(failed[0]))
                continue
            entry.last_peer = peer.url
            await self._evidence(entry, authors)
            return
        self.metrics["ondemand_no_peer"] += 1
        raise GridUnavailable(entry.grid, NO_PEER, f"no peer holding grid {entry.grid!r} "
                              f"answered ({'; '.join(errors[:3])})")

    def _peers_of(self, entry: Fetched) -> list:
        """Live peers whose agent is of the grid, the one that served it last time first."""
        live = [p for p in self.gossip.peers.live(time.monotonic())
                if p.agent is not None and self.scope.grid_of(p.agent) == entry.grid]
        self.gossip.peers.rng.shuffle(live)
        return sorted(live, key=lambda p: p.url != entry.last_peer)

    async def _geneses(self, entry: Fetched, authors: list[bytes]) -> None:
        """Lay the geneses we hold of the grid's members into its side store (checked again:
        the side store trusts nothing it did not verify itself)."""
        items = [first for a in authors if entry.store.head(a) is None
                 for first in self.store.chain_range(a, 0, 1)]
        if items:
            await self._ingest(entry, items)

    async def _pull_all(self, entry: Fetched, client: PeerTransport,
                        todo: set[bytes]) -> list[PeerError]:
        """Every chain of `todo` from one peer, a few at a time; each one done leaves `todo`.
        The peer's failures are returned (the chains they left go to the next peer)."""
        slots = asyncio.Semaphore(PULLS_AT_ONCE)
        failed: list[PeerError] = []

        async def one(author: bytes) -> None:
            async with slots:
                if failed:
                    return  # the peer failed: its next peer takes this chain
                try:
                    await self._pull(entry, client, author)
                except PeerError as exc:
                    failed.append(exc)
                    return
                todo.discard(author)

        try:
            async with asyncio.TaskGroup() as group:  # _TooLarge (or a bug) stops them all
                for author in sorted(todo):
                    group.create_task(one(author))
        except ExceptionGroup as errors:
            raise errors.exceptions[0] from None
        return failed

    async def _pull(self, entry: Fetched, client: PeerTransport, author: bytes) -> None:
        """`author`'s chain from our head + 1 until the peer has nothing more (an empty page),
        or until a page moves the head no further (refused: its reasons are the ingest's)."""
        while True:
            head = entry.store.head(author)
            start = 0 if head is None else head.seq + 1
            page = await client.chain(author, start, PAGE)
            if not page:
                return
            size = sum(len(body) + len(sig) for body, sig in page)
            if entry.bytes + size > MAX_GRID_BYTES:
                raise _TooLarge()
            entry.bytes += size
            self.metrics["ondemand_actions"] += len(page)
            await self._ingest(entry, page, author)
            after = entry.store.head(author)
            if after is None or (head is not None and after.seq <= head.seq):
                return

    async def _ingest(self, entry: Fetched, items: list[tuple[bytes, bytes]],
                      author: bytes | None = None) -> None:
        """Verify on the node's pool, write on the cache's thread; only `author`'s actions of a
        page are taken (a peer cannot slip other chains in). Forks found go to our store."""
        checked = await self.gossip.journal.verify(items, now_us())
        if author is not None:
            keep = [i for i, c in enumerate(checked)
                    if isinstance(c, Invalid) or c.author == author]
            items, checked = [items[i] for i in keep], [checked[i] for i in keep]
        now = now_us()
        result = await self.cache.write(
            lambda: entry.store.ingest(items, now, prechecked=checked))
        for _, reason in result.rejected:
            self.metrics[f"ondemand_rejected:{reason}"] += 1
        for first, second in result.forks:
            await self._to_own_store(first, second)

    async def _to_own_store(self, first: Action, second: Action) -> None:
        await self.gossip.journal.take_evidence(first, second, "a fetch of its grid")

    async def _evidence(self, entry: Fetched, authors: list[bytes]) -> None:
        """The forks we know of the grid's authors, laid over its side store."""
        known = self.store.forked_authors()
        held = entry.store.forked_authors()
        for author in authors:
            if author in known and author not in held:
                pair = self.gossip.community.evidence(author)
                if pair:
                    first, second = (decode_action(*p, check_signature=False) for p in pair)
                    await self.cache.write(entry.store.take_evidence, first, second)
