"""Gossip in-process: two or three sides, each a real store with its journal, peer table and
agent infos, talking through an in-memory `PeerTransport` instead of HTTP. No Node, no server.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from ledger.chain import SourceChain, now_us
from ledger.charter import Charter, CharterError, parse_charter
from ledger.store import Store
from ledger.testing import ChainSigner, identity, wire_items
from node.charters import CharterBook
from node.journal import Journal
from node.p2p import wire
from node.p2p.answers import GossipAnswers
from node.p2p.client import PeerError, PeerTransport
from node.p2p.gossip import Gossip
from node.p2p.intake import PeerInfos
from node.p2p.peers import PeerTable

COMMUNITY = "test"
ADMIN = identity(99)


class Side:
    """One node's gossip parts, wired as Node wires them; `net` maps URLs to sides."""

    def __init__(self, tmp: Path, n: int, net: dict[str, Side]) -> None:
        self.net = net
        self.url = f"http://127.0.0.1:{20000 + n}"
        self.identity = identity(n)
        self.metrics: Counter[str] = Counter()
        self.store = Store(tmp / f"side{n}.sqlite3")
        self.book = CharterBook(self.store, COMMUNITY, ADMIN.agent, self.metrics)
        self.peers = PeerTable(own_url=self.url, own_agent=self.identity.agent)
        self.infos = PeerInfos(self.identity, COMMUNITY, self.url, self.peers)
        self.journal = Journal(self.store, SourceChain(self.store, self.identity), self.metrics,
                               push=lambda actions: self.gossip.eager_push(actions))
        self.gossip = Gossip(self.store, self.peers, self.journal, self.book, self.infos,
                             self.metrics, round_ms=100, connect=self.connect)
        self.answers = GossipAnswers(self.store, self.book, self.journal, self.gossip,
                                     self.infos, self.metrics)
        net[self.url] = self

    def connect(self, url: str) -> PeerTransport:
        return Direct(self.net[url])

    def close(self) -> None:
        self.journal.close()
        self.store.close()


class Direct:
    """A `PeerTransport` that calls the other side's parts directly."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.base = side.url

    async def heads(self) -> tuple[dict[bytes, tuple[int, bytes]], int]:
        charter = self.side.book.charter
        return self.side.store.heads(), charter.version if charter else 0

    async def reconcile(self, query: bytes, kind: str = "heads") -> tuple[bytes, int]:
        answers = self.side.answers
        if kind == "heads":
            return answers.reconcile(query), answers.charter_version()
        if kind == "infos":
            return answers.reconcile_infos(query), 0
        return answers.reconcile_forks(query), 0

    async def infos(self, agents: list[bytes]) -> list:
        return wire.unpack(self.side.answers.infos_of(wire.pack(agents)))

    async def evidence(self, author: bytes) -> list:
        return wire.unpack(self.side.answers.evidence(author))

    async def chain(self, author: bytes, start: int = 0,
                    limit: int = 1000) -> list[tuple[bytes, bytes]]:
        return [tuple(i) for i in self.side.store.chain_range(author, start, limit)]

    async def push(self, items: list[tuple[bytes, bytes]], reached_all: bool = False) -> dict:
        result = await self.side.journal.ingest([(b, s) for b, s in items], forward=False)
        return result.summary()

    async def peers(self) -> list:
        return self.side.infos.shareable(now_us())

    async def post_peers(self, infos: list[list[bytes]]) -> dict:
        intake = self.side.infos.take(infos, now_us())
        return {"accepted": intake.accepted, "rejected": intake.rejected}

    async def prove(self, nonce: bytes) -> object:
        return self.side.infos.prove(nonce).wire()

    async def charter(self, pinned_admin: bytes | None = None) -> Charter:
        current = self.side.book.charter
        if current is None or current.signed is None:
            raise PeerError(f"{self.base}: no charter")
        return parse_charter(current.signed, pinned_admin)

    async def post_charter(self, signed: bytes) -> None:
        try:
            self.side.book.accept(signed)
        except CharterError as exc:
            raise PeerError(f"{self.base}: {exc}") from None


class Unreachable:
    """A peer that never answers."""

    base = "http://127.0.0.1:1"

    async def heads(self) -> tuple[dict[bytes, tuple[int, bytes]], int]:
        raise PeerError(f"{self.base}: connection refused")

    async def reconcile(self, query: bytes, kind: str = "heads") -> tuple[bytes, int]:
        raise PeerError(f"{self.base}: connection refused")


@pytest.fixture
def net(tmp_path):
    sides: dict[str, Side] = {}
    yield lambda n: Side(tmp_path, n, sides)
    for side in sides.values():
        side.close()


async def seed(side: Side, n: int, length: int) -> list:
    actions = ChainSigner(identity(n)).chain(length, COMMUNITY)
    result = await side.journal.ingest(wire_items(actions), forward=False)
    assert result.accepted == length
    return actions


async def test_a_round_pulls_what_the_peer_has_and_we_lack(net):
    a, b = net(1), net(2)
    actions = await seed(a, 10, 5)
    b.peers.add_url(a.url)
    await b.gossip.round()
    assert b.store.heads() == a.store.heads()
    assert b.store.head(actions[0].author).seq == 4
    assert b.metrics["gossip_pulled"] == 5 and b.metrics["gossip_rounds"] == 1
    assert b.peers.all()[0].lag == 5 and b.peers.all()[0].failures == 0


async def test_a_round_pushes_what_the_peer_lacks(net):
    a, b = net(1), net(2)
    await seed(a, 10, 3)
    await seed(b, 11, 2)
    a.peers.add_url(b.url)
    await a.gossip.round()
    assert a.store.heads() == b.store.heads() and len(a.store.heads()) == 2
    assert a.metrics["gossip_pushed"] == 3 and a.metrics["gossip_pulled"] == 2


async def test_new_actions_are_pushed_at_once_to_live_peers(net):
    a, b, c = net(1), net(2), net(3)
    a.peers.add_url(b.url)
    a.peers.add_url(c.url)
    actions = ChainSigner(identity(10)).chain(2, COMMUNITY)
    await a.journal.ingest(wire_items(actions))  # new to a: pushed on
    for _ in range(500):  # the count is taken once each push has returned
        if (b.store.head(actions[0].author) and c.store.head(actions[0].author)
                and a.metrics["gossip_pushed"] == 4):
            break
        await asyncio.sleep(0.01)
    assert b.store.head(actions[0].author).seq == 1 and c.store.head(actions[0].author).seq == 1
    assert a.metrics["gossip_pushed"] == 4


async def proven(peer) -> None:
    for _ in range(100):
        if peer.proven:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{peer.url} never proved its key: {peer.last_error}")


async def test_peer_exchange_goes_both_ways_through_one_intake(net):
    a, b, c = net(1), net(2), net(3)
    geneses = wire_items([ChainSigner(s.identity).genesis(COMMUNITY) for s in (a, b, c)])
    for side in (a, b, c):  # infos count, and are passed on, only from members
        await side.journal.ingest(geneses, forward=False)
        side.infos.refresh_own()
        for other in (a, b, c):  # every side holds every genesis: all three are members
            genesis = ChainSigner(other.identity).genesis(COMMUNITY)
            await side.journal.ingest(wire_items([genesis]), forward=False)
    b.peers.add_info(c.infos.own)  # b knows c; a knows only b
    b.gossip.prover.prove_some(b.gossip.client)  # b passes c on once c proved its key
    await proven(b.peers.by_url[c.url])
    a.peers.add_url(b.url)
    await a.gossip.exchange_peers(a.peers.all()[0])
    assert a.identity.agent in b.peers.infos  # a's own info reached b
    assert c.identity.agent in a.peers.infos  # b's infos reached a ...
    candidate = a.peers.by_url[c.url]  # ... and c became a candidate of a ...
    assert not candidate.live(time.monotonic())
    await proven(candidate)  # ... and a peer once it proved c's key
    assert candidate.live(time.monotonic()) and a.metrics["peer_proofs_ok"] >= 1


async def test_a_candidate_that_cannot_prove_the_key_is_never_called_and_its_url_is_forgotten(net):
    a, b = net(1), net(2)
    impostor = identity(5)  # signs an info for b's URL; b's node holds another key
    await a.journal.ingest(wire_items([ChainSigner(impostor).genesis(COMMUNITY)]), forward=False)
    info = PeerInfos(impostor, COMMUNITY, b.url, PeerTable("", b"")).refresh_own()
    assert a.peers.add_info(info, "address 127.0.0.0/24")
    peer = a.peers.by_url[b.url]
    assert a.peers.live(time.monotonic()) == []
    for attempt in range(3):
        peer.proof_retry_at = 0.0  # no waiting for the back-off in a test
        a.gossip.prover.prove_some(a.gossip.client)
        for _ in range(100):
            if peer.proof_failures > attempt:
                break
            await asyncio.sleep(0.01)
        assert peer.proof_failures == attempt + 1 and "another agent" in peer.last_error
    assert b.url not in a.peers.by_url
    # The info stays, the impostor's own word; a newer one for the same URL is never tried.
    assert a.peers.add_info(
        PeerInfos(impostor, COMMUNITY, b.url, PeerTable("", b"")).refresh_own())
    assert b.url not in a.peers.by_url and a.peers.to_prove(time.monotonic()) == []
    assert a.metrics["gossip_pushed"] == 0 and b.metrics["gossip_rounds"] == 0


async def test_a_foreign_info_is_refused_and_counted(net):
    a = net(1)
    stranger = PeerInfos(identity(7), "another-community", "http://127.0.0.1:9", PeerTable("", b""))
    intake = a.infos.take([stranger.refresh_own().wire(), [b"junk"]], now_us())
    assert (intake.accepted, intake.rejected, intake.new_urls) == (0, 2, [])
    assert a.peers.infos == {}


async def test_an_unreachable_peer_backs_off_and_the_round_survives(net):
    a = net(1)
    a.gossip.connect = lambda url: Unreachable()
    a.peers.add_url(Unreachable.base)
    await a.gossip.round()
    peer = a.peers.all()[0]
    assert peer.failures == 1 and "connection refused" in peer.last_error
    assert peer.retry_at > time.monotonic()
    assert a.metrics["gossip_rounds"] == 0
    assert await a.gossip.round() is None  # backing off: no live peer, no round
