"""Gossip (PROTOCOL section 4): eager push of new actions, anti-entropy rounds, peer exchange.

- Every new action (ours, or pushed to us and new to us) is pushed at once to 3 random live
  peers. Actions we pulled are not forwarded: they are repairs, and the peers that lack them
  get them by their own rounds.
- Every round (default 1 s) we reconcile heads with one random live peer (node.p2p.sets),
  pull what it has and we lack (pages of 1000, the next page fetched while the last one is
  verified), push what it lacks, and hand our charter to it when it holds an older version. A node with no reachable
  URL takes part the same way: it only ever initiates.
- At first contact with a peer, and in every 10th round of ours, we reconcile signed agent infos
  (only the infos that differ cross the wire; the whole lists with a peer that does not speak
  reconcile).
- A URL learned from an info is called only once it proved the info's key (`Prover`); the
  infos one peer hands us are bounded by `PeerTable` as that peer's share.
- An author whose pulled actions we rejected as `bad-time` (its clock is ahead of ours) is not
  pulled again for `transfer.BAD_TIME_PAUSE_S`: the same actions would only be rejected again.

A round runs as its own task: the loop starts the next round on time whatever the last one is
doing, so a dead or slow peer costs one short timeout (in its own task) and then back-off, and
never delays rounds with live peers. At most MAX_ROUNDS rounds run at once, never two with the
same peer, and an author's missing range is pulled by one round at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

import aiohttp

from ledger import reconcile as rc
from ledger.actions import Action
from ledger.chain import now_us
from ledger.charter import CharterError
from ledger.store import Store
from node.charters import CharterBook
from node.errors import NotSigned
from node.journal import Journal
from node.p2p import sets, wire
from node.p2p.client import PeerClient, PeerError, PeerTransport, PeerUnsupported
from node.p2p.community import CommunitySync
from node.p2p.forkpush import ForkPush
from node.p2p.intake import PeerInfos
from node.p2p.peers import Peer, PeerTable
from node.p2p.prover import Prover
from node.p2p.scoping import GridScope
from node.p2p.transfer import MAX_PAGES_PER_ROUND, PAGE, PageTransfer  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)
FANOUT = 3
# In a community this small, a new action goes to every live peer at once and is not passed on:
# epidemic forwarding there mostly delivers duplicates (about 3 in 4 in the 7-node demo).
FULL_FANOUT = 8
PEER_EXCHANGE_EVERY = 10
MAX_ROUNDS = 16
MAX_REFUSED = 10_000
RECONCILE_RETRY_ROUNDS = 600  # a peer without /v1/gossip/reconcile is asked again after this


class Gossip(PageTransfer):
    """Push, pull and peer exchange with the peers of `peers`, writing through `journal`.

    `connect(url)` gives the transport to one peer; it is set by `open` (HTTP over an aiohttp
    session) or given directly (tests, in-memory transports). Until then nothing is sent.
    """

    def __init__(self, store: Store, peers: PeerTable, journal: Journal, charters: CharterBook,
                 infos: PeerInfos, metrics: Counter[str], round_ms: int,
                 connect: Callable[[str], PeerTransport] | None = None,
                 scope: GridScope | None = None) -> None:
        self.store = store
        self.peers = peers
        self.journal = journal
        self.charters = charters
        self.infos = infos
        self.metrics = metrics
        self.round_ms = round_ms
        self.connect = connect
        self.scope = scope or GridScope(store)  # by default every chain is held whole
        self.community = CommunitySync(store, infos, journal, metrics, self.first_contact)
        # The fork alarm: evidence pushed at once to peers of other grids (node.p2p.forkpush).
        self.forkpush = ForkPush(store, peers, self.scope, journal, metrics,
                                 lambda: self.connect,
                                 lambda coro: self._spawn(coro, self._push_tasks))
        journal.on_forked = self.forkpush.alarm
        self._forks_known = 0  # forked authors we knew at the last round
        self.rounds = 0
        self._push_tasks: set[asyncio.Task] = set()
        self._round_tasks: set[asyncio.Task] = set()
        self._busy: set[str] = set()  # peers a round is talking to
        self._pulling: set[bytes] = set()  # authors a round is pulling
        self._refused: set[bytes] = set()  # authors whose genesis we refused (other community)
        self._refused_charter: dict[str, int] = {}  # peer -> charter version it offered, refused
        self._too_early: dict[bytes, float] = {}  # author -> when to pull it again (bad-time)
        self._exchanged: dict[str, int] = {}
        self._last_exchange = -PEER_EXCHANGE_EVERY
        self.last_round_s = 0.0
        # Told of each of our own actions a peer rejected, with its reason (the clock watch).
        self.on_own_rejected: Callable[[str, int, str], None] | None = None
        self.synced_at: dict[str, int] = {}  # peer -> when (µs) its last completed round began
        self._old_peers: dict[str, int] = {}  # peer -> round it answered 404 to reconcile
        self._item_hashes: dict = {}  # (author, seq, hash) -> fingerprint part, for HeadSets
        peers.is_member = lambda agent: store.head(agent) is not None
        peers.prefer = self.scope.own_grid  # under grid scope, our grid's members keep a place
        self.prover = Prover(peers, infos.community, metrics, self._proven)

    def open(self, session: aiohttp.ClientSession) -> None:
        """Talk to peers over HTTP with this session from now on."""
        self.connect = lambda url: PeerClient(session, url)

    def client(self, url: str) -> PeerTransport:
        """The transport to the peer at `url`."""
        assert self.connect is not None
        return self.connect(url)

    def _spawn(self, coro, tasks: set[asyncio.Task]) -> asyncio.Task:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    # -- eager push ----------------------------------------------------------------------

    def eager_push(self, actions: list[Action]) -> None:
        """Push new actions at once to a few live peers (to all in a small community)."""
        if not actions or self.connect is None:
            return
        items = [a.wire() for a in actions]
        live = self._candidates(self.peers.live(time.monotonic()), own_only=True)
        reached_all = len(live) <= FULL_FANOUT
        targets = live if reached_all else self.peers.rng.sample(live, FANOUT)
        for peer in targets:
            self._spawn(self._push(peer, items, reached_all), self._push_tasks)

    def small_community(self) -> bool:
        """Whether every live peer gets each new action directly."""
        return len(self.peers.live(time.monotonic())) <= FULL_FANOUT

    async def _push(self, peer: Peer, items: list[list[bytes]], reached_all: bool = False) -> None:
        for batch in wire.batches(items):
            try:
                answer = await self.client(peer.url).push(batch, reached_all)
            except PeerError as exc:
                if exc.status != 429:  # "slow down" is an answer, not a failure
                    self.peers.failed(peer, time.monotonic(), str(exc))
                return
            self.metrics["gossip_pushed"] += len(batch)
            self._own_rejected(peer.url, batch, answer)
        self.peers.ok(peer, time.monotonic())

    # -- anti-entropy ----------------------------------------------------------------------

    async def run(self) -> None:
        """Start a round every `round_ms`, until cancelled."""
        interval = self.round_ms / 1000
        while True:
            started = time.monotonic()
            try:
                self.start_round()
                self.prover.prove_some(self.client)
            except Exception:  # the loop must never stop
                log.exception("could not start a gossip round")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    def start_round(self, peer: Peer | None = None) -> asyncio.Task | None:
        """Start a round with `peer`, or with one random live peer no running round talks to."""
        if len(self._round_tasks) >= MAX_ROUNDS:
            return None
        now = time.monotonic()
        if peer is None:
            candidates = [p for p in self.peers.live(now) if p.url not in self._busy]
            # Scoped: 3 rounds in 4 with our grid's peers (who hold what we hold), the 4th with
            # anyone, so that other grids' heads, infos and forks keep flowing.
            candidates = self._candidates(candidates, own_only=self.rounds % 4 != 3)
            if not candidates:
                return None
            peer = self.peers.rng.choice(candidates)
        elif peer.url in self._busy or not peer.live(now):
            return None
        self._busy.add(peer.url)
        return self._spawn(self._round_with(peer), self._round_tasks)

    def _candidates(self, peers: list[Peer], own_only: bool) -> list[Peer]:
        """Under grid scope, `peers` of our grid when `own_only` and there are any."""
        if not (self.scope.scoped and own_only):
            return peers
        return [p for p in peers if self.scope.own_grid(p.agent)] or peers

    def first_contact(self, urls: list[str]) -> None:
        """Peers we just heard of are asked for their proof now (and get a round once they
        give it) rather than when chance picks them."""
        if self.connect is None:
            return
        for url in urls:
            peer = self.peers.by_url.get(url.rstrip("/"))
            if peer is not None and peer.live(time.monotonic()):
                self.start_round(peer)
        self.prover.prove_some(self.client)

    def _proven(self, peer: Peer) -> None:
        """A candidate proved its key: its first round starts now."""
        self.start_round(peer)

    async def round(self) -> None:
        """One round, awaited (for tests and tools); the loop runs rounds as tasks."""
        task = self.start_round()
        if task is not None:
            await task

    def synced_since(self, since_us: int) -> bool:
        """True when every live peer completed a round with us that began at or after
        `since_us` (vacuously true with no live peer: an unreachable peer cannot be waited on)."""
        live = self.peers.live(time.monotonic())
        return all(self.synced_at.get(p.url, -1) >= since_us for p in live)

    def sync_now(self, since_us: int) -> None:
        """Start a round with each live peer not synced since `since_us` and not busy (a round
        under way began too early to count: the next call starts a fresh one)."""
        if self.connect is None:
            return
        for peer in self.peers.live(time.monotonic()):
            if self.synced_at.get(peer.url, -1) < since_us:
                self.start_round(peer)

    async def _round_with(self, peer: Peer) -> None:
        started = time.monotonic()
        began_us = now_us()
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
            if exc.status != 429:  # "slow down" is an answer: the peer stays live for pushes
                self.peers.failed(peer, time.monotonic(), str(exc))
            log.debug("peer %s failed: %s", peer.url, exc)
            return
        except NotSigned as exc:  # our disk is full: reported (bounded) by the disk watch
            log.debug("round with %s stopped: %s", peer.url, exc)
            return
        except Exception:  # a round must never kill the node
            log.exception("gossip round with %s failed", peer.url)
            return
        finally:
            self._busy.discard(peer.url)
            self.last_round_s = time.monotonic() - started
        self.peers.ok(peer, time.monotonic())
        self.synced_at[peer.url] = max(began_us, self.synced_at.get(peer.url, -1))
        self.metrics["gossip_rounds"] += 1

    def head_index(self) -> rc.HeadSet:
        """Our heads, indexed for set reconciliation (item hashes cached between rounds)."""
        heads = self.scope.heads()
        if len(self._item_hashes) > 2 * len(heads) + 1024:
            self._item_hashes.clear()
        return rc.HeadSet.of(heads, self._item_hashes)

    def _speaks_reconcile(self, peer: Peer) -> bool:
        """Whether to reconcile with `peer` (it answered 404 lately: the lists instead)."""
        asked_at = self._old_peers.get(peer.url)
        return asked_at is None or self.rounds - asked_at >= RECONCILE_RETRY_ROUNDS

    def _unsupported(self, peer: Peer) -> None:
        self._old_peers[peer.url] = self.rounds
        self.metrics["gossip_heads_fallback"] += 1

    async def _differing_heads(self, client: PeerTransport, peer: Peer) -> tuple[dict, dict, int]:
        """(their heads, our heads, their charter version), reduced to the authors where the two
        differ by set reconciliation; the whole heads list from a peer that does not speak it."""
        if self._speaks_reconcile(peer):
            try:
                diff = await sets.reconcile_with(client, self.head_index())
                return diff.theirs, diff.ours, diff.version
            except PeerUnsupported:
                self._unsupported(peer)
        theirs, version = await client.heads()
        return theirs, self.scope.heads(), version

    async def sync_with(self, peer: Peer) -> None:
        """Compare heads with `peer`, pull what it has and we lack, push what it lacks."""
        client = self.client(peer.url)
        theirs, ours, charter_version = await self._differing_heads(client, peer)
        await self._exchange_charter(client, charter_version)
        plan = self.scope.plan(theirs, ours, self._refused)
        now = time.monotonic()  # an author whose actions were just rejected bad-time waits
        pulls = [p for p in plan.pulls if self._too_early.get(p[0], 0) <= now]
        peer.lag, peer.behind = plan.lag, plan.behind
        mine_now = [p for p in pulls if p[0] not in self._pulling]
        self._pulling.update(p[0] for p in mine_now)
        try:
            await self._pull(client, mine_now)
        finally:
            self._pulling.difference_update(p[0] for p in mine_now)
        await self._push_ranges(client, plan.pushes)
        if self._speaks_reconcile(peer):
            await self._sync_forks(client)

    async def _sync_forks(self, client: PeerTransport) -> None:
        """Learn the forks the peer knows; a fork new to us goes to a few peers at once."""
        try:
            learned = await self.community.forks_with(client)
        except PeerUnsupported:
            return  # a node of protocol 2 without it: the forks come from others
        known = len(self.store.forked_authors())  # learned here, or found by our own ingest
        if learned or known > self._forks_known:
            self._forks_known = known
            for peer in self.peers.pick(time.monotonic(), FANOUT):
                self.start_round(peer)

    async def _exchange_charter(self, client: PeerTransport, version: int) -> None:
        """Take a newer charter from the peer, or hand ours to a peer that holds an older one."""
        current = self.charters.charter
        ours = current.version if current else 0
        if version > ours and self._refused_charter.get(client.base) != version:
            try:
                charter = await client.charter(self.charters.admin)
                if charter.signed is not None:
                    self.charters.accept(charter.signed)
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
        """Reconcile agent infos with `peer`: take its newer ones, hand it ours that it lacks;
        start rounds with peers new to us. A peer without reconcile gets the whole lists."""
        client = self.client(peer.url)
        now = now_us()
        if self._speaks_reconcile(peer):
            try:
                await self.community.infos_with(client, now)
                return
            except PeerUnsupported:
                self._unsupported(peer)
        await client.post_peers(self.infos.shareable(now)[: wire.MAX_BATCH])
        intake = self.infos.take((await client.peers())[: wire.MAX_BATCH], now,
                                 source=f"peer {peer.url}")
        self.first_contact(intake.new_urls)

    async def close(self) -> None:
        """Cancel the pushes and rounds under way."""
        tasks = list(self._push_tasks) + list(self._round_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.prover.close()
