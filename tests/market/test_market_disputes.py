"""Protocol 2: revisions heal disputes, the final deadline ends them, defaulters fail and sit out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.charter import GridRules
from ledger.testing import T0, identity
from ledger.view import view_payloads
from market.book import ViewPage, book_from_views, complete_views
from market.clearing import clear
from market.disputes import (
    Signed,
    defaulters,
    excluded_from,
    exclusion_lag,
    first_and_counting,
    outcomes,
)
from market.orders import make_order
from market.participants import Participant
from market.results import money, reconcile
from market.settle import settlement_payload_v2

GATE = T0 + 100_000_000
VIEW_US = GATE + 20_000_000
FINAL = GATE + 40_000_000
RULES = GridRules()
K = 7


def kit(n: int = 5):
    """n settlers: a generator (first id) offering 900 Wh, the others bidding 300 Wh each."""
    ids = sorted(identity(i).agent for i in range(1, n + 1))
    people = {a: Participant(a, f"a{i}", "consumer", f"h{i}") for i, a in enumerate(ids)}
    people[ids[0]] = Participant(ids[0], "sun", "generator", "community")
    orders = [make_order(ids[0], 1, "offer", K, 900, 5000, GATE - 1)]
    orders += [make_order(a, 1, "bid", K, 300, 15000, GATE - 2) for a in ids[1:]]
    return ids, people, orders


def views(held: dict[bytes, list[bytes]]) -> dict[bytes, frozenset[bytes]]:
    pages = [
        ViewPage(a, 3 + i, GATE + 1, K, p["page"], p["pages"], tuple(p["orders"]))
        for a, hashes in held.items()
        for i, p in enumerate(view_payloads(K, hashes))
    ]
    return complete_views(pages, gate_us=GATE, view_us=VIEW_US)


def signed(ids, people, orders, seen, agent, seq, ts) -> Signed:
    book = book_from_views(orders, seen, ids, gate_us=GATE)
    clearing = clear(list(book.orders), people, RULES)
    payload = settlement_payload_v2(agent, K, RULES.mechanism, book, clearing, ids)
    return Signed(seq, ts, tuple(tuple(t) for t in payload["trades"]))


def test_a_late_view_makes_a_dispute_that_a_revision_heals():
    """The worked example of docs/market.md."""
    ids, people, orders = kit(5)
    sun, b1, b2, b3, b4 = ids
    every = [o.hash for o in orders]
    x = orders[4].hash  # b4's bid: b3 and b4 never saw it in time
    full = views({sun: every, b1: every, b2: every, b3: every[:4], b4: every[:4]})
    early = {a: full[a] for a in (b1, b3, b4)}  # b1 settled before sun's and b2's views came
    assert x not in book_from_views(orders, early, ids, gate_us=GATE).orders
    first = {a: [signed(ids, people, orders, full, a, 10, GATE + 25_000_000)] for a in ids}
    first[b1] = [signed(ids, people, orders, early, b1, 10, GATE + 21_000_000)]
    during = outcomes(first, final_us=FINAL, now_us=GATE + 30_000_000)
    assert {o.status for o in during if b1 in (o.trade.seller, o.trade.buyer)} == {"pending"}
    healed = dict(first)
    healed[b1] = first[b1] + [signed(ids, people, orders, full, b1, 11, GATE + 31_000_000)]
    after = outcomes(healed, final_us=FINAL, now_us=FINAL + 1)
    live = [o for o in after if o.status != "superseded"]
    assert {o.status for o in live} == {"confirmed"} and len(live) == 4
    mine = [o for o in live if b1 in (o.trade.seller, o.trade.buyer)]
    assert [(o.first, o.revised, o.trade.energy_wh) for o in mine] == [("disputed", True, 225)]
    gone = [o for o in after if o.status == "superseded"]
    assert [(o.trade.energy_wh, o.first) for o in gone] == [(300, "disputed")]
    unhealed = outcomes(first, final_us=FINAL, now_us=FINAL + 1)
    assert "disputed" in {o.status for o in unhealed}


def test_a_revision_after_the_final_deadline_does_not_count():
    a = [Signed(4, FINAL - 5, ()), Signed(6, FINAL + 1, ((1,),))]
    assert first_and_counting(a, FINAL) == (a[0], a[0])
    assert first_and_counting([Signed(4, FINAL + 1, ())], FINAL) == (Signed(4, FINAL + 1, ()), None)


def test_a_counterparty_that_never_settles_fails_its_trades_and_sits_out():
    ids, people, orders = kit(3)
    sun, b1, b2 = ids
    every = [o.hash for o in orders]
    seen = views({a: every for a in ids})
    by_agent = {a: [signed(ids, people, orders, seen, a, 5, GATE + 22_000_000)] for a in (b1, b2)}
    before = outcomes(by_agent, final_us=FINAL, now_us=FINAL)
    assert {o.status for o in before} == {"pending"}
    after = outcomes(by_agent, final_us=FINAL, now_us=FINAL + 1)
    assert {(o.status, o.defaulter) for o in after} == {("failed", sun)}
    assert defaulters(by_agent, final_us=FINAL) == {sun}
    assert defaulters(by_agent, final_us=FINAL, parties=ids) == {sun}
    assert defaulters({}, final_us=FINAL) == set()
    confirmed = [o.trade for o in after if o.status == "confirmed"]
    bill = reconcile(b1, confirmed, {"import_wh": 300, "export_wh": 0}, RULES)
    assert (bill.spent, bill.imbalance_import_wh) == (0, 300)
    assert bill.imbalance_spent == money(300, RULES.retail)  # the utility grid, at retail
    lag = exclusion_lag(interval_ms=60_000, final_ms=40_000)
    assert lag == 1
    defaults = {K: {sun}}
    sits_out = [j for j in range(K, K + 8) if sun in excluded_from(defaults, j, lag=lag, n=3)]
    assert sits_out == [K + 1, K + 2, K + 3]
    assert exclusion_lag(interval_ms=10_000, final_ms=25_000) == 3


@settings(max_examples=50, deadline=None)
@given(st.integers(3, 7), st.data())
def test_once_gossip_converges_every_honest_pair_agrees(n, data):
    ids, people, orders = kit(n)
    every = [o.hash for o in orders]
    held = {a: [h for h in every if data.draw(st.booleans())] for a in ids}
    full = views(held)
    by_agent = {}
    for a in ids:  # each first settles over whatever views had reached it, then revises
        early = {v: full[v] for v in data.draw(st.sets(st.sampled_from(ids)))}
        by_agent[a] = [signed(ids, people, orders, early, a, 5, GATE + 21_000_000)]
        by_agent[a].append(signed(ids, people, orders, full, a, 6, GATE + 30_000_000))
    result = outcomes(by_agent, final_us=FINAL, now_us=FINAL + 1)
    assert {o.status for o in result} <= {"confirmed", "superseded"}
    book = book_from_views(orders, full, ids, gate_us=GATE)
    expected = clear(list(book.orders), people, RULES).trades
    got = sorted(o.trade.to_wire() for o in result if o.status == "confirmed")
    assert got == sorted(t.to_wire() for t in expected)
