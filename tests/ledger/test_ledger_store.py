"""The SQLite store: ingest, duplicates, pending, forks, warrants, reads, reopening, integrity."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger import store as store_module
from ledger.actions import Action
from ledger.errors import FORKED_AUTHOR
from ledger.membrane import Membrane
from ledger.store import Store, StoreError
from ledger.testing import (
    T0,
    ChainSigner,
    identity,
    order_payload,
    reading_payload,
    settlement_payload,
    warrant_payload,
    wire_items,
)

NOW = T0 + 10**12


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "node.sqlite3", Membrane("test"))
    yield s
    s.close()


def ingest(store: Store, actions: list[Action]):
    result = store.ingest(wire_items(actions), NOW)
    assert result.accepted + result.duplicate + result.pending + len(result.rejected) == len(
        actions
    )
    return result


def test_a_new_store_is_one_wal_file(tmp_path):
    s = Store(tmp_path / "node.sqlite3")
    assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()
    assert (tmp_path / "node.sqlite3").exists()


def test_a_chain_in_order_is_accepted_and_read_back(store):
    signer = ChainSigner(identity(1))
    chain = signer.chain(5)
    result = ingest(store, chain)
    assert (result.accepted, result.duplicate, result.pending, result.rejected) == (5, 0, 0, [])
    assert result.new == chain
    assert store.heads() == {signer.agent: (4, chain[-1].hash)}
    head = store.head(signer.agent)
    assert (head.seq, head.hash, head.ts, head.grid) == (4, chain[-1].hash, chain[-1].ts, "g1")
    assert store.chain(signer.agent) == chain
    assert store.chain_range(signer.agent, 2, 2) == wire_items(chain[2:4])
    assert store.get(chain[3].hash) == chain[3]
    assert store.get(bytes(32)) is None
    assert store.get_by_seq(signer.agent, 1) == chain[1]
    assert store.get_by_seq(signer.agent, 5) is None
    assert store.count() == 5
    assert store.integrity_problems() == []


def test_heads_are_read_at_once_while_a_batch_is_being_written(store):
    signer = ChainSigner(identity(1))
    chain = signer.chain(6)
    ingest(store, chain[:2])
    inside, go_on = threading.Event(), threading.Event()

    def rules_for(grid: str, interval: int | None) -> None:  # called as each order is placed
        if interval == 4:  # seq 2 and 3 are placed, the transaction open, the store locked
            inside.set()
            go_on.wait(10)

    store.limits = rules_for
    writer = threading.Thread(target=ingest, args=(store, chain[2:]))
    reader = ThreadPoolExecutor(1)  # the event loop, reading while the writer writes
    writer.start()
    try:
        assert inside.wait(10)
        read = reader.submit(lambda: (store.heads(), store.head(signer.agent)))
        heads, head = read.result(timeout=5)  # a timeout: it waited for the writer's lock
        assert heads == {signer.agent: (1, chain[1].hash)}  # the last commit, never half a batch
        assert head.seq == 1
    finally:
        go_on.set()
        writer.join(10)
        reader.shutdown()
    assert store.heads() == {signer.agent: (5, chain[5].hash)}
    assert store.head(signer.agent).seq == 5


def test_agents_come_from_the_genesis(store):
    storage = ChainSigner(identity(2))
    g = storage.genesis(grid="g2", name="battery", role="storage", capacity_wh=4000)
    ingest(store, [ChainSigner(identity(1)).genesis(), g])
    row = store.agent(storage.agent)
    assert row is not None
    assert row["grid"] == "g2" and row["role"] == "storage" and row["capacity_wh"] == 4000
    assert row["head_seq"] == 0 and row["forked"] is False
    assert [r["author"] for r in store.agents()] == sorted([identity(1).agent, storage.agent])
    assert store.agent(identity(3).agent) is None


def test_duplicates_are_counted_not_stored_twice(store):
    chain = ChainSigner(identity(1)).chain(3)
    ingest(store, chain)
    again = ingest(store, chain + [chain[1]])
    assert (again.accepted, again.duplicate, again.new) == (0, 4, [])
    assert store.count() == 3


def test_out_of_order_actions_wait_and_are_released(store):
    signer = ChainSigner(identity(1))
    chain = signer.chain(6)
    first = ingest(store, chain[3:])
    assert (first.accepted, first.pending) == (0, 3)
    assert store.pending_count() == 3 and store.head(signer.agent) is None
    second = ingest(store, chain[:2])
    assert (second.accepted, second.pending, second.released) == (2, 0, 0)
    third = ingest(store, [chain[2]])
    assert (third.accepted, third.released) == (1, 3)
    assert third.new == chain[2:]
    assert store.pending_count() == 0
    assert store.chain(signer.agent) == chain
    assert store.integrity_problems() == []


def test_a_long_pending_run_is_released_without_recursion(store):
    chain = ChainSigner(identity(1)).chain(900)
    ingest(store, chain[:1])  # a member: its genesis is held, so up to 1000 actions may wait
    for start in range(899, 1, -100):  # the newest pages first, as a careless peer might send
        ingest(store, chain[max(2, start - 99) : start + 1])
    assert store.pending_count() == 898
    result = ingest(store, chain[1:2])
    assert (result.accepted, result.released) == (1, 898)
    assert store.head(chain[0].author).seq == 899
    assert store.pending_count() == 0


def test_a_pending_action_survives_reopening(tmp_path):
    chain = ChainSigner(identity(1)).chain(3)
    s = Store(tmp_path / "n.sqlite3", Membrane("test"))
    ingest(s, chain[2:])
    s.close()
    s = Store(tmp_path / "n.sqlite3", Membrane("test"))
    assert s.pending_count() == 1
    assert ingest(s, chain[:2]).released == 1
    assert s.head(chain[0].author).seq == 2
    s.close()


def assert_forked(store: Store, author: bytes, a: Action, b: Action) -> None:
    assert author in store.forked_authors()
    assert {x.hash for x in store.fork_evidence(author)} == {a.hash, b.hash}
    row = store.agent(author)
    assert row is None or row["forked"] is True


def test_two_actions_at_one_place_are_a_fork(store):
    signer = ChainSigner(identity(1))
    chain = signer.chain(3)
    rival = signer.at(chain[0])
    ingest(store, chain)
    result = ingest(store, [rival])
    assert result.accepted == 1 and result.rejected == []
    assert [(x.hash, y.hash) for x, y in result.forks] == [(chain[1].hash, rival.hash)]
    assert_forked(store, signer.agent, chain[1], rival)
    # The chain keeps what it held; the author's new actions are refused from now on.
    assert store.chain(signer.agent) == chain
    later = ingest(store, [signer.next()])
    assert later.rejected == [(0, FORKED_AUTHOR)]
    # Evidence coming again is a duplicate, not a new fork and not a rejection.
    assert ingest(store, [rival, chain[1]]).duplicate == 2
    assert store.integrity_problems() == []


def test_a_fork_inside_one_batch_and_a_fork_of_genesis(store):
    signer = ChainSigner(identity(1))
    g = signer.genesis()
    a, b = signer.at(g), signer.at(g, "offer")
    result = ingest(store, [b, g, a])
    assert len(result.forks) == 1
    assert_forked(store, signer.agent, a, b)
    other = ChainSigner(identity(2))
    g1, g2 = other.genesis(name="one"), other.genesis(name="two")
    assert len(ingest(store, [g1, g2]).forks) == 1
    assert_forked(store, other.agent, g1, g2)


def test_conflicting_pending_actions_become_a_fork_when_released(store):
    signer = ChainSigner(identity(1))
    chain = signer.chain(2)
    rival2 = signer.at(chain[1])
    normal2 = signer.next()
    ingest(store, [normal2, rival2])
    assert store.pending_count() == 2
    result = ingest(store, chain)
    assert len(result.forks) == 1
    assert_forked(store, signer.agent, normal2, rival2)
    assert store.pending_count() == 0


def test_pending_actions_of_an_author_are_dropped_when_it_forks(store):
    signer = ChainSigner(identity(1))
    chain = signer.chain(2)
    rival = signer.at(chain[0])
    far = [signer.next(), signer.next()][1]
    ingest(store, chain + [far])
    assert store.pending_count() == 1
    ingest(store, [rival])
    assert store.pending_count() == 0


def test_an_accepted_warrant_marks_the_author_forked(store):
    cheat = ChainSigner(identity(1))
    g = cheat.genesis()
    a, b = cheat.at(g), cheat.at(g, "offer")
    ingest(store, [g, a])
    witness = ChainSigner(identity(2))
    warrant = [witness.genesis(), witness.next("warrant", warrant_payload(a, b))]
    result = ingest(store, warrant)
    assert result.accepted == 2 and result.forks == []  # nothing new for us to warrant
    assert_forked(store, cheat.agent, a, b)
    assert ingest(store, [cheat.at(a)]).rejected == [(0, FORKED_AUTHOR)]
    # A second warrant about the same fork is just another action.
    assert ingest(store, [witness.next("warrant", warrant_payload(b, a))]).accepted == 1


def test_a_warrant_about_an_author_we_never_saw(store):
    cheat = ChainSigner(identity(1))
    g = cheat.genesis()
    a, b = cheat.at(g), cheat.at(g, "offer")
    witness = ChainSigner(identity(2))
    ingest(store, [witness.genesis(), witness.next("warrant", warrant_payload(a, b))])
    assert_forked(store, cheat.agent, a, b)
    assert store.agent(cheat.agent) is None
    assert ingest(store, [g]).rejected == [(0, FORKED_AUTHOR)]


def test_the_market_index_finds_actions_by_grid_and_interval(store):
    home, sun, other = ChainSigner(identity(1)), ChainSigner(identity(2)), ChainSigner(identity(3))
    actions = [home.genesis(), sun.genesis(role="generator"), other.genesis(grid="g2")]
    actions += [
        home.next("bid", order_payload(7)),
        sun.next("offer", order_payload(7)),
        other.next("bid", order_payload(7)),
        home.next("bid", order_payload(8)),
        home.next("reading", reading_payload(7)),
        sun.next("settlement", settlement_payload(7)),
    ]
    ingest(store, actions)
    found = store.by_interval("g1", 7, ("offer", "bid"))
    assert sorted(a.hash for a in found) == sorted(a.hash for a in actions[3:5])
    assert [a.author for a in found] == sorted(a.author for a in found)
    everything = store.by_interval("g1", 7, ("offer", "bid", "settlement", "reading"))
    assert {a.type for a in everything} == {"offer", "bid", "settlement", "reading"}
    assert store.by_interval("g2", 7, ("bid",))[0].author == other.agent
    assert store.by_interval("g1", 9, ("bid",)) == []
    assert store.intervals("g1") == [7, 8]
    plan = store._db.execute(
        "EXPLAIN QUERY PLAN SELECT action_bytes FROM actions WHERE grid = ? AND interval = ?"
        " AND type IN ('offer', 'bid')",
        ("g1", 7),
    ).fetchall()
    assert any("actions_market" in row[-1] for row in plan), plan
    assert not any(row[-1].startswith("SCAN") for row in plan), plan


def test_the_hash_index_finds_old_and_recent_actions(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "HASH_MERGE", 7)
    path = tmp_path / "n.sqlite3"
    s = Store(path, Membrane("test"))
    signers = [ChainSigner(identity(n)) for n in (1, 2, 3)]
    chains = [signer.chain(6) for signer in signers]
    for i in range(0, 6, 2):  # batches of six, so some merges leave actions not yet indexed
        ingest(s, [a for chain in chains for a in chain[i : i + 2]])
    indexed = s._db.execute("SELECT count(*) FROM hashes").fetchone()[0]
    assert 0 < indexed < 18
    assert all(s.get(a.hash) == a for chain in chains for a in chain)
    assert s.get(bytes(32)) is None and s.get(chains[0][0].hash[:8] + bytes(24)) is None
    plan = " ".join(
        row[-1]
        for row in s._db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM hashes WHERE prefix = substr(?, 1, 8)", (b"x",)
        )
    )
    assert "USING PRIMARY KEY" in plan or "USING COVERING INDEX" in plan, plan
    assert s.integrity_problems() == []
    s.close()
    s = Store(path, Membrane("test"))  # what is not indexed yet is counted again on opening
    assert s._unhashed == 18 - indexed
    assert all(s.get(a.hash) == a for chain in chains for a in chain)
    s.close()


def test_everything_is_there_after_reopening(tmp_path):
    path = tmp_path / "n.sqlite3"
    s = Store(path, Membrane("test"))
    signer = ChainSigner(identity(1))
    chain = signer.chain(4)
    rival = signer.at(chain[1])
    ingest(s, chain)
    ingest(s, [rival])
    s.save_charter(1, b"charter one")
    s.save_charter(2, b"charter two")
    s.set_meta("peer", b"http://x")
    heads = s.heads()
    s.close()
    s = Store(path, Membrane("test"))
    assert s.heads() == heads
    assert s.forked_authors() == {signer.agent}
    assert s.chain(signer.agent) == chain
    assert s.charters() == [b"charter one", b"charter two"]
    assert s.get_meta("peer") == b"http://x" and s.get_meta("nope") is None
    assert s.integrity_problems() == []
    s.close()


def test_two_connections_to_one_file_keep_each_other_current(tmp_path):
    path = tmp_path / "n.sqlite3"
    one, two = Store(path, Membrane("test")), Store(path, Membrane("test"))
    chain = ChainSigner(identity(1)).chain(6)
    ingest(one, chain[:3])
    result = ingest(two, chain[3:])  # `two` learns about seq 0..2 before it writes
    assert result.accepted == 3
    assert ingest(one, chain[3:]).duplicate == 3
    assert one.integrity_problems() == []
    one.close()
    two.close()


def test_integrity_problems_finds_tampering(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "HASH_MERGE", 3)  # so the batch of four is hash-indexed
    path = tmp_path / "n.sqlite3"
    s = Store(path, Membrane("test"))
    chain = ChainSigner(identity(1)).chain(4)
    ingest(s, chain)
    s.close()

    def problems_after(sql: str, *args: object) -> list[str]:
        db = sqlite3.connect(path)
        db.execute(sql, args)
        db.commit()
        db.close()
        store = Store(path)
        try:
            return store.integrity_problems()
        finally:
            store.close()

    flipped = bytearray(chain[2].action_bytes)
    flipped[-1] ^= 1
    found = problems_after("UPDATE actions SET action_bytes = ? WHERE seq = 2", bytes(flipped))
    assert found and "seq 2" in found[0] and "bad-signature" in found[0]
    problems_after("UPDATE actions SET action_bytes = ? WHERE seq = 2", chain[2].action_bytes)
    assert problems_after("UPDATE actions SET type = 'offer' WHERE seq = 1")[0].endswith(
        "columns disagree with the signed bytes"
    )
    problems_after("UPDATE actions SET type = 'bid' WHERE seq = 1")
    assert "hash index" in problems_after("UPDATE hashes SET prefix = x'00' WHERE id = 2")[0]
    problems_after("DELETE FROM hashes WHERE id = 2")
    assert "hash index has 3 entries for 4" in problems_after("SELECT 1")[0]
    problems_after("INSERT INTO hashes SELECT substr(hash, 1, 8), id FROM actions WHERE id = 2")
    assert Store(path).integrity_problems() == []
    assert "gap before seq 2" in problems_after("DELETE FROM actions WHERE seq = 1")[0]
    assert "belong to no chain" in problems_after("DELETE FROM agents")[-1]


def test_a_file_of_other_tables_is_refused(tmp_path):
    path = tmp_path / "other.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE actions (x)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="layout"):
        Store(path)


def test_an_in_memory_store_works_for_auditors():
    s = Store(":memory:", Membrane("test"))
    chain = ChainSigner(identity(1)).chain(3)
    assert ingest(s, chain).accepted == 3
    assert s.integrity_problems() == []
    s.close()
