"""Gossip (PROTOCOL section 4): eager push of new actions, anti-entropy rounds, peer exchange.

- Every new action (ours, or new to us from a peer) is pushed at once to 3 random live peers.
- Every round (default 1 s) we compare heads with one random live peer, pull what it has and we
  lack (pages of 1000, the next page fetched while the last one is verified), and push what it
  lacks. A node with no reachable URL takes part the same way: it only ever initiates.
- Every 10th round with a peer, and at first contact, we exchange signed agent infos.
A dead or slow peer costs one short timeout and then back-off; rounds go on with live peers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ledger.actions import Action
from ledger.agentinfo import AgentInfoError, parse_agent_info
from ledger.chain import now_us
from ledger.charter import CharterError
from node.client import PeerClient, PeerError
from node.peers import Peer

if TYPE_CHECKING:
    from node.node import Node

log = logging.getLogger("picogrid.gossip")
FANOUT = 3
PAGE = 1000
MAX_PAGES_PER_ROUND = 40
PEER_EXCHANGE_EVERY = 10


class Gossip:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.rounds = 0
        self._push_tasks: set[asyncio.Task] = set()
        self._exchanged: dict[str, int] = {}
        self.last_round_s = 0.0

    def client(self, url: str) -> PeerClient:
        assert self.node.session is not None
        return PeerClient(self.node.session, url)

    # -- eager push ----------------------------------------------------------------------

    def eager_push(self, actions: list[Action]) -> None:
        if not actions or self.node.session is None:
            return
        items = [a.wire() for a in actions]
        for peer in self.node.peers.pick(time.monotonic(), FANOUT):
            task = asyncio.create_task(self._push(peer, items))
            self._push_tasks.add(task)
            task.add_done_callback(self._push_tasks.discard)

    async def _push(self, peer: Peer, items: list[list[bytes]]) -> None:
        for start in range(0, len(items), PAGE):
            try:
                await self.client(peer.url).push(items[start : start + PAGE])
            except PeerError as exc:
                self.node.peers.failed(peer, time.monotonic(), str(exc))
                return
            self.node.metrics["gossip_pushed"] += len(items[start : start + PAGE])
        self.node.peers.ok(peer, time.monotonic())

    # -- anti-entropy ----------------------------------------------------------------------

    async def run(self) -> None:
        interval = self.node.cfg.round_ms / 1000
        while True:
            started = time.monotonic()
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:  # a round must never kill the node
                log.exception("gossip round failed")
            self.last_round_s = time.monotonic() - started
            await asyncio.sleep(max(0.0, interval - self.last_round_s))

    async def round(self) -> None:
        self.rounds += 1
        peers = self.node.peers.pick(time.monotonic(), 1)
        if not peers:
            return
        peer = peers[0]
        try:
            await self.sync_with(peer)
            if self.rounds - self._exchanged.get(peer.url, -PEER_EXCHANGE_EVERY) >= PEER_EXCHANGE_EVERY:
                await self.exchange_peers(peer)
                self._exchanged[peer.url] = self.rounds
        except PeerError as exc:
            self.node.peers.failed(peer, time.monotonic(), str(exc))
            log.debug("peer %s failed: %s", peer.url, exc)
            return
        self.node.peers.ok(peer, time.monotonic())
        self.node.metrics["gossip_rounds"] += 1

    async def sync_with(self, peer: Peer) -> None:
        client = self.client(peer.url)
        theirs, charter_version = await client.heads()
        await self._maybe_take_charter(client, charter_version)
        ours = self.node.store.heads()
        lag = behind = 0
        pulls: list[tuple[bytes, int]] = []
        pushes: list[tuple[bytes, int]] = []
        for author, (seq, h) in theirs.items():
            mine = ours.get(author)
            if mine is None or mine[0] < seq:
                start = 0 if mine is None else mine[0] + 1
                pulls.append((author, start))
                lag += seq - start + 1
            elif mine[0] == seq and mine[1] != h:
                pulls.append((author, seq))  # same seq, other hash: fetch the fork evidence
        for author, (seq, _) in ours.items():
            other = theirs.get(author)
            if other is None or other[0] < seq:
                start = 0 if other is None else other[0] + 1
                pushes.append((author, start))
                behind += seq - start + 1
        peer.lag, peer.behind = lag, behind
        await self._pull(client, pulls)
        await self._push_ranges(client, pushes)

    async def _pull(self, client: PeerClient, pulls: list[tuple[bytes, int]]) -> None:
        """Fetch page after page; the next page is fetched while the last one is ingested."""
        pages = 0
        pending_ingest: asyncio.Task | None = None
        try:
            for author, start in pulls:
                while pages < MAX_PAGES_PER_ROUND:
                    page = await client.chain(author, start, PAGE)
                    pages += 1
                    self.node.metrics["gossip_pulled"] += len(page)
                    if pending_ingest is not None:
                        await pending_ingest
                    if not page:
                        pending_ingest = None
                        break
                    pending_ingest = asyncio.create_task(self.node.ingest(page))
                    if len(page) < PAGE:
                        break
                    start += len(page)
        finally:
            if pending_ingest is not None:
                await pending_ingest

    async def _push_ranges(self, client: PeerClient, pushes: list[tuple[bytes, int]]) -> None:
        loop = asyncio.get_running_loop()
        store = self.node.store
        pages = 0
        for author, start in pushes:
            while pages < MAX_PAGES_PER_ROUND:
                items = await loop.run_in_executor(None, store.chain_range, author, start, PAGE)
                if not items:
                    break
                await client.push([list(i) for i in items])
                pages += 1
                self.node.metrics["gossip_pushed"] += len(items)
                if len(items) < PAGE:
                    break
                start += len(items)

    async def _maybe_take_charter(self, client: PeerClient, version: int) -> None:
        current = self.node.charter
        if version <= (current.version if current else 0):
            return
        try:
            charter = await client.charter(self.node.admin)
            if charter.signed is not None:
                self.node.accept_charter(charter.signed)
        except (PeerError, CharterError) as exc:
            log.info("peer %s offered charter version %d, refused: %s", client.base, version, exc)

    # -- peer exchange ---------------------------------------------------------------------

    async def exchange_peers(self, peer: Peer) -> None:
        client = self.client(peer.url)
        mine = [self.node.own_info.wire()] if self.node.own_info else []
        mine += [i.wire() for i in self.node.peers.infos.values()]
        await client.post_peers(mine[:1000])
        now = now_us()
        for item in (await client.peers())[:1000]:
            try:
                info = parse_agent_info(item, now, self.node.cfg.community)
            except AgentInfoError:
                continue
            self.node.peers.add_info(info)

    async def close(self) -> None:
        for task in list(self._push_tasks):
            task.cancel()
        await asyncio.gather(*self._push_tasks, return_exceptions=True)
