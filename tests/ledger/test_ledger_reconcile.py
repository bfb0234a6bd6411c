"""Range-based set reconciliation over heads (ledger.reconcile): union found, cost of the
difference only, hostile messages refused with ReconcileError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import reconcile as rc
from ledger.codec import encode

authors = st.binary(min_size=32, max_size=32)
heads_entry = st.tuples(st.integers(0, 2**40), st.binary(min_size=32, max_size=32))
heads_maps = st.dictionaries(authors, heads_entry, max_size=300)


def responder(theirs: dict):
    index = rc.HeadSet.of(theirs)
    return lambda query: rc.answer(index, query)


def community(n: int, salt: bytes = b"") -> dict:
    return {rc.blake2b256(salt + i.to_bytes(4, "big")): (i % 7, rc.blake2b256(i.to_bytes(4, "big")))
            for i in range(n)}


@settings(max_examples=150, deadline=None)
@given(heads_maps, heads_maps, st.data())
def test_any_two_head_sets_reconcile_to_their_differences(a: dict, b: dict, data) -> None:
    # Share part of the keys so that ranges are equal, differ in value, or exist on one side.
    shared = data.draw(st.lists(st.sampled_from(sorted(a)), unique=True) if a else st.just([]))
    for author in shared:
        b[author] = data.draw(st.sampled_from([a[author], (a[author][0] + 1, a[author][1])]))
    out = rc.reconcile(a, responder(b))
    assert out.pull == {k: v for k, v in b.items() if a.get(k) != v}
    assert out.push == {k: v for k, v in a.items() if b.get(k) != v}
    assert out.exchanges <= rc.max_rounds(max(len(a), len(b)) + 1) + len(out.pull) + len(out.push)


@settings(max_examples=40, deadline=None)
@given(heads_maps)
def test_synced_sets_cost_one_exchange_of_constant_size(a: dict) -> None:
    out = rc.reconcile(a, responder(dict(a)))
    assert (out.pull, out.push, out.exchanges) == ({}, {}, 1)
    assert out.bytes_sent == 23 and out.bytes_received == 1


@pytest.mark.parametrize("n", [7, 1000, 20_000])
def test_idle_round_costs_the_same_whatever_the_community_size(n: int) -> None:
    heads = community(n)
    out = rc.reconcile(heads, responder(dict(heads)))
    assert out.bytes_sent + out.bytes_received == 24


def test_one_new_head_in_a_thousand_costs_a_few_hundred_bytes_in_bounded_rounds() -> None:
    ours = community(1000)
    theirs = dict(ours)
    newest = sorted(ours)[500]
    theirs[newest] = (ours[newest][0] + 1, bytes(32))
    out = rc.reconcile(ours, responder(theirs))
    assert out.pull == {newest: theirs[newest]} and out.push == {newest: ours[newest]}
    assert out.exchanges <= rc.max_rounds(1000)
    # the whole heads list would be about 70 KB; the difference costs a few pages of ranges
    assert out.bytes_sent + out.bytes_received < 3000


def test_empty_sides() -> None:
    theirs = community(40)
    assert rc.reconcile({}, responder(theirs)).pull == theirs
    assert rc.reconcile(theirs, responder({})).push == theirs
    assert rc.reconcile({}, responder({})).exchanges == 1


def test_large_differences_are_asked_for_in_bounded_queries() -> None:
    ours, theirs = community(3000, b"a"), community(3000, b"b")
    out = rc.reconcile(ours, responder(theirs))
    assert out.pull == theirs and out.push == ours


def test_fingerprint_vector() -> None:
    """A test vector for implementers: one head, its fingerprint over the full range."""
    author, head = bytes(range(32)), bytes(range(32, 64))
    index = rc.HeadSet.of({author: (5, head)})
    fp = index.fingerprint(rc.FULL)
    expected = rc.blake2b256(b"picogrid-head" + author + (5).to_bytes(8, "big") + head)[:16]
    assert fp == expected == bytes.fromhex("1f9136a89f23fb6d5c30cc8afd5d1023")
    assert rc.start(index) == bytes.fromhex("9193c4" "00" "c0" "c410") + expected


BAD = [
    b"\xc1",  # undecodable
    encode({"a": 1}),  # not an array
    encode([[b"", None]]),  # range of two
    encode([[b"", None, b"short"]]),  # fingerprint of the wrong size
    encode([[b"\x01" * 33, None, bytes(16)]]),  # bound too long
    encode([[b"\x05", b"\x01", bytes(16)]]),  # upper below lower
    encode([[b"", None, bytes(16)], [b"\x01", None, bytes(16)]]),  # after the end
    encode([[b"\x05", b"\x09", bytes(16)], [b"\x01", b"\x02", bytes(16)]]),  # not ascending
    encode([[b"", None, []]]),  # items in a query
    encode([[b"", None, bytes(16)]] * (rc.MAX_QUERY + 1)),  # too many ranges
]


@pytest.mark.parametrize("query", BAD)
def test_bad_queries_are_refused(query: bytes) -> None:
    with pytest.raises(rc.ReconcileError):
        rc.answer(rc.HeadSet.of(community(50)), query)


def test_answers_outside_the_question_are_refused() -> None:
    own = rc.HeadSet.of(community(50))
    asked = encode([[b"", b"\x80", own.fingerprint((b"", b"\x80"))]])
    outside = encode([[b"\x80", None, []]])
    with pytest.raises(rc.ReconcileError):
        rc.step(own, asked, outside)
    stray = encode([[b"", b"\x80", [[b"\x90" * 32, 1, bytes(32)]]]])
    with pytest.raises(rc.ReconcileError):
        rc.step(own, asked, stray)
