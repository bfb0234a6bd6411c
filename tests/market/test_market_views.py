"""Protocol 2: the book from the settlers' views, settlements of any size, and the audit's judge."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.actions import sign_action
from ledger.charter import Charter, GridRules
from ledger.testing import T0, identity
from ledger.validation import check_intrinsic
from ledger.view import view_payloads
from market.book import ViewPage, book_from_views, complete_views, deadlines, majority
from market.clearing import clear
from market.judge import Context, judge_settlement
from market.orders import make_order
from market.participants import Participant
from market.settle import expand_trades, listed_trades, settlement_payload_v2

GATE = T0 + 100_000_000
VIEW_US = GATE + 20_000_000
RULES = GridRules()
K = 7


def agents(n: int) -> list[bytes]:
    return sorted(identity(i).agent for i in range(1, n + 1))


def page(author: bytes, hashes, *, seq: int = 5, ts: int = GATE + 1) -> list[ViewPage]:
    return [
        ViewPage(author, seq + i, ts, K, p["page"], p["pages"], tuple(p["orders"]))
        for i, p in enumerate(view_payloads(K, hashes))
    ]


def kit(n: int = 5):
    """n settlers: one generator (first id) offering 900 Wh, the others bidding 300 Wh each."""
    ids = agents(n)
    people = {a: Participant(a, f"a{i}", "consumer", f"h{i}") for i, a in enumerate(ids)}
    people[ids[0]] = Participant(ids[0], "sun", "generator", "community")
    orders = [make_order(ids[0], 1, "offer", K, 900, 5000, GATE - 1)]
    orders += [make_order(a, 1, "bid", K, 300, 15000, GATE - 2) for a in ids[1:]]
    return ids, people, orders


def views_of(ids, hashes) -> dict[bytes, frozenset[bytes]]:
    pages = [p for a in ids for p in page(a, hashes)]
    return complete_views(pages, gate_us=GATE, view_us=VIEW_US)


def test_the_book_is_what_a_majority_of_settlers_held():
    ids, _, orders = kit(5)
    hashes = [o.hash for o in orders]
    views = views_of(ids[:3], hashes) | views_of(ids[3:], hashes[:2])
    book = book_from_views(orders, views, ids, gate_us=GATE)
    assert [o.hash for o in book.orders] == sorted(hashes)  # 3 of 5 views hold every order
    assert book.quorum and book.missing == () and book.used == tuple(ids)
    few = book_from_views(orders, views_of(ids[:2], hashes), ids, gate_us=GATE)
    assert few.orders == () and not few.quorum  # 2 of 5 views: nothing counts


def test_a_back_dated_order_in_no_honest_view_never_enters():
    ids, _, orders = kit(5)
    honest = views_of(ids, [o.hash for o in orders])
    late = make_order(ids[1], 2, "bid", K, 5000, 30000, GATE - 10)  # stamped before the gate
    liar = views_of(ids[1:2], [o.hash for o in orders] + [late.hash])  # even its author's view
    book = book_from_views(orders + [late], honest | liar, ids, gate_us=GATE)
    assert late not in book.orders
    assert book.orders == book_from_views(orders, honest, ids, gate_us=GATE).orders


def test_a_replacement_signed_after_the_views_with_the_original_timestamp_never_counts():
    ids, _, orders = kit(5)
    original = orders[1]
    replacement = make_order(original.author, 2, "bid", K, 1, 0, original.ts)
    views = views_of(ids, [o.hash for o in orders])
    book = book_from_views(orders + [replacement], views, ids, gate_us=GATE)
    assert original in book.orders and replacement not in book.orders


def test_a_replacement_before_the_views_replaces_and_ties_go_by_seq_then_hash():
    ids, _, orders = kit(3)
    newer = make_order(orders[1].author, 2, "bid", K, 100, 15000, GATE - 1)
    views = views_of(ids, [o.hash for o in orders + [newer]])
    book = book_from_views(orders + [newer], views, ids, gate_us=GATE)
    assert newer in book.orders and orders[1] not in book.orders


def test_late_premature_incomplete_and_second_views_do_not_count():
    ids, _, orders = kit(3)
    hashes = [o.hash for o in orders]
    a, b, c = ids
    pages = page(a, hashes, ts=VIEW_US + 1) + page(b, hashes, ts=GATE)  # late; before the gate
    big = [bytes([i // 256, i % 256]) + bytes(30) for i in range(500)]
    pages += page(c, big)[:1]  # page 0 of 2 only
    assert complete_views(pages, gate_us=GATE, view_us=VIEW_US) == {}
    first = page(a, hashes[:1], seq=3)
    second = page(a, hashes, seq=9)  # a second view later in a's chain changes nothing
    assert complete_views(first + second, gate_us=GATE, view_us=VIEW_US) == {
        a: frozenset(hashes[:1])
    }
    whole = complete_views(page(c, big), gate_us=GATE, view_us=VIEW_US)
    assert whole == {c: frozenset(big)}


def test_orders_a_majority_holds_but_this_node_lacks_are_named_missing():
    ids, _, orders = kit(3)
    views = views_of(ids, [o.hash for o in orders])
    book = book_from_views(orders[1:], views, ids, gate_us=GATE)
    assert book.missing == (orders[0].hash,)


def test_charter_limits_forks_exclusions_and_strangers_keep_orders_out():
    ids, _, orders = kit(5)
    stranger = make_order(identity(99).agent, 1, "bid", K, 10, 1, GATE - 1)
    huge = make_order(ids[2], 3, "offer", K, RULES.max_order_wh + 1, 0, GATE - 1)
    every = orders + [stranger, huge]
    views = views_of(ids, [o.hash for o in every])
    book = book_from_views(
        every, views, ids, gate_us=GATE, rules=RULES, forked={ids[3]}, excluded={ids[4]}
    )
    assert {o.author for o in book.orders} == set(ids[:3])
    assert huge not in book.orders and stranger not in book.orders
    assert majority(ids) == 3


def test_deadlines_come_from_the_charter():
    c = Charter(
        "c",
        bytes(32),
        epoch_us=0,
        interval_ms=60_000,
        lead_ms=10_000,
        grace_ms=2_000,
        view_ms=5_000,
        final_ms=30_000,
    )
    d = deadlines(c, 3)
    assert (d.gate_us, d.view_from_us, d.view_us, d.final_us) == (
        170_000_000,
        172_000_000,
        175_000_000,
        200_000_000,
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 7), st.randoms(use_true_random=False), st.data())
def test_same_views_same_book_in_any_order(n, rnd, data):
    ids, _, orders = kit(n)
    held = {a: [o.hash for o in orders if data.draw(st.booleans())] for a in ids}
    pages = [p for a in ids for p in page(a, held[a])]
    shuffled = pages[:]
    rnd.shuffle(shuffled)
    one = book_from_views(
        orders, complete_views(pages, gate_us=GATE, view_us=VIEW_US), ids, gate_us=GATE
    )
    other_orders = orders[:]
    rnd.shuffle(other_orders)
    two = book_from_views(
        other_orders, complete_views(shuffled, gate_us=GATE, view_us=VIEW_US), ids, gate_us=GATE
    )
    assert one == two
    for o in one.orders:  # everything in the book is in a majority of views
        assert sum(o.hash in held[a] for a in ids) >= majority(ids)


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 9), st.data())
def test_an_order_held_by_no_majority_never_enters(n, data):
    ids, _, orders = kit(n)
    intruder = make_order(ids[-1], 7, "bid", K, 50, 15000, GATE - data.draw(st.integers(0, 10**9)))
    liars = data.draw(st.sets(st.sampled_from(ids), max_size=(n - 1) // 2))
    views = views_of(ids, [o.hash for o in orders]) | views_of(
        sorted(liars), [o.hash for o in orders] + [intruder.hash]
    )
    book = book_from_views(orders + [intruder], views, ids, gate_us=GATE)
    assert intruder not in book.orders


def settle(ids, people, orders, views, agent, **kw):
    book = book_from_views(orders, views, ids, gate_us=GATE)
    clearing = clear(list(book.orders), people, RULES)
    return book, settlement_payload_v2(agent, K, RULES.mechanism, book, clearing, ids, **kw)


def context(ids, people, orders, views) -> Context:
    return Context(K, ids, views, orders, people, RULES, GATE)


def test_the_judge_never_accuses_an_honest_settler_whatever_its_store_holds():
    ids, people, orders = kit(5)
    full = views_of(ids, [o.hash for o in orders])
    lagging = {a: full[a] for a in ids[:3]}  # settled before two views reached it
    replacement = make_order(orders[1].author, 9, "bid", K, 1, 0, orders[1].ts)
    auditor = context(ids, people, orders + [replacement], full)
    for views in (full, lagging):
        _, payload = settle(ids, people, orders, views, ids[1])
        assert judge_settlement(ids[1], payload, auditor).status == "matches"
    _, honest = settle(ids, people, orders, full, ids[0])
    forged = honest | {"grid_export_wh": honest["grid_export_wh"] + 1}
    assert judge_settlement(ids[0], forged, auditor).status == "differs"
    blind = context(ids, people, orders, {a: full[a] for a in ids[:2]})
    assert judge_settlement(ids[0], honest, blind).status == "unverifiable"
    strangers = context(ids[:4], people, orders, full)
    assert judge_settlement(ids[0], honest, strangers).status == "unverifiable"


def test_a_settlement_of_1000_trades_is_one_valid_action_others_can_expand():
    ids = agents(2)[:1] + sorted(identity(1000 + i).agent for i in range(1000))
    sun = ids[0]
    people = {a: Participant(a, f"c{i}", "consumer", f"h{i}") for i, a in enumerate(ids)}
    people[sun] = Participant(sun, "sun", "generator", "community")
    orders = [make_order(sun, 1, "offer", K, 500_000, 0, GATE - 1)]
    orders += [make_order(a, 1, "bid", K, 300, 15000, GATE - 1) for a in ids[1:]]
    hashes = [o.hash for o in orders]
    views = views_of(ids[:600], hashes)  # 1001 hashes: three pages per view
    book, payload = settle(ids, people, orders, views, sun)
    assert payload["trade_count"] == 1000 and payload["trades"] == []
    signed = sign_action(identity(1), 1, bytes(32), GATE + 2, "settlement", payload)
    assert len(signed.action_bytes) < 2000
    check_intrinsic(signed.action_bytes, signed.signature, GATE + 2)
    assert listed_trades(payload) is None
    recomputed = [t.to_wire() for t in clear(list(book.orders), people, RULES).trades_of(sun)]
    assert expand_trades(payload, recomputed) == recomputed
    assert expand_trades(payload, recomputed[:-1]) is None
    assert judge_settlement(sun, payload, context(ids, people, orders, views)).status == "matches"


def test_small_settlements_list_their_trades():
    ids, people, orders = kit(3)
    _, payload = settle(ids, people, orders, views_of(ids, [o.hash for o in orders]), ids[0])
    assert payload["trade_count"] == 2 and len(payload["trades"]) == 2
    assert listed_trades(payload) == payload["trades"]


def test_declared_capacity_beyond_the_charter_is_cut_in_clearing():
    sun, battery = agents(2)
    people = {
        sun: Participant(sun, "sun", "generator", "community"),
        battery: Participant(battery, "b", "storage", "community", 2**63 - 1, 2**63 - 1),
    }
    orders = [
        make_order(sun, 1, "offer", K, 60_000, 0, GATE - 1),
        make_order(battery, 1, "bid", K, 50_000, 20_000, GATE - 1),
    ]
    rules = GridRules(mechanism="pay-as-bid", max_capacity_wh=20_000, max_power_w=5_000)
    bought = sum(t.energy_wh for t in clear(orders, people, rules).trades)
    assert bought == 20_000
    hourly = clear(orders, people, rules, interval_ms=3_600_000).trades
    assert sum(t.energy_wh for t in hourly) == 5_000  # 5,000 W for one hour
