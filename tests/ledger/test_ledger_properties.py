"""Property tests of the store: round trips, delivery order, forks, pending actions.

Each example runs against a fresh SQLite file of its own.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.actions import Action
from ledger.membrane import Membrane
from ledger.store import Store
from ledger.testing import (
    T0,
    ChainSigner,
    identity,
    reading_payload,
    settlement_payload,
    wire_items,
)

NOW = T0 + 10**12
SETTINGS = settings(max_examples=60, deadline=None)


@contextmanager
def fresh_store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "p.sqlite3", Membrane("test"))
        try:
            yield store
        finally:
            store.close()


def state(store: Store) -> tuple:
    """Everything a delivery order could change: chains, heads, forks, pending."""
    rows = store._db.execute(
        "SELECT g.author, a.seq, a.hash FROM actions AS a JOIN agents AS g ON g.id = a.agent"
        " ORDER BY g.author, a.seq"
    ).fetchall()
    evidence = {a: {x.hash for x in store.fork_evidence(a)} for a in store.forked_authors()}
    return rows, store.heads(), evidence, store.pending_count()


ints = st.integers(-(2**40), 2**40)
amounts = st.integers(0, 2**40)
payloads = st.one_of(
    st.tuples(
        st.sampled_from(["offer", "bid"]),
        st.fixed_dictionaries(
            {"interval": ints, "energy_wh": st.integers(1, 2**40), "price": amounts}
        ),
    ),
    st.tuples(
        st.just("reading"),
        st.builds(
            reading_payload,
            interval=ints,
            import_wh=amounts,
            export_wh=amounts,
            soc_wh=st.none() | amounts,
            sensor=st.text(max_size=20),
        ),
    ),
    st.tuples(
        st.just("settlement"),
        st.builds(
            settlement_payload,
            interval=ints,
            trades=st.lists(
                st.tuples(st.integers(1, 10**6), amounts, st.binary(min_size=32, max_size=32)).map(
                    lambda t: [identity(1).agent, identity(2).agent, t[0], t[1], t[2], t[2]]
                ),
                max_size=3,
            ),
        ),
    ),
)


@SETTINGS
@given(
    st.lists(st.lists(payloads, max_size=12), min_size=1, max_size=3),
    st.lists(st.integers(0, 10**7), min_size=12, max_size=12),
)
def test_random_chains_round_trip(chains, steps):
    signed: dict[bytes, list[Action]] = {}
    for n, entries in enumerate(chains):
        signer = ChainSigner(identity(10 + n))
        actions = [signer.genesis(name=f"agent {n}")]
        for (type_, payload), step in zip(entries, steps, strict=False):
            actions.append(signer.next(type_, payload, ts=actions[-1].ts + step))
        signed[signer.agent] = actions
    with fresh_store() as store:
        everything = [a for chain in signed.values() for a in chain]
        result = store.ingest(wire_items(everything), NOW)
        assert result.accepted == len(everything) and result.rejected == []
        for author, chain in signed.items():
            assert store.chain(author, 0, 100) == chain
            assert store.heads()[author] == (chain[-1].seq, chain[-1].hash)
            assert [store.get(a.hash) for a in chain] == chain
        assert store.integrity_problems() == []


def _chains() -> list[list[Action]]:
    return [ChainSigner(identity(20 + n)).chain(10) for n in range(3)]


CHAINS = _chains()
ALL = [a for chain in CHAINS for a in chain]


def deliveries(pool_size: int) -> st.SearchStrategy[list[list[int]]]:
    """Indices into a pool: every one at least once, some again, shuffled, cut into batches."""
    return (
        st.tuples(
            st.permutations(range(pool_size)),
            st.lists(st.integers(0, pool_size - 1), max_size=5),
            st.lists(st.integers(1, 8), min_size=pool_size + 5, max_size=pool_size + 5),
        )
        .flatmap(lambda t: st.permutations(list(t[0]) + t[1]).map(lambda order: (order, t[2])))
        .map(lambda t: _cut(t[0], t[1]))
    )


def _cut(order: list[int], sizes: list[int]) -> list[list[int]]:
    batches, start = [], 0
    for size in sizes:
        if start >= len(order):
            break
        batches.append(order[start : start + size])
        start += size
    return batches


@SETTINGS
@given(deliveries(len(ALL)))
def test_any_delivery_order_gives_the_same_store(batches):
    with fresh_store() as reference:
        reference.ingest(wire_items(ALL), NOW)
        expected = state(reference)
    with fresh_store() as store:
        for batch in batches:
            store.ingest(wire_items([ALL[i] for i in batch]), NOW)
        assert state(store) == expected
        assert store.pending_count() == 0
        assert store.integrity_problems() == []


@SETTINGS
@given(st.integers(0, 9), st.data())
def test_two_conflicting_actions_always_make_a_fork(seq, data):
    chain = CHAINS[0]
    signer = ChainSigner(identity(20))
    rival = signer.genesis(name="rival") if seq == 0 else signer.at(chain[seq - 1], "offer")
    pool = chain + [rival]
    batches = data.draw(deliveries(len(pool)))
    forks_reported = 0
    with fresh_store() as store:
        for batch in batches:
            forks_reported += len(store.ingest(wire_items([pool[i] for i in batch]), NOW).forks)
        assert store.forked_authors() == {signer.agent}
        assert {a.hash for a in store.fork_evidence(signer.agent)} == {chain[seq].hash, rival.hash}
        assert forks_reported == 1
        assert store.integrity_problems() == []


@SETTINGS
@given(st.lists(st.integers(1, 6), min_size=10, max_size=10), st.booleans())
def test_pending_actions_are_released(sizes, genesis_last):
    chain = CHAINS[1]
    order = list(reversed(chain)) if genesis_last else chain[1:] + chain[:1]
    with fresh_store() as store:
        placed = 0
        for batch in _cut(list(range(len(order))), sizes + [len(order)]):
            result = store.ingest(wire_items([order[i] for i in batch]), NOW)
            placed += result.accepted + result.released
            assert result.accepted + result.pending == len(batch)
        assert placed == len(chain)
        assert store.pending_count() == 0
        assert store.chain(chain[0].author) == chain
