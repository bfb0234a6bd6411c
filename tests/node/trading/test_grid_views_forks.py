"""A forked author's order that a node holds only as fork evidence is held, not missing.

A forker signs two bids at one seq and sends one to each side of the grid. Each node keeps the
branch it got first in the chain and the other as evidence. When a majority of views counted the
other branch, a node can never fetch it as a chain action; before the fix it reported that order
missing until the final deadline and abstained (issue #10), though the forker is barred anyway.
"""

from __future__ import annotations

from ledger.charter import Charter, GridRules
from ledger.store import Store
from ledger.testing import T0, ChainSigner, identity, order_payload, wire_items
from ledger.view import view_payloads
from market.book import deadlines
from node.trading.grid_views import interval_book

CHARTER = Charter("test", identity(90).agent, interval_ms=60_000, lead_ms=10_000,
                  grace_ms=2_000, view_ms=5_000, final_ms=30_000, grids={"g1": GridRules()})
K = T0 // 60_000_000 + 10
D = deadlines(CHARTER, K)


def test_an_order_held_as_fork_evidence_is_not_missing():
    honest = [ChainSigner(identity(i)) for i in range(1, 4)]
    forker = ChainSigner(identity(9))
    chains = {s.agent: [s.genesis(name=f"n{i}", household=f"h{i}")]
              for i, s in enumerate([*honest, forker])}
    orders = [s.next("bid", order_payload(K, 100 + i, 15000), ts=D.gate_us - 5_000_000)
              for i, s in enumerate(honest)]
    for s, o in zip(honest, orders, strict=True):
        chains[s.agent].append(o)
    base = chains[forker.agent][0]
    branch_a = forker.at(base, "bid", order_payload(K, 100, 30000))
    branch_b = forker.at(base, "bid", order_payload(K, 200, 30000))
    # Every honest node held branch A when it signed its view: A is counted.
    for s in honest:
        for p in view_payloads(K, [o.hash for o in orders] + [branch_a.hash]):
            chains[s.agent].append(s.next("view", p, ts=D.gate_us + 1_000_000))

    store = Store(":memory:", None)
    try:
        store.ingest(wire_items([*chains[forker.agent], branch_b]), D.final_us)  # B first
        for s in honest:
            store.ingest(wire_items(chains[s.agent]), D.final_us)
        store.ingest(wire_items([branch_a]), D.final_us)  # A arrives: the fork is evidence
        assert store.forked_authors() == {forker.agent}
        ib = interval_book(store, [CHARTER], "g1", K)
        assert ib is not None
        assert ib.book.quorum and ib.book.missing == ()
        assert {o.hash for o in ib.book.orders} == {o.hash for o in orders}
    finally:
        store.close()
