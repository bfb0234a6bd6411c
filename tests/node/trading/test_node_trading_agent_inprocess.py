"""The agent loop in-process: a real store, a journal and a charter of 2 s intervals; no Node, no
server, no gossip. It signs its orders, its settlement and its reading of an interval, once each,
and after a restart it picks up from its own chain without signing anything twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from ledger.chain import SourceChain
from ledger.store import Store
from ledger.testing import identity
from node.charters import CharterBook
from node.cli.community import default_charter, write_genesis
from node.config import NodeConfig
from node.errors import NotSigned
from node.journal import Journal
from node.trading.agent import AgentLoop

ADMIN = identity(99)
ME = identity(1)


@pytest.fixture
def cfg(tmp_path):
    config = NodeConfig(dir=tmp_path, name="Home 1", role="consumer", household="h1",
                        grid="g1", community="test", admin=ADMIN.agent.hex(), max_power_w=3000)
    epoch = time.time_ns() // 1000 - 1_000_000  # interval 0 began a second ago
    charter = default_charter("test", ADMIN.agent, "g1", interval_ms=2000,
                              epoch_us=epoch).sign(ADMIN)
    write_genesis(config, ME, charter, None)
    return config


class Parts:
    """What the agent loop is built with, as Node builds it; `pushed` records what the journal
    would hand to gossip."""

    def __init__(self, cfg: NodeConfig) -> None:
        self.metrics: Counter[str] = Counter()
        self.store = Store(cfg.store_path)
        self.book = CharterBook(self.store, cfg.community, ADMIN.agent, self.metrics)
        self.pushed: list = []
        self.journal = Journal(self.store, SourceChain(self.store, ME), self.metrics,
                               push=self.pushed.extend)
        self.agent = AgentLoop(cfg, ME.agent, self.store, self.book.charters,
                               self.journal.append, self.metrics)

    def own(self, type_: str) -> list[int]:
        return [a.payload["interval"] for a in self.store.chain(ME.agent, 0, 1000)
                if a.type == type_]

    def close(self) -> None:
        self.journal.close()
        self.store.close()


async def run_until(parts: Parts, done, timeout_s: float) -> None:
    task = asyncio.create_task(parts.agent.run())
    try:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_loop_signs_orders_settlement_and_reading_once_each(cfg):
    parts = Parts(cfg)
    try:
        await run_until(parts, lambda: parts.metrics["readings_signed"] >= 1, 15)
        settled, read = parts.own("settlement"), parts.own("reading")
        assert read, "no reading signed in 15 s"
        k = read[0]
        assert k in settled and k in parts.own("bid")
        assert parts.agent.last_settled is not None and parts.agent.last_settled >= k
        for kind in ("settlement", "reading"):
            assert len(parts.own(kind)) == len(set(parts.own(kind))), f"a {kind} signed twice"
        # every action it signed went to the journal's push (gossip), in order
        assert [a.hash for a in parts.pushed] == [
            a.hash for a in parts.store.chain(ME.agent, 1, 1000)]
    finally:
        parts.close()


async def test_a_restarted_loop_recovers_from_its_own_chain(cfg):
    first = Parts(cfg)
    try:
        await run_until(first, lambda: first.metrics["readings_signed"] >= 1, 15)
        settled, read = set(first.own("settlement")), set(first.own("reading"))
        ordered = set(first.own("bid"))
    finally:
        first.close()
    again = Parts(cfg)
    try:
        assert settled and read
        assert settled <= again.agent.settled and ordered <= again.agent.ordered
        assert read <= again.agent.read
        assert again.agent.last_settled == max(again.agent.settled)
        before = len(again.store.chain(ME.agent, 0, 1000))
        # stepping now signs only what is due after the restart, never an old interval again
        await again.agent.step()
        after = again.store.chain(ME.agent, before, 1000)
        assert all(a.payload["interval"] not in settled for a in after
                   if a.type == "settlement")
    finally:
        again.close()


async def test_a_settlement_that_failed_to_sign_is_signed_on_a_later_tick(cfg):
    parts = Parts(cfg)
    refused: list[int] = []
    sign = parts.agent.settler.append

    async def append_refusing_the_first_settlement(type_: str, payload: dict):
        if type_ == "settlement" and not refused:
            refused.append(payload["interval"])
            raise OSError(28, "No space left on device")  # as a full disk makes SQLite fail
        return await sign(type_, payload)

    parts.agent.settler.append = append_refusing_the_first_settlement
    try:
        # Done when the loop counts the interval settled (the store shows the settlement a
        # moment before the loop resumes after its append).
        await run_until(parts, lambda: refused and refused[0] in parts.agent.settled
                        and refused[0] in parts.own("settlement"), 15)
        assert refused, "no settlement was due in 15 s"
        k = refused[0]
        assert parts.own("settlement").count(k) == 1  # signed once, on a later tick
        assert k in parts.agent.settled
        assert parts.own("view").count(k) == 1  # the view is not signed twice
    finally:
        parts.close()


async def test_a_reading_that_failed_to_sign_is_kept_and_signed_on_a_later_step(cfg):
    parts = Parts(cfg)
    refused: list[dict] = []
    closed: list[int] = []
    sign = parts.agent.append
    meter_close = parts.agent.meter.close_interval

    def counting_close(k: int):  # the meter closes each interval once, refusal or not
        closed.append(k)
        return meter_close(k)

    async def append_refusing_the_first_reading(type_: str, payload: dict):
        if type_ == "reading" and not refused:
            refused.append(payload)
            raise NotSigned("disk-full", "database or disk is full")
        return await sign(type_, payload)

    parts.agent.append = append_refusing_the_first_reading
    parts.agent.meter.close_interval = counting_close
    try:
        # Done when the loop counts the interval read: the reading shows in the store a moment
        # before the loop resumes after its append (a poll on a loaded machine saw it between).
        await run_until(parts, lambda: refused and refused[0]["interval"] in parts.agent.read,
                        20)
        assert refused, "no reading was due in 20 s"
        k = refused[0]["interval"]
        signed = [a.payload for a in parts.store.chain(ME.agent, 0, 1000)
                  if a.type == "reading" and a.payload["interval"] == k]
        assert signed == [refused[0]]  # the very reading refused, signed once
        assert closed.count(k) == 1 and k in parts.agent.read
        assert not parts.agent.unsigned_readings
    finally:
        parts.close()
