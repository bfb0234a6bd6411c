"""Gossip (PROTOCOL section 4): eager push of new actions, anti-entropy rounds, peer exchange.

- Every new action (ours, or pushed to us and new to us) is pushed at once to 3 random live
  peers. Actions we pulled are not forwarded: they are repairs, and the peers that lack them
  get them by their own rounds.
- Every round (default 1 s) we compare heads with one random live peer, pull what it has and we
  lack (pages of 1000, the next page fetched while the last one is verified), push what it
  lacks, and hand our charter to it when it holds an older version. A node with no reachable
  URL takes part the same way: it only ever initiates.
- At first contact with a peer, and in every 10th round of ours, we exchange signed agent infos.

A round runs as its own task: the loop starts the next round on time whatever the last one is
doing, so a dead or slow peer costs one short timeout (in its own task) and then back-off, and
never delays rounds with live peers. At most MAX_ROUNDS rounds run at once, never two with the
same peer, and an author's missing range is pulled by one round at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from ledger import reconcile as rc
from ledger.actions import Action
from ledger.agentinfo import AgentInfoError, parse_agent_info
from ledger.chain import now_us
from ledger.charter import CharterError
from node.p2p import wire
from node.p2p.client import PeerClient, PeerError, PeerUnsupported
from node.p2p.peers import Peer

if TYPE_CHECKING:
    from node.node import Node

log = logging.getLogger("picogrid.gossip")
FANOUT = 3
# In a community this small, a new action goes to every live peer at once and is not passed on:
# epidemic forwarding there mostly delivers duplicates (about 3 in 4 in the 7-node demo).
FULL_FANOUT = 8
PAGE = 1000
MAX_PAGES_PER_ROUND = 40
PEER_EXCHANGE_EVERY = 10
MAX_ROUNDS = 16
MAX_REFUSED = 10_000
PIPELINE = 6  # pages of a pull in flight (written, verified, on the wire) ...
PIPELINE_BYTES = 16 * 1024 * 1024  # ... and at most this much of them
RECONCILE_RETRY_ROUNDS = 600  # a peer without /v1/gossip/reconcile is asked again after this


class Gossip:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.rounds = 0
        self._push_tasks: set[asyncio.Task] = set()
        self._round_tasks: set[asyncio.Task] = set()
        self._busy: set[str] = set()  # peers a round is talking to
        self._pulling: set[bytes] = set()  # authors a round is pulling
        self._refused: set[bytes] = set()  # authors whose genesis we refused (other community)
        self._refused_charter: dict[str, int] = {}  # peer -> charter version it offered, refused
        self._exchanged: dict[str, int] = {}
        self._last_exchange = -PEER_EXCHANGE_EVERY
        self.last_round_s = 0.0
        self._old_peers: dict[str, int] = {}  # peer -> round it answered 404 to reconcile
        self._item_hashes: dict = {}  # (author, seq, hash) -> fingerprint part, for HeadSets
        node.peers.is_member = lambda agent: node.store.head(agent) is not None

    def client(self, url: str) -> PeerClient:
        assert self.node.session is not None
        return PeerClient(self.node.session, url)

    def _spawn(self, coro, tasks: set[asyncio.Task]) -> asyncio.Task:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    # -- eager push ----------------------------------------------------------------------

    def eager_push(self, actions: list[Action]) -> None:
        if not actions or self.node.session is None:
            return
        items = [a.wire() for a in actions]
        live = self.node.peers.live(time.monotonic())
        reached_all = len(live) <= FULL_FANOUT
        targets = live if reached_all else self.node.peers.pick(time.monotonic(), FANOUT)
        for peer in targets:
            self._spawn(self._push(peer, items, reached_all), self._push_tasks)

    def small_community(self) -> bool:
        return len(self.node.peers.live(time.monotonic())) <= FULL_FANOUT

    async def _push(self, peer: Peer, items: list[list[bytes]], reached_all: bool = False) -> None:
        for batch in wire.batches(items):
            try:
                await self.client(peer.url).push(batch, reached_all)
            except PeerError as exc:
                self.node.peers.failed(peer, time.monotonic(), str(exc))
                return
            self.node.metrics["gossip_pushed"] += len(batch)
        self.node.peers.ok(peer, time.monotonic())

    # -- anti-entropy ----------------------------------------------------------------------

    async def run(self) -> None:
        interval = self.node.cfg.round_ms / 1000
        while True:
            started = time.monotonic()
            try:
                self.start_round()
            except Exception:  # the loop must never stop
                log.exception("could not start a gossip round")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    def start_round(self, peer: Peer | None = None) -> asyncio.Task | None:
        """Start a round with `peer`, or with one random live peer no running round talks to."""
        if len(self._round_tasks) >= MAX_ROUNDS:
            return None
        now = time.monotonic()
        if peer is None:
            candidates = [p for p in self.node.peers.live(now) if p.url not in self._busy]
            if not candidates:
                return None
            peer = self.node.peers.rng.choice(candidates)
        elif peer.url in self._busy or not peer.live(now):
            return None
        self._busy.add(peer.url)
        return self._spawn(self._round_with(peer), self._round_tasks)

    def first_contact(self, urls: list[str]) -> None:
        """Peers we just heard of get a round now rather than when chance picks them."""
        if self.node.session is None:
            return
        for url in urls:
            peer = self.node.peers.by_url.get(url.rstrip("/"))
            if peer is not None:
                self.start_round(peer)

    async def round(self) -> None:
        """One round, awaited (for tests and tools); the loop runs rounds as tasks."""
        task = self.start_round()
        if task is not None:
            await task

    async def _round_with(self, peer: Peer) -> None:
        started = time.monotonic()
        self.rounds += 1
        try:
            await self.sync_with(peer)
            # At first contact with a peer, then once every PEER_EXCHANGE_EVERY rounds of ours
            # (not of that peer's: with hundreds of peers, each round would carry every info).
            if (peer.url not in self._exchanged
                    or self.rounds - self._last_exchange >= PEER_EXCHANGE_EVERY):
                self._last_exchange = self.rounds
                await self.exchange_peers(peer)
                self._exchanged[peer.url] = self.rounds
        except PeerError as exc:
            self.node.peers.failed(peer, time.monotonic(), str(exc))
            log.debug("peer %s failed: %s", peer.url, exc)
            return
        except Exception:  # a round must never kill the node
            log.exception("gossip round with %s failed", peer.url)
            return
        finally:
            self._busy.discard(peer.url)
            self.last_round_s = time.monotonic() - started
        self.node.peers.ok(peer, time.monotonic())
        self.node.metrics["gossip_rounds"] += 1

    def head_index(self) -> rc.HeadSet:
        """Our heads, indexed for set reconciliation (item hashes cached between rounds)."""
        heads = self.node.store.heads()
        if len(self._item_hashes) > 2 * len(heads) + 1024:
            self._item_hashes.clear()
        return rc.HeadSet.of(heads, self._item_hashes)

    async def _differing_heads(self, client: PeerClient, peer: Peer) -> tuple[dict, dict, int]:
        """(their heads, our heads, their charter version), reduced to the authors where the two
        differ by set reconciliation; the whole heads list from a peer that does not speak it."""
        asked_at = self._old_peers.get(peer.url)
        if asked_at is None or self.rounds - asked_at >= RECONCILE_RETRY_ROUNDS:
            try:
                return await self._reconcile(client)
            except PeerUnsupported:
                self._old_peers[peer.url] = self.rounds
                self.node.metrics["gossip_heads_fallback"] += 1
            except rc.ReconcileError as exc:
                raise PeerError(f"{peer.url}: reconcile: {exc}") from None
        theirs, version = await client.heads()
        return theirs, self.node.store.heads(), version

    async def _reconcile(self, client: PeerClient) -> tuple[dict, dict, int]:
        own = self.head_index()
        query: bytes | None = rc.start(own)
        todo: list = []
        theirs: dict = {}
        ranges: list = []
        version = None
        for _ in range(rc.MAX_EXCHANGES):
            if query is None:
                break
            reply, announced = await client.reconcile(query)
            version = announced if version is None else version
            result = rc.step(own, query, reply, todo)
            theirs.update(result.theirs)
            ranges += result.ranges
            query, todo = result.query, result.todo
        pull, push = rc.differences(own.heads, theirs, ranges)
        return pull, push, version or 0

    async def sync_with(self, peer: Peer) -> None:
        client = self.client(peer.url)
        theirs, ours, charter_version = await self._differing_heads(client, peer)
        await self._exchange_charter(client, charter_version)
        lag = behind = 0
        pulls: list[tuple[bytes, int, int]] = []  # author, from seq, to seq (their head)
        pushes: list[tuple[bytes, int]] = []
        for author, (seq, h) in theirs.items():
            mine = ours.get(author)
            if mine is None or mine[0] < seq:
                start = 0 if mine is None else mine[0] + 1
                lag += seq - start + 1
                if author not in self._refused:
                    pulls.append((author, start, seq))
            elif mine[0] == seq and mine[1] != h:
                pulls.append((author, seq, seq))  # same seq, other hash: the fork evidence
        for author, (seq, _) in ours.items():
            other = theirs.get(author)
            if other is None or other[0] < seq:
                start = 0 if other is None else other[0] + 1
                pushes.append((author, start))
                behind += seq - start + 1
        peer.lag, peer.behind = lag, behind
        mine_now = [p for p in pulls if p[0] not in self._pulling]
        self._pulling.update(p[0] for p in mine_now)
        try:
            await self._pull(client, mine_now)
        finally:
            self._pulling.difference_update(p[0] for p in mine_now)
        await self._push_ranges(client, pushes)

    async def _pull(self, client: PeerClient, pulls: list[tuple[bytes, int, int]]) -> None:
        """Stream pages in: while one page is written, the next ones are verified on the pool
        and another is on the wire (at most PIPELINE pages, PIPELINE_BYTES, in flight). Writes
        keep the order of the pages."""
        pages = 0
        writes: deque[tuple[asyncio.Task, int]] = deque()
        in_flight = 0
        last: asyncio.Task | None = None
        try:
            for author, start, until in pulls:
                while pages < MAX_PAGES_PER_ROUND and start <= until:
                    limit = min(PAGE, until - start + 1)
                    page = await client.chain(author, start, limit)
                    pages += 1
                    self.node.metrics["gossip_pulled"] += len(page)
                    if not page:
                        break
                    checking = asyncio.ensure_future(self.node.verify(page, now_us()))
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
                    if len(page) < limit:
                        break
                    start += len(page)
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
        result = await self.node.ingest(page, forward=False, checked=checked)
        if start == 0 and (0, "wrong-community") in result.rejected:
            # Its genesis names another community: do not fetch that chain again and again.
            if len(self._refused) < MAX_REFUSED:
                self._refused.add(author)

    async def _push_ranges(self, client: PeerClient, pushes: list[tuple[bytes, int]]) -> None:
        loop = asyncio.get_running_loop()
        store = self.node.store
        pages = 0
        for author, start in pushes:
            while pages < MAX_PAGES_PER_ROUND:
                items = await loop.run_in_executor(None, store.chain_range, author, start, PAGE)
                if not items:
                    break
                for batch in wire.batches([list(i) for i in items]):
                    await client.push(batch)
                pages += 1
                self.node.metrics["gossip_pushed"] += len(items)
                if len(items) < PAGE:
                    break
                start += len(items)

    async def _exchange_charter(self, client: PeerClient, version: int) -> None:
        """Take a newer charter from the peer, or hand ours to a peer that holds an older one."""
        current = self.node.charter
        ours = current.version if current else 0
        if version > ours and self._refused_charter.get(client.base) != version:
            try:
                charter = await client.charter(self.node.admin)
                if charter.signed is not None:
                    self.node.accept_charter(charter.signed)
                    self._refused.clear()  # a new charter may admit whom the old one refused
            except (PeerError, CharterError) as exc:
                self._refused_charter[client.base] = version
                log.info(
                    "peer %s offered charter version %d, refused: %s", client.base, version, exc
                )
        elif version < ours and current is not None and current.signed is not None:
            try:
                await client.post_charter(current.signed)
            except PeerError as exc:
                log.debug("peer %s did not take our charter: %s", client.base, exc)

    # -- peer exchange ---------------------------------------------------------------------

    async def exchange_peers(self, peer: Peer) -> None:
        client = self.client(peer.url)
        mine = [self.node.own_info.wire()] if self.node.own_info else []
        now = now_us()
        mine += [i.wire() for i in self.node.peers.infos.values() if i.expires_us >= now]
        await client.post_peers(mine[: wire.MAX_BATCH])
        known, new = set(self.node.peers.by_url), []
        held = {i.info_bytes for i in self.node.peers.infos.values()}
        for item in (await client.peers())[: wire.MAX_BATCH]:
            if isinstance(item, list) and item and item[0] in held:
                continue  # the info we hold already: nothing new, no signature to check
            try:
                info = parse_agent_info(item, now, self.node.cfg.community)
            except AgentInfoError:
                continue
            if self.node.peers.add_info(info):
                new.append(info.url)
        self.first_contact([u for u in new if u and u not in known])

    async def close(self) -> None:
        tasks = list(self._push_tasks) + list(self._round_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
