"""Pending actions are bounded in count, bytes and age, on a real SQLite file; strangers go first.

The attack: anyone can sign actions at seq >= 1 with a throwaway key (no genesis), and each used
to be held as pending until a global count cap filled; then a member's out-of-order action was
answered `pending` and silently dropped.
"""

from __future__ import annotations

import sqlite3

import pytest

from ledger import pending as store_module
from ledger.errors import PENDING_FULL, WRONG_COMMUNITY
from ledger.keys import Identity
from ledger.membrane import Membrane
from ledger.store import Store
from ledger.tables import LAYOUT_VERSION
from ledger.testing import T0, ChainSigner, identity, settlement_payload, wire_items

NOW = T0 + 10**12


def big_payload(interval: int) -> dict:
    """A settlement of 100 trades, the most it may list: about 14 KB of the 16 KB an action may
    be."""
    trades = [[bytes([1]) * 32, bytes([2]) * 32, 1, 1, bytes(32), bytes(32)] for _ in range(100)]
    return settlement_payload(interval, trades=trades)


def stranger_actions(n_authors: int, per_author: int, first_key: int = 1000) -> list:
    """Actions at seq 1.. of authors whose genesis nobody will ever see."""
    out = []
    for k in range(n_authors):
        signer = ChainSigner(Identity.from_seed((first_key + k).to_bytes(4, "big") * 8))
        signer.genesis()  # signed, never sent
        out += [signer.next("settlement", big_payload(i)) for i in range(per_author)]
    return out


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "node.sqlite3", Membrane("test"))
    yield s
    s.close()


def disk(tmp_path) -> int:
    return sum(f.stat().st_size for f in tmp_path.glob("node.sqlite3*"))


def test_a_stranger_flood_of_16_kb_bodies_keeps_disk_bounded_and_a_members_action(
    store, tmp_path
):
    member = ChainSigner(identity(1))
    store.ingest(wire_items([member.genesis(), member.next()]), NOW)
    flood = stranger_actions(500, 20)  # 10,000 bodies of about 14 KB: 141 MB sent
    assert len(flood) == 10_000 and min(len(a.action_bytes) for a in flood) > 14_000
    for i in range(0, len(flood), 500):
        result = store.ingest(wire_items(flood[i : i + 500]), NOW + i)
        assert result.accepted == 0 and result.pending + len(result.rejected) == 500
        assert {r for _, r in result.rejected} <= {PENDING_FULL}
    assert store.pending_bytes <= store_module.MAX_STRANGER_PENDING_BYTES
    assert disk(tmp_path) < 24 * 2**20, disk(tmp_path)  # against 141 MB posted
    # A member's action that comes early is held, and placed when its predecessor comes.
    seq2, seq3 = member.next(), member.next()
    early = store.ingest(wire_items([seq3]), NOW + 10**6)
    assert (early.pending, early.rejected) == (1, [])
    late = store.ingest(wire_items([seq2]), NOW + 2 * 10**6)
    assert (late.accepted, late.released) == (1, 1)
    assert store.head(member.agent).seq == 3


def test_strangers_are_evicted_first_and_a_member_that_cannot_be_held_is_told_to_retry(
    store, monkeypatch
):
    strangers = stranger_actions(4, 2)
    size = len(strangers[0].action_bytes) + 64
    monkeypatch.setattr(store_module, "MAX_PENDING_BYTES", 8 * size + 100)
    assert store.ingest(wire_items(strangers), NOW).pending == 8
    member = ChainSigner(identity(1))
    chain = [member.genesis(), member.next()]
    chain += [member.next("settlement", big_payload(i)) for i in range(12)]
    store.ingest(wire_items(chain[:2]), NOW)
    result = store.ingest(wire_items(chain[3:]), NOW + 1)  # seq 2 is missing: all wait
    held = result.pending
    assert held == 8  # the strangers' actions made room for the member's
    assert store.pending_count() == 8 and store._stranger_bytes() == 0
    # The rest is never answered `pending` and then dropped: it is refused as `pending-full`.
    assert [r for _, r in result.rejected] == [PENDING_FULL] * (11 - held)
    # The sender retries once the predecessor is in, and everything lands.
    assert store.ingest(wire_items([chain[2]]), NOW + 2).released == held
    again = store.ingest(wire_items(chain[3 + held :]), NOW + 3)
    assert again.accepted == 11 - held and store.head(member.agent).seq == 13


def test_a_member_over_its_own_bound_is_told_to_retry(store, monkeypatch):
    monkeypatch.setattr(store_module, "MAX_PENDING_PER_AUTHOR", 3)
    member = ChainSigner(identity(1))
    chain = member.chain(8)
    store.ingest(wire_items(chain[:1]), NOW)
    result = store.ingest(wire_items(chain[2:]), NOW)
    assert result.pending == 3 and result.rejected == [(3, PENDING_FULL), (4, PENDING_FULL),
                                                        (5, PENDING_FULL)]
    assert store.rejected_by_reason[PENDING_FULL] == 3


def test_a_stranger_is_held_only_up_to_its_small_bound(store):
    (stranger,) = [ChainSigner(identity(9))]
    chain = stranger.chain(store_module.MAX_PENDING_PER_STRANGER + 3)
    result = store.ingest(wire_items(chain[1:]), NOW)
    assert result.pending == store_module.MAX_PENDING_PER_STRANGER
    assert {r for _, r in result.rejected} == {PENDING_FULL}
    # once its genesis comes it is a member: what was held is placed
    placed = store.ingest(wire_items(chain[:1]), NOW)
    assert placed.released == store_module.MAX_PENDING_PER_STRANGER


def test_pending_actions_are_purged_when_old_and_the_purge_survives_reopening(tmp_path):
    s = Store(tmp_path / "node.sqlite3", Membrane("test"))
    s.ingest(wire_items(stranger_actions(3, 2)), NOW)
    assert s.pending_count() == 6
    s.close()
    s = Store(tmp_path / "node.sqlite3", Membrane("test"))
    assert s.pending_count() == 6 and s.pending_bytes > 6 * 14_000
    later = NOW + store_module.MAX_PENDING_AGE_US + 1
    fresh = stranger_actions(1, 1, first_key=5000)
    assert s.ingest(wire_items(fresh), later).pending == 1
    assert s.pending_count() == 1  # the old six are gone, the fresh one stays
    s.close()
    db = sqlite3.connect(tmp_path / "node.sqlite3")
    assert db.execute("SELECT count(*) FROM pending").fetchone()[0] == 1


def test_an_author_whose_genesis_was_refused_cannot_fill_pending(tmp_path):
    admin = identity(99)
    s = Store(tmp_path / "node.sqlite3", Membrane("test", admin.agent, open=False))
    outsider = ChainSigner(identity(5)).chain(5)
    assert s.ingest(wire_items(outsider[2:]), NOW).pending == 3
    refused = s.ingest(wire_items(outsider[:1]), NOW)  # no invite: refused
    assert refused.rejected == [(0, WRONG_COMMUNITY)]
    assert s.pending_count() == 0
    again = s.ingest(wire_items(outsider[3:]), NOW)
    assert [r for _, r in again.rejected] == [WRONG_COMMUNITY, WRONG_COMMUNITY]
    s.membrane = Membrane("test", admin.agent, open=True)  # a new charter: judged afresh
    assert s.ingest(wire_items(outsider[:1]), NOW).accepted == 1
    s.close()


def test_a_layout_4_store_is_migrated_and_keeps_its_pending_actions(tmp_path):
    path = tmp_path / "node.sqlite3"
    s = Store(path, Membrane("test"))
    s.ingest(wire_items(stranger_actions(1, 2)), NOW)
    s.close()
    db = sqlite3.connect(path)  # make it as version 4 wrote it
    db.execute("DROP INDEX pending_by_age")
    db.execute("ALTER TABLE pending DROP COLUMN received_us")
    db.execute("PRAGMA user_version = 4")
    db.commit()
    db.close()
    s = Store(path, Membrane("test"))
    assert s._db.execute("PRAGMA user_version").fetchone()[0] == LAYOUT_VERSION == 5
    assert s.pending_count() == 2
    s.close()
