"""Every invariant of DESIGN "Settlement", for every mechanism, over random books."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.charter import MECHANISMS, GridRules
from market.auctions import cancel_own_crossing
from market.battery import battery_limits
from market.clearing import clear, usable_orders
from market.orders import make_order, select_book
from market.participants import Participant

HOUSEHOLDS = ("h1", "h2", "h3", "community")
INTERVALS_MS = (3_600_000, 900_000, 10_000)


@st.composite
def markets(draw):
    """(participants, book, socs, interval_ms, rules): random agents with at most one bid and
    one offer each; storage orders are within what the battery can do unless `wild`."""
    n = draw(st.integers(1, 12))
    wild = draw(st.booleans())
    interval_ms = draw(st.sampled_from(INTERVALS_MS))
    participants, socs, orders = {}, {}, []
    for i in range(n):
        role = draw(st.sampled_from(("consumer", "generator", "storage")))
        capacity = draw(st.integers(1, 20_000)) if role == "storage" else 0
        power = draw(st.integers(0, 6_000))
        p = Participant(
            bytes([i + 1]) * 32, f"a{i}", role, draw(st.sampled_from(HOUSEHOLDS)), capacity, power
        )
        participants[p.agent] = p
        soc = draw(st.integers(0, capacity)) if role == "storage" else 0
        socs[p.agent] = soc
        out_limit, in_limit = (
            battery_limits(p, soc, interval_ms) if role == "storage" else (5000, 5000)
        )
        for side, limit in (("offer", out_limit), ("bid", in_limit)):
            if wild:
                limit = 5000
            if limit > 0 and draw(st.booleans()):
                energy = draw(st.integers(1, limit))
                price = draw(st.integers(0, 40_000))
                orders.append(make_order(p.agent, len(orders) + 1, side, 7, energy, price))
    book = select_book(orders, gate_us=0, members=set(participants), forked=set())
    prices = draw(st.lists(st.integers(0, 40_000), min_size=4, max_size=4))
    mechanism = draw(st.sampled_from(MECHANISMS))
    rules = GridRules(mechanism, *prices)
    return participants, book, socs, interval_ms, rules


def capped(order, who, interval_ms):
    if who.role == "storage":
        return min(order.energy_wh, who.capacity_wh, who.power_cap_wh(interval_ms))
    return order.energy_wh


def usable(order, who):
    return (who.role, order.side) in {
        ("consumer", "bid"),
        ("generator", "offer"),
        ("storage", "bid"),
        ("storage", "offer"),
    }


@settings(max_examples=300, deadline=None)
@given(markets())
def test_invariants(market):
    participants, book, socs, interval_ms, rules = market
    c = clear(book, participants, rules, interval_ms=interval_ms)
    orders = {o.hash: o for o in book}
    filled = {h: 0 for h in orders}
    bought = {a: 0 for a in participants}
    sold = {a: 0 for a in participants}
    for t in c.trades:
        offer, bid = orders[t.offer], orders[t.bid]
        # trades reference real orders of the right author and side, and positive energy
        assert (offer.author, offer.side, bid.author, bid.side) == (
            t.seller,
            "offer",
            t.buyer,
            "bid",
        )
        assert t.energy_wh > 0 and t.price >= 0
        # no agent trades with itself
        assert t.seller != t.buyer
        filled[t.offer] += t.energy_wh
        filled[t.bid] += t.energy_wh
        bought[t.buyer] += t.energy_wh
        sold[t.seller] += t.energy_wh
        # individual rationality in the auctions; tariffs in merit order
        s, b = participants[t.seller], participants[t.buyer]
        if rules.mechanism == "merit-order":
            inside = s.household == b.household and s.household != "community"
            assert t.price == (rules.household_price if inside else rules.community_price)
        else:
            assert offer.price <= t.price <= bid.price
        if rules.mechanism == "pay-as-bid":
            assert t.price == bid.price
    if rules.mechanism == "pay-as-clear":
        assert {t.price for t in c.trades} <= {c.clearing_price}
    # no order over-filled (storage orders within the battery's capacity and power)
    for h, o in orders.items():
        who = participants[o.author]
        assert filled[h] <= (capped(o, who, interval_ms) if usable(o, who) else 0)
    # energy balance: every Wh bid by a consumer is bought or imported, every Wh offered by a
    # generator is sold or exported; storage never touches the utility grid
    for a, who in participants.items():
        mine = [o for o in book if o.author == a and usable(o, who)]
        if who.role == "consumer":
            assert bought[a] + c.grid_import_wh.get(a, 0) == sum(o.energy_wh for o in mine)
            assert sold[a] == 0 and a not in c.grid_export_wh
        elif who.role == "generator":
            assert sold[a] + c.grid_export_wh.get(a, 0) == sum(o.energy_wh for o in mine)
            assert bought[a] == 0 and a not in c.grid_import_wh
        else:
            assert a not in c.grid_import_wh and a not in c.grid_export_wh
            power = who.power_cap_wh(interval_ms)
            assert bought[a] <= power and sold[a] <= power
            assert bought[a] <= who.capacity_wh and sold[a] <= who.capacity_wh
    assert sum(bought.values()) == sum(sold.values())
    # battery bounds: orders made within the battery's limits keep its state of charge in
    # [0, capacity] without any clamping
    for a, who in participants.items():
        if who.role == "storage" and all(
            capped(o, who, interval_ms) == o.energy_wh for o in book if o.author == a
        ):
            out_limit, in_limit = battery_limits(who, socs[a], interval_ms)
            if all(
                o.energy_wh <= (out_limit if o.side == "offer" else in_limit)
                for o in book
                if o.author == a
            ):
                assert 0 <= socs[a] + bought[a] - sold[a] <= who.capacity_wh


@settings(max_examples=200, deadline=None)
@given(markets(), st.randoms(use_true_random=False))
def test_same_book_same_trades(market, rnd: random.Random):
    participants, book, _, interval_ms, rules = market
    first = clear(book, participants, rules, interval_ms=interval_ms)
    shuffled = list(book)
    rnd.shuffle(shuffled)
    again = clear(shuffled, dict(reversed(participants.items())), rules, interval_ms=interval_ms)
    assert again == first


@settings(max_examples=200, deadline=None)
@given(markets())
def test_auctions_leave_no_profitable_match_unmade(market):
    participants, book, _, interval_ms, rules = market
    if rules.mechanism == "merit-order":
        return
    c = clear(book, participants, rules, interval_ms=interval_ms)
    # What each order brings to the auction: capped, less an agent's own crossing orders.
    opens = usable_orders(book, participants, interval_ms)
    cancel_own_crossing(
        [o for o in opens if o.side == "bid"], [o for o in opens if o.side == "offer"]
    )
    left = {o.hash: o.left for o in opens}
    for t in c.trades:
        left[t.offer] -= t.energy_wh
        left[t.bid] -= t.energy_wh
    bids = [o for o in book if o.side == "bid" and left.get(o.hash, 0) > 0]
    offers = [o for o in book if o.side == "offer" and left.get(o.hash, 0) > 0]
    for b in bids:
        for o in offers:
            if o.author == b.author:
                assert o.price > b.price  # what was left of them does not cross
                continue
            if rules.mechanism == "pay-as-bid":
                assert o.price > b.price
            elif c.clearing_price is not None:
                # at the uniform price, no willing pair is left unmatched
                assert not (o.price <= c.clearing_price <= b.price)
