"""The journal's signing path and the clock: a small step back is waited out, a large one is
refused and named, orders wait for a clock the peers agree with. Real SQLite, no network."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from ledger.chain import SourceChain, now_us
from ledger.membrane import Membrane
from ledger.store import Store
from ledger.testing import genesis_payload, identity, order_payload, reading_payload
from node.errors import NotSigned
from node.journal import Journal
from node.p2p.clock import ClockWatch
from node.p2p.peers import PeerTable


class Clock:
    """The wall clock plus an offset the test sets (a clock set ahead, then back)."""

    def __init__(self) -> None:
        self.offset_us = 0

    def __call__(self) -> int:
        return now_us() + self.offset_us


@pytest.fixture
def parts(tmp_path):
    store = Store(tmp_path / "own.sqlite3", Membrane("test"))
    clock = Clock()
    chain = SourceChain(store, identity(1), clock)
    peers = PeerTable(own_url="http://me", own_agent=identity(1).agent)
    watch = ClockWatch(peers, Counter())
    journal = Journal(store, chain, Counter(), push=lambda actions: None, clock=watch)
    yield journal, clock, watch, peers
    journal.close()
    store.close()


def test_a_small_step_back_is_waited_out_and_nothing_is_stamped_ahead(parts):
    journal, clock, _, _ = parts

    async def run():
        clock.offset_us = 800_000  # 0.8 s ahead while the genesis is signed ...
        genesis = await journal.append("genesis", genesis_payload())
        clock.offset_us = 0  # ... then set right
        started = time.monotonic()
        bid = await journal.append("bid", order_payload(1))
        return genesis, bid, time.monotonic() - started, now_us()

    genesis, bid, waited, after = asyncio.run(run())
    assert 0.5 < waited < 2.5
    assert genesis.ts <= bid.ts <= after


def test_a_large_step_back_is_refused_and_named_and_the_reading_kept(parts):
    journal, clock, watch, _ = parts

    async def run():
        clock.offset_us = 600_000_000
        await journal.append("genesis", genesis_payload())
        clock.offset_us = 0
        with pytest.raises(NotSigned) as refused:
            await journal.append("reading", reading_payload(1))
        assert journal.chain.head().seq == 0  # nothing signed, nothing stamped in the future
        assert 590 < watch.to_json()["chain_ahead_of_clock_s"] <= 600
        clock.offset_us = 600_100_000  # the clock passes the head (here: as if time went by)
        bid = await journal.append("bid", order_payload(2))
        return refused.value, bid

    refused, bid = asyncio.run(run())
    assert refused.reason == "clock-behind-chain"
    assert watch.metrics["not_signed:clock-behind-chain"] == 1
    assert watch.to_json()["chain_ahead_of_clock_s"] == 0
    kept = journal.store.chain(journal.chain.agent)[1]
    assert (kept.type, bid.seq) == ("reading", 2)  # the kept reading first, then the bid
    assert journal.metrics["signed_late"] == 1


def test_orders_are_refused_while_the_peers_find_our_clock_off(parts):
    journal, _, watch, peers = parts
    peers.add_url("http://peer")
    t = now_us()
    watch.sample("http://peer", t, t + 1000, {"PicoGrid-Time": str(t - 300_000_000)})

    async def run():
        await journal.append("genesis", genesis_payload())
        with pytest.raises(NotSigned) as refused:
            await journal.append("offer", order_payload(1))
        await journal.append("reading", reading_payload(1))  # not an order: signed
        return refused.value

    assert asyncio.run(run()).reason == "clock-off"
    assert journal.chain.head().seq == 1
