"""The source-chain writer for our own agent."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ledger.chain import ClockBehindChain, SourceChain
from ledger.errors import BAD_PAYLOAD, Invalid
from ledger.membrane import Membrane
from ledger.store import Store
from ledger.testing import T0, genesis_payload, identity, order_payload, wire_items

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """A wall clock the test moves by hand, backwards too."""

    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "own.sqlite3", Membrane("test"))
    yield s
    s.close()


def test_append_gives_the_next_seq_and_the_right_prev(store):
    chain = SourceChain(store, identity(1), Clock())
    g = chain.append("genesis", genesis_payload())
    a1 = chain.append("bid", order_payload(1))
    a2 = chain.append("offer", order_payload(2))
    assert [a.seq for a in (g, a1, a2)] == [0, 1, 2]
    assert (a1.prev, a2.prev) == (g.hash, a1.hash)
    assert chain.head() == store.head(identity(1).agent)
    assert chain.head().hash == a2.hash
    assert store.chain(chain.agent) == [g, a1, a2]


def test_after_the_clock_is_set_back_nothing_is_stamped_ahead_of_it(store, tmp_path):
    clock = Clock(T0 + 3_600_000_000)  # an hour ahead (a dead RTC battery, a bad NTP answer)
    chain = SourceChain(store, identity(1), clock)
    actions = [chain.append("genesis", genesis_payload())]
    clock.t = T0  # the clock is set right again: the head is an hour ahead of it
    with pytest.raises(ClockBehindChain) as refused:
        chain.append("bid", order_payload(1))
    assert refused.value.ahead_us == 3_600_000_000
    assert chain.head().seq == 0  # nothing was signed, nothing stamped in the future
    clock.t = T0 + 3_600_000_000  # the clock reaches the head: equal timestamps are fine
    actions.append(chain.append("bid", order_payload(1)))
    clock.t = T0 + 7_200_000_000
    actions.append(chain.append("bid", order_payload(2)))
    ts = [a.ts for a in actions]
    assert ts == [T0 + 3_600_000_000] * 2 + [T0 + 7_200_000_000]
    # Another node, whose clock is right, accepts the whole chain.
    other = Store(tmp_path / "other.sqlite3", Membrane("test"))
    assert other.ingest(wire_items(actions), T0 + 7_200_000_000).accepted == 3
    other.close()


def test_the_first_action_is_the_genesis_and_only_the_first(store):
    chain = SourceChain(store, identity(1), Clock())
    with pytest.raises(ValueError, match="no genesis"):
        chain.append("bid", order_payload())
    chain.append("genesis", genesis_payload())
    with pytest.raises(ValueError, match="already"):
        chain.append("genesis", genesis_payload())
    assert store.count() == 1


def test_a_bad_payload_is_refused_before_anything_is_signed(store):
    chain = SourceChain(store, identity(1), Clock())
    chain.append("genesis", genesis_payload())
    with pytest.raises(Invalid) as caught:
        chain.append("bid", order_payload(energy_wh=0))
    assert caught.value.reason == BAD_PAYLOAD
    assert store.head(chain.agent).seq == 0


def test_our_genesis_must_pass_our_own_membrane(store):
    chain = SourceChain(store, identity(1), Clock())
    with pytest.raises(Invalid):
        chain.append("genesis", genesis_payload(community="elsewhere"))
    assert store.count() == 0 and store.head(chain.agent) is None


def test_concurrent_appends_from_threads_never_fork(store):
    chain = SourceChain(store, identity(1))
    chain.append("genesis", genesis_payload())
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(25):
                chain.append("bid", order_payload(n * 100 + i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.head(chain.agent).seq == 200
    assert store.forked_authors() == set()
    assert store.integrity_problems() == []


APPENDER = """
import sys
from ledger.chain import SourceChain
from ledger.membrane import Membrane
from ledger.store import Store
from ledger.testing import identity, order_payload
store = Store(sys.argv[1], Membrane("test"))
chain = SourceChain(store, identity(1))
for i in range(int(sys.argv[2])):
    chain.append("bid", order_payload(i))
store.close()
"""


def test_two_processes_appending_to_one_store_never_fork(store):
    """Two writers on one file: SQLite's IMMEDIATE transaction serialises them."""
    chain = SourceChain(store, identity(1))
    chain.append("genesis", genesis_payload())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(store.path), "40"],
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for _ in range(40):
        chain.append("offer", order_payload())
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read().decode() if p.stderr else ""
    assert [a.seq for a in store.chain(chain.agent, 0, 1000)] == list(range(121))
    reopened = Store(store.path, Membrane("test"))
    assert reopened.head(chain.agent).seq == 120
    reopened.close()
    assert store.integrity_problems() == []
    assert store.forked_authors() == set()
