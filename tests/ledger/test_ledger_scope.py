"""Replication scoped by grid (ledger.scope): own grid whole, others' geneses, warrants, fork
evidence and head pointers; a fork in another grid is still pulled as evidence."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.scope import Holding, Scope, plan
from ledger.testing import ChainSigner, identity

A, B = Scope("a"), Scope("b")
TYPES = ["genesis", "offer", "bid", "settlement", "reading", "warrant"]


def key(n: int) -> bytes:
    return bytes([n]) * 32


def test_holding_by_grid() -> None:
    assert A.holding("a") is Holding.FULL
    assert A.holding("z") is Holding.SPARSE
    assert A.holding(None) is Holding.UNKNOWN


@given(st.sampled_from(TYPES), st.sampled_from(["a", "b", None]), st.booleans())
def test_keeps(type_: str, grid: str | None, evidence: bool) -> None:
    expected = grid == "a" or type_ in ("genesis", "warrant") or evidence
    assert A.keeps(grid, type_, evidence) is expected


def test_settlement_never_needs_another_grids_orders() -> None:
    for type_ in ("offer", "bid", "settlement", "reading"):
        assert not A.keeps("b", type_)
        assert A.keeps("a", type_)


def test_plan_pulls_own_grid_whole_and_points_at_others() -> None:
    grids = {key(1): "a", key(2): "b"}
    ours = {key(1): (3, key(9)), key(2): (3, key(9))}
    theirs = {key(1): (7, key(8)), key(2): (9, key(8)), key(3): (4, key(8))}
    p = plan(A, grids, ours, theirs)
    assert p.pulls == [(key(1), 4, 7), (key(3), 0, 0)]
    assert p.pointers == {key(2): (9, key(8)), key(3): (4, key(8))}
    assert p.forks == []


def test_a_fork_in_another_grid_is_pulled_as_evidence() -> None:
    """Two signed actions of a grid-b author at one seq: a grid-a node that holds one head and
    sees the other pulls it, and the pulled pair is kept as fork evidence."""
    signer = ChainSigner(identity(5))
    genesis = signer.genesis(grid="b")
    first = signer.next()
    second = signer.at(genesis)
    assert first.seq == second.seq and first.hash != second.hash
    grids = {signer.agent: "b"}
    p = plan(A, grids, {signer.agent: (first.seq, first.hash)},
             {signer.agent: (second.seq, second.hash)})
    assert p.forks == [signer.agent]
    assert p.pulls == [(signer.agent, second.seq, second.seq)]
    assert A.keeps("b", "offer", fork_evidence=True)


@settings(max_examples=100)
@given(st.dictionaries(st.integers(0, 20), st.tuples(st.integers(0, 50), st.integers(0, 3)),
                       max_size=15),
       st.dictionaries(st.integers(0, 20), st.tuples(st.integers(0, 50), st.integers(0, 3)),
                       max_size=15),
       st.dictionaries(st.integers(0, 20), st.sampled_from(["a", "b"])))
def test_plan_never_pulls_a_foreign_range_beyond_genesis_or_evidence(ours, theirs, grids) -> None:
    ours_h = {key(k): (s, key(100 + h)) for k, (s, h) in ours.items()}
    theirs_h = {key(k): (s, key(100 + h)) for k, (s, h) in theirs.items()}
    g = {key(k): v for k, v in grids.items()}
    p = plan(A, g, ours_h, theirs_h)
    for author, start, until in p.pulls:
        if author in p.forks:
            assert start == until == ours_h[author][0]
        elif g.get(author) != "a":
            assert (start, until) == (0, 0) and author not in g
        else:
            assert until == theirs_h[author][0] > (ours_h.get(author, (-1,))[0])
    for author, (seq, head) in theirs_h.items():
        mine = ours_h.get(author)
        newer = mine is None or mine[0] < seq
        if newer and g.get(author) == "a":
            assert any(a == author for a, _, _ in p.pulls)
        elif newer:
            assert p.pointers[author] == (seq, head)
