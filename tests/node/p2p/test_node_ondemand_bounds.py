"""Another grid's chains on demand (node.p2p.ondemand, node.p2p.fetched), in-process: a node
of grid g1 that keeps its own grid only reads grid g2 through a side store, fetched from an
in-memory peer of g2. Every page is verified, nothing enters the node's own store, and the
bounds hold: time, bytes, peers that fail, the number of grids kept and how long."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from ledger.chain import SourceChain, now_us
from ledger.store import Store
from ledger.testing import ChainSigner, identity, wire_items
from node.charters import CharterBook
from node.journal import Journal
from node.p2p import fetched, ondemand
from node.p2p.client import PeerError
from node.p2p.fetched import Busy, FetchedGrids
from node.p2p.gossip import Gossip
from node.p2p.intake import PeerInfos
from node.p2p.ondemand import GridUnavailable, OnDemand
from node.p2p.peers import PeerTable
from node.p2p.scoping import GridScope

COMMUNITY = "test"


class Source:
    """A peer of grid g2 that serves chains from its store; it can be slow, down, or lie."""

    def __init__(self, store: Store, url: str) -> None:
        self.store, self.base = store, url
        self.delay, self.down, self.pages = 0.0, False, 0
        self.tamper = None  # page -> page

    async def chain(self, author: bytes, start: int = 0, limit: int = 1000) -> list:
        self.pages += 1
        if self.down:
            raise PeerError(f"{self.base}: connection refused", unreachable=True)
        await asyncio.sleep(self.delay)
        page = list(self.store.chain_range(author, start, limit))
        return self.tamper(page) if self.tamper else page


class ScopedNode:
    """The parts of a node of grid g1 with `replicate = "grid"`, as Node wires them."""

    def __init__(self, tmp: Path) -> None:
        me = identity(1)
        self.metrics: Counter[str] = Counter()
        self.store = Store(tmp / "own.sqlite3")
        book = CharterBook(self.store, COMMUNITY, identity(99).agent, self.metrics)
        self.peers = PeerTable(own_url="http://127.0.0.1:1", own_agent=me.agent)
        infos = PeerInfos(me, COMMUNITY, "http://127.0.0.1:1", self.peers)
        self.journal = Journal(self.store, SourceChain(self.store, me), self.metrics,
                               push=lambda actions: None)
        self.sources: dict[str, Source] = {}
        self.gossip = Gossip(self.store, self.peers, self.journal, book, infos, self.metrics,
                             round_ms=100, connect=lambda url: self.sources[url],
                             scope=GridScope(self.store, "g1"))
        self.dir = tmp / "fetched"
        self.ondemand = OnDemand(self.gossip, self.dir)

    def close(self) -> None:
        self.ondemand.close()
        self.journal.close()
        self.store.close()

    def files(self) -> list[str]:
        return sorted(p.name for p in self.dir.glob("*")) if self.dir.exists() else []


@pytest.fixture
def world(tmp_path):
    """A scoped node of g1; grid g2's chains (y: 30 actions) on a source store; one peer of g2
    per call of `add_peer`, serving that store."""
    node = ScopedNode(tmp_path)
    source = Store(tmp_path / "g2.sqlite3")
    y, peer_agent = ChainSigner(identity(2)), ChainSigner(identity(3))
    chain = y.chain(30, COMMUNITY, "g2")
    source.ingest(wire_items(chain + [peer_agent.genesis(COMMUNITY, "g2")]), now_us())
    # what gossip gives a node of g1: the geneses of g2's members
    node.store.ingest(wire_items([chain[0], source.get_by_seq(peer_agent.agent, 0)]), now_us())

    def add_peer(n: int) -> Source:
        url = f"http://127.0.0.1:{30000 + n}"
        node.sources[url] = Source(source, url)
        node.peers.add_url(url).agent = peer_agent.agent
        return node.sources[url]

    yield node, source, y, add_peer
    node.close()
    source.close()


async def test_a_fetched_chain_is_served_and_kept_out_of_the_nodes_own_store(world, monkeypatch):
    node, source, y, add_peer = world
    peer = add_peer(1)
    async with node.ondemand.reading("g2") as store:
        assert store is not node.store and store.head(y.agent).seq == 29
        assert [a.hash for a in store.chain(y.agent)] == \
            [a.hash for a in source.chain(y.agent)]
    assert node.store.head(y.agent).seq == 0  # its own store: the genesis, as before
    assert node.gossip.scope.heads()[y.agent][0] == 0  # so never announced, never pushed
    assert node.ondemand.held()["g2"] > 0
    pages = peer.pages
    async with node.ondemand.reading("g2"):  # read again at once: not fetched again
        pass
    assert peer.pages == pages
    source.ingest(wire_items([y.next() for _ in range(5)]), now_us())
    monkeypatch.setattr(ondemand, "FRESH_S", 0.0)
    async with node.ondemand.reading_author(y.agent) as store:  # only what is new comes
        assert store.head(y.agent).seq == 34
    # y: a page of its 5 new actions, then an empty page; the peer's own chain: an empty page
    assert peer.pages - pages == 3
    async with node.ondemand.reading("g1") as store:  # our own grid: our own store
        assert store is node.store


async def test_what_a_peer_forges_or_slips_in_is_not_taken(world):
    node, source, y, add_peer = world
    stranger = ChainSigner(identity(4)).chain(3, COMMUNITY, "g2")

    tenth = source.get_by_seq(y.agent, 10).action_bytes

    def forge(page: list) -> list:
        page = [(body, bytes(64) if body == tenth else sig) for body, sig in page]
        return page + wire_items(stranger)

    add_peer(1).tamper = forge
    async with node.ondemand.reading("g2") as store:
        assert store.head(y.agent).seq == 9  # up to the forged signature, no further
        assert store.head(stranger[0].author) is None  # another chain in the page: not taken
    assert node.metrics["ondemand_rejected:bad-signature"] >= 1


async def test_a_peer_that_fails_hands_over_to_the_next_and_none_left_is_a_clear_error(world):
    node, _, y, add_peer = world
    first, second = add_peer(1), add_peer(2)
    first.down = True
    async with node.ondemand.reading("g2") as store:
        assert store.head(y.agent).seq == 29
    assert first.pages + second.pages >= 2
    second.down = True
    node.ondemand.cache.drop(node.ondemand.cache.grids["g2"])
    with pytest.raises(GridUnavailable) as caught:
        async with node.ondemand.reading("g2"):
            pass
    assert caught.value.grid == "g2" and caught.value.reason == ondemand.NO_PEER
    assert "g2" in str(caught.value)
    with pytest.raises(GridUnavailable) as caught:  # both backed off now: none live
        async with node.ondemand.reading("g2"):
            pass
    assert caught.value.reason == ondemand.NO_PEER and "no live peer" in str(caught.value)


async def test_a_fetch_that_overruns_its_time_is_refused_and_its_progress_kept(world,
                                                                              monkeypatch):
    node, _, y, add_peer = world
    peer = add_peer(1)
    peer.delay = 0.5
    monkeypatch.setattr(ondemand, "DEADLINE_S", 0.2)
    started = time.monotonic()
    with pytest.raises(GridUnavailable) as caught:
        async with node.ondemand.reading("g2"):
            pass
    assert caught.value.reason == ondemand.TIMEOUT and time.monotonic() - started < 2.0
    peer.delay = 0.0
    async with node.ondemand.reading("g2") as store:
        assert store.head(y.agent).seq == 29


async def test_a_grid_larger_than_the_bound_is_refused_and_not_kept(world, monkeypatch):
    node, _, _, add_peer = world
    add_peer(1)
    monkeypatch.setattr(ondemand, "MAX_GRID_BYTES", 2_000)
    with pytest.raises(GridUnavailable) as caught:
        async with node.ondemand.reading("g2"):
            pass
    assert caught.value.reason == ondemand.TOO_LARGE
    assert node.ondemand.held() == {}
    node.ondemand.cache.writer.submit(lambda: None).result(5)  # the deletion has run
    assert node.files() == []


async def test_a_side_store_that_cannot_be_written_is_a_clear_error(world, monkeypatch):
    node, _, _, add_peer = world
    add_peer(1)

    def full(*_args, **_kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(node.ondemand.cache, "entry", full)
    with pytest.raises(GridUnavailable) as caught:
        async with node.ondemand.reading("g2"):
            pass
    assert caught.value.reason == ondemand.DISK and caught.value.grid == "g2"
    assert "disk is full" in str(caught.value)


async def test_forks_the_node_knows_are_laid_over_the_fetched_grid(world):
    node, source, y, add_peer = world
    add_peer(1)
    third = source.get_by_seq(y.agent, 3)
    other = y.at(source.get_by_seq(y.agent, 2))  # a second action at seq 3
    assert other.hash != third.hash
    assert node.store.take_evidence(third, other)  # as the forks set brings it
    async with node.ondemand.reading("g2") as store:
        assert y.agent in store.forked_authors()


def test_the_cache_keeps_few_grids_for_a_while_then_deletes_them(tmp_path, monkeypatch):
    main = Store(tmp_path / "own.sqlite3")
    cache = FetchedGrids(tmp_path / "fetched", main)
    try:
        (tmp_path / "fetched").mkdir()
        (tmp_path / "fetched" / "grid-left-by-a-killed-node-1.sqlite3").write_bytes(b"x")
        b = cache.entry("b")
        assert [p.name for p in (tmp_path / "fetched").glob("*.sqlite3")] == [b.path.name]
        cache.entry("c")
        with pytest.raises(Busy):  # two kept, both fetched just now
            cache.entry("d")
        b.created = cache.grids["c"].created = time.monotonic() - fetched.MIN_KEEP_S - 1
        cache.grids["c"].readers = 1  # c is being read: b goes (c was used later anyway)
        b.used -= 1
        cache.entry("d")
        assert sorted(cache.grids) == ["c", "d"] and b.dropped
        cache.release(cache.grids["c"])
        monkeypatch.setattr(fetched, "KEEP_S", 0.0)
        time.sleep(0.01)
        cache.sweep()
        assert cache.grids == {}
        cache.writer.submit(lambda: None).result(5)
        assert list((tmp_path / "fetched").iterdir()) == []
    finally:
        cache.close()
        main.close()
