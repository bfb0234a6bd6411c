"""Chains in pages between two nodes, the half of a gossip round that moves actions.

`PageTransfer` is a part of `Gossip` (a mixin, like the store's pending bounds): pulling the
ranges a peer has and we lack as a pipeline of pages (the next page on the wire while the last
one is verified on the pool and an earlier one written), pushing the ranges it lacks, and
counting our own actions that a peer rejected.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable

from ledger.actions import decode_action
from ledger.chain import now_us
from ledger.errors import Invalid
from ledger.store import Store
from node.journal import Journal
from node.p2p import wire
from node.p2p.client import PeerTransport
from node.p2p.peers import PeerTable

PAGE = 1000
MAX_PAGES_PER_ROUND = 40
MAX_REMEMBERED = 10_000  # authors remembered as refused or too early, at most
# An author whose actions we just rejected as bad-time (its clock is ahead of ours) is not pulled
# again for this long: the same actions would be rejected again, a thousand at a time.
BAD_TIME_PAUSE_S = 10.0
PIPELINE = 6  # pages of a pull in flight (written, verified, on the wire) ...
PIPELINE_BYTES = 16 * 1024 * 1024  # ... and at most this much of them


class PageTransfer:
    """What `Gossip` does with the pages of a round; it provides the attributes below."""

    store: Store
    journal: Journal
    peers: PeerTable
    metrics: Counter[str]
    on_own_rejected: Callable[[str, int, str], None] | None
    _too_early: dict[bytes, float]
    _refused: set[bytes]

    async def _pull(self, client: PeerTransport, pulls: list[tuple[bytes, int, int]]) -> None:
        """Stream pages in: while one page is written, the next ones are verified on the pool
        and another is on the wire (at most PIPELINE pages, PIPELINE_BYTES, in flight). Writes
        keep the order of the pages."""
        pages = 0
        writes: deque[tuple[asyncio.Task, int]] = deque()
        in_flight = 0
        last: asyncio.Task | None = None
        self.journal.expect(sum(until - start + 1 for _, start, until in pulls))
        try:
            for author, start, until in pulls:
                while pages < MAX_PAGES_PER_ROUND and start <= until:
                    limit = min(PAGE, until - start + 1)
                    page = await client.chain(author, start, limit)
                    pages += 1
                    self.metrics["gossip_pulled"] += len(page)
                    if not page:
                        break
                    checking = asyncio.ensure_future(self.journal.verify(page, now_us()))
                    last = asyncio.create_task(
                        self._write_page(author, start, page, checking, last)
                    )
                    size = sum(len(body) + len(sig) for body, sig in page)
                    writes.append((last, size))
                    in_flight += size
                    while writes and (len(writes) >= PIPELINE or in_flight > PIPELINE_BYTES):
                        task, done = writes.popleft()
                        await task
                        in_flight -= done
                    start += len(page)  # a page may be short: bounded in bytes too
        finally:
            results = await asyncio.gather(*(t for t, _ in writes), return_exceptions=True)
            for outcome in results:
                if isinstance(outcome, BaseException):
                    raise outcome

    async def _write_page(
        self,
        author: bytes,
        start: int,
        page: list,
        checking: asyncio.Future,
        previous: asyncio.Task | None,
    ) -> None:
        checked = await checking
        if previous is not None:
            await asyncio.wait([previous])  # its failure is reported by its own task
        result = await self.journal.ingest(page, forward=False, checked=checked)
        if any(reason == "bad-time" for _, reason in result.rejected):
            if len(self._too_early) >= MAX_REMEMBERED:
                self._too_early.clear()
            self._too_early[author] = time.monotonic() + BAD_TIME_PAUSE_S
        if start == 0 and (0, "wrong-community") in result.rejected:
            # Its genesis names another community: do not fetch that chain again and again.
            if len(self._refused) < MAX_REMEMBERED:
                self._refused.add(author)

    async def _push_ranges(self, client: PeerTransport, pushes: list[tuple[bytes, int]]) -> None:
        loop = asyncio.get_running_loop()
        store = self.store
        pages = 0
        for author, start in pushes:
            while pages < MAX_PAGES_PER_ROUND:
                items = await loop.run_in_executor(None, store.chain_range, author, start, PAGE)
                if not items:
                    break
                for batch in wire.batches([list(i) for i in items]):
                    self._own_rejected(client.base, batch, await client.push(batch))
                pages += 1
                self.metrics["gossip_pushed"] += len(items)
                start += len(items)  # a page may be short (bounded in bytes); empty ends it

    def _own_rejected(self, url: str, batch: list[list[bytes]], answer: dict) -> None:
        """Count our own actions the peer rejected, by reason (a clock ahead shows here)."""
        rejected = answer.get("rejected")
        if self.on_own_rejected is None or not isinstance(rejected, list):
            return
        reasons: Counter[str] = Counter()
        for entry in rejected[: len(batch)]:
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int)
                    and 0 <= entry[0] < len(batch) and isinstance(entry[1], str)):
                continue
            try:
                author = decode_action(*batch[entry[0]], check_signature=False).author
            except Invalid:
                continue
            if author == self.peers.own_agent and len(entry[1]) <= 40:
                reasons[entry[1]] += 1
        for reason, count in reasons.items():
            self.on_own_rejected(reason, count, url)
