"""The three mechanisms on hand-computed books, the default kit through its day, the kit's bugs."""

import pytest

from ledger.charter import GridRules
from market.battery import battery_limits, next_soc
from market.clearing import clear
from market.orders import make_order
from market.participants import Participant
from market.scenario import ENERGY_INTERVAL_MS, default_scenario
from market.strategies import StrategyContext, default_strategy

RULES = GridRules()  # retail 30000, feed-in 5000, community 15000, household 0 (DESIGN)
HOUR = ENERGY_INTERVAL_MS


def agent(n: int) -> bytes:
    return bytes([n]) * 32


def who(n, role, household="h", capacity=0, power=0):
    return Participant(agent(n), f"agent {n}", role, household, capacity, power)


def book_of(*specs, interval=0):
    """(agent n, side, energy, price) tuples -> orders."""
    return [
        make_order(agent(n), seq, side, interval, energy, price)
        for seq, (n, side, energy, price) in enumerate(specs, start=1)
    ]


def flows(clearing, participants):
    """name -> (bought, sold) over the clearing's trades."""
    out = {p.name: [0, 0] for p in participants.values()}
    for t in clearing.trades:
        out[participants[t.buyer].name][0] += t.energy_wh
        out[participants[t.seller].name][1] += t.energy_wh
    return {k: tuple(v) for k, v in out.items()}


# --- the auctions, worked examples (the same as docs/market.md) -------------------------------

AUCTION = {
    p.agent: p
    for p in (who(1, "consumer"), who(2, "consumer"), who(3, "generator"), who(4, "generator"))
}
AUCTION_BOOK = book_of(
    (1, "bid", 300, 30000),  # consumer 1 pays up to 30 ct/kWh
    (2, "bid", 400, 20000),  # consumer 2 up to 20 ct
    (3, "offer", 500, 10000),  # generator 3 sells from 10 ct
    (4, "offer", 400, 25000),  # generator 4 from 25 ct
)


def test_pay_as_bid_worked_example():
    c = clear(AUCTION_BOOK, AUCTION, GridRules(mechanism="pay-as-bid"))
    # Bid 1 (30 ct) takes 300 of offer 3 at 30 ct; bid 2 (20 ct) takes the other 200 of offer 3
    # at 20 ct; offer 4 (25 ct) is above bid 2's limit.
    got = [(t.seller, t.buyer, t.energy_wh, t.price) for t in c.trades]
    assert got == [(agent(3), agent(1), 300, 30000), (agent(3), agent(2), 200, 20000)]
    assert c.grid_import_wh == {agent(1): 0, agent(2): 200}
    assert c.grid_export_wh == {agent(3): 0, agent(4): 400}
    assert c.clearing_price is None


def test_pay_as_clear_worked_example():
    c = clear(AUCTION_BOOK, AUCTION, GridRules(mechanism="pay-as-clear"))
    # The curves cross inside offer 3: 500 Wh are matched; bid 2 is left wanting at 20 ct and the
    # next offer asks 25 ct, so any price in [max(10, 20), min(20, 25)] = [20, 20] clears: 20 ct.
    got = [(t.seller, t.buyer, t.energy_wh, t.price) for t in c.trades]
    assert got == [(agent(3), agent(1), 300, 20000), (agent(3), agent(2), 200, 20000)]
    assert c.clearing_price == 20000


def test_pay_as_clear_takes_the_midpoint_when_the_curves_overlap_on_a_range():
    book = book_of((1, "bid", 300, 30000), (3, "offer", 300, 10000))
    c = clear(book, AUCTION, GridRules(mechanism="pay-as-clear"))
    # Exactly matched: any price in [10, 30] clears; the midpoint is 20 ct.
    assert [(t.energy_wh, t.price) for t in c.trades] == [(300, 20000)]


def test_no_trade_when_the_best_bid_is_below_the_best_offer():
    book = book_of((1, "bid", 300, 9000), (3, "offer", 300, 10000))
    for mechanism in ("pay-as-bid", "pay-as-clear"):
        c = clear(book, AUCTION, GridRules(mechanism=mechanism))
        assert c.trades == ()
        assert c.grid_import_wh == {agent(1): 300}
        assert c.grid_export_wh == {agent(3): 300}


def test_equal_prices_are_served_in_order_hash_order():
    book = book_of((3, "offer", 100, 10000), (4, "offer", 100, 10000), (1, "bid", 100, 20000))
    c = clear(book, AUCTION, GridRules(mechanism="pay-as-bid"))
    first = min(book[:2], key=lambda o: o.hash)
    assert [(t.offer, t.energy_wh) for t in c.trades] == [(first.hash, 100)]


def test_storage_never_buys_its_own_offer():
    battery = who(5, "storage", capacity=1000, power=1000)
    ps = {**AUCTION, battery.agent: battery}
    # The battery's own offer is the cheapest and its own bid the highest: they would only trade
    # with each other, so they cancel out, and the others trade among themselves.
    book = book_of(
        (5, "offer", 100, 1000),
        (5, "bid", 100, 40000),
        (3, "offer", 100, 9000),
        (1, "bid", 100, 30000),
    )
    for mechanism in ("pay-as-bid", "pay-as-clear"):
        c = clear(book, ps, GridRules(mechanism=mechanism))
        assert [(t.seller, t.buyer, t.energy_wh) for t in c.trades] == [(agent(3), agent(1), 100)]


def test_storage_orders_that_do_not_cross_each_other_trade_with_others():
    battery = who(5, "storage", capacity=1000, power=1000)
    ps = {**AUCTION, battery.agent: battery}
    # It buys up to 10 ct and sells from 20 ct; the generator has 300 Wh at 5 ct, consumer 1
    # wants 100 Wh up to 25 ct: the consumer is served first, then the battery charges.
    book = book_of(
        (5, "bid", 100, 10000),
        (5, "offer", 100, 20000),
        (3, "offer", 300, 5000),
        (1, "bid", 100, 25000),
    )
    c = clear(book, ps, GridRules(mechanism="pay-as-bid"))
    assert [(t.seller, t.buyer, t.energy_wh, t.price) for t in c.trades] == [
        (agent(3), agent(1), 100, 25000),
        (agent(3), agent(5), 100, 10000),
    ]
    # Uniform price: supply is left over at 5 ct, so the price falls to the marginal offer's 5 ct.
    c = clear(book, ps, GridRules(mechanism="pay-as-clear"))
    assert [(t.buyer, t.energy_wh, t.price) for t in c.trades] == [
        (agent(1), 100, 5000),
        (agent(5), 100, 5000),
    ]


def test_orders_that_make_no_sense_are_ignored():
    ps = {p.agent: p for p in (who(1, "consumer"), who(3, "generator"))}
    book = book_of(
        (1, "offer", 100, 1000),  # a consumer does not sell
        (3, "bid", 100, 90000),  # a generator does not buy
        (9, "bid", 100, 90000),  # not a participant of this grid
        (3, "offer", 50, 1000),
        (1, "bid", 80, 20000),
    )
    c = clear(book, ps, GridRules(mechanism="pay-as-bid"))
    assert [(t.seller, t.buyer, t.energy_wh) for t in c.trades] == [(agent(3), agent(1), 50)]
    assert c.grid_import_wh == {agent(1): 30}


def test_unknown_mechanism_and_mixed_intervals_are_errors():
    with pytest.raises(ValueError, match="unknown mechanism"):
        clear([], AUCTION, GridRules(mechanism="first-come"))
    mixed = book_of((1, "bid", 1, 1), interval=1) + book_of((2, "bid", 1, 1), interval=2)
    with pytest.raises(ValueError, match="one interval"):
        clear(mixed, AUCTION, RULES)


# --- merit order ------------------------------------------------------------------------------

KIT = default_scenario()
KIT_PARTICIPANTS = KIT.participants()
BY_NAME = {p.name: p for p in KIT_PARTICIPANTS.values()}


def kit_clear(hour, socs, mechanism="merit-order"):
    """The kit's orders for `hour` from the default strategies, given battery SOCs by name."""
    rules = GridRules(mechanism=mechanism)
    book, seq = [], 1
    for spec in KIT.agents:
        p = BY_NAME[spec.name]
        demand, generation = spec.expected(hour)
        ctx = StrategyContext(p, hour, demand, generation, socs.get(spec.name, 0), rules, HOUR)
        for intent in default_strategy(spec.role).orders(ctx):
            book.append(make_order(p.agent, seq, intent.side, hour, intent.energy_wh, intent.price))
            seq += 1
    clearing = clear(book, KIT_PARTICIPANTS, rules, interval_ms=HOUR)
    return clearing, flows(clearing, KIT_PARTICIPANTS)


def grid(clearing, name):
    a = BY_NAME[name].agent
    return clearing.grid_import_wh.get(a, 0), clearing.grid_export_wh.get(a, 0)


def test_kit_at_night_everything_comes_from_the_utility_grid():
    # Hour 0: no sun, both batteries empty: they bid to charge but nobody sells.
    c, f = kit_clear(0, {})
    assert c.trades == ()
    assert [grid(c, n) for n in ("Home 1", "Home 2", "Home 3")] == [(500, 0), (400, 0), (700, 0)]


def test_kit_in_the_morning_community_solar_is_shared_pro_rata():
    # Hour 6: curve 2 -> Home solar 300, Community solar 1200.
    # Home 1 takes its own 300 at 0 ct; 200 + 400 + 700 = 1300 Wh are left for 1200 Wh of
    # community solar: 200*1200/1300 = 184.6, 400*1200/1300 = 369.2, 700*1200/1300 = 646.2;
    # floors 184 + 369 + 646 = 1199, the spare Wh goes to the largest remainder (Home 1).
    c, f = kit_clear(6, {})
    assert f["Home 1"] == (300 + 185, 0)
    assert f["Home 2"] == (369, 0)
    assert f["Home 3"] == (646, 0)
    assert [grid(c, n) for n in ("Home 1", "Home 2", "Home 3")] == [(15, 0), (31, 0), (54, 0)]
    assert f["Home solar"] == (0, 300) and f["Community solar"] == (0, 1200)
    prices = {(t.seller, t.buyer): t.price for t in c.trades}
    assert prices[(BY_NAME["Home solar"].agent, BY_NAME["Home 1"].agent)] == 0
    assert prices[(BY_NAME["Community solar"].agent, BY_NAME["Home 3"].agent)] == 15000


def test_kit_at_noon_surplus_fills_the_batteries():
    # Hour 12 (curve 10): Home solar 1500, Community solar 6000; after hour 11 the home battery
    # holds 2500 Wh and the neighbourhood battery 14250 Wh.
    # home1: 500 to Home 1, 1000 surplus -> home battery (may take min(4000-2500, 2000) = 1500).
    # Community solar: 400 + 700 to Homes 2 and 3, 4900 surplus -> neighbourhood battery (may
    # take min(20000-14250, 5000) = 5000). Nothing is left for the utility grid.
    c, f = kit_clear(12, {"Home battery": 2500, "Neighbourhood battery": 14250})
    assert f["Home battery"] == (1000, 0)
    assert f["Neighbourhood battery"] == (4900, 0)
    assert f["Home solar"] == (0, 1500) and f["Community solar"] == (0, 6000)
    assert grid(c, "Home solar") == (0, 0) and grid(c, "Community solar") == (0, 0)
    assert all(grid(c, n) == (0, 0) for n in ("Home 1", "Home 2", "Home 3"))


def test_kit_at_noon_with_full_batteries_exports_the_surplus():
    # Hour 14, both batteries full: they only offer, nobody needs them; 7500 - 1600 exported.
    c, f = kit_clear(14, {"Home battery": 4000, "Neighbourhood battery": 20000})
    assert f["Home battery"] == (0, 0) and f["Neighbourhood battery"] == (0, 0)
    exported = grid(c, "Home solar")[1] + grid(c, "Community solar")[1]
    assert exported == 7500 - 1600
    # Home solar serves Home 1 first (500); its surplus 1000 and community solar's 6000 share
    # the other homes' 1100 pro rata: 1000*1100/7000 = 157.1 -> 157, 6000*1100/7000 = 942.9 -> 943.
    assert f["Home solar"] == (0, 657) and f["Community solar"] == (0, 943)


def test_kit_in_the_evening_batteries_cover_the_homes():
    # Hour 20, no sun; home battery 3650 Wh, neighbourhood battery 19500 Wh.
    # Home 1 draws 500 from its home battery at 0 ct; Homes 2 and 3 draw 1100 from the
    # neighbourhood battery at the community price. No utility grid at all.
    c, f = kit_clear(20, {"Home battery": 3650, "Neighbourhood battery": 19500})
    assert f["Home battery"] == (0, 500)
    assert f["Neighbourhood battery"] == (0, 1100)
    assert all(grid(c, n) == (0, 0) for n in ("Home 1", "Home 2", "Home 3"))
    by_seller = {t.seller: t.price for t in c.trades}
    assert by_seller[BY_NAME["Home battery"].agent] == 0
    assert by_seller[BY_NAME["Neighbourhood battery"].agent] == 15000
    assert next_soc(3650, 0, 500, 4000) == 3150


# --- the kit's Rust bugs, pinned ----------------------------------------------------------------

HOME = {p.agent: p for p in (who(1, "consumer", "home"), who(2, "storage", "home", 4000, 2000))}


def test_a_discharging_battery_loses_what_it_delivers():
    book = book_of((1, "bid", 300, 15000), (2, "offer", 1000, 15000))
    c = clear(book, HOME, RULES, interval_ms=HOUR)
    sold = sum(t.energy_wh for t in c.trades if t.seller == agent(2))
    assert sold == 300
    assert next_soc(1000, 0, sold, 4000) == 700  # the kit added it: 1300


def test_demand_exactly_equal_to_the_stored_energy_is_fully_served():
    discharge, _ = battery_limits(HOME[agent(2)], 500, HOUR)
    assert discharge == 500
    book = book_of((1, "bid", 500, 15000), (2, "offer", discharge, 15000))
    c = clear(book, HOME, RULES, interval_ms=HOUR)
    assert [(t.seller, t.buyer, t.energy_wh) for t in c.trades] == [(agent(2), agent(1), 500)]
    assert c.grid_import_wh == {agent(1): 0}
    assert next_soc(500, 0, 500, 4000) == 0


def test_a_battery_is_never_filled_beyond_its_capacity():
    solar = who(3, "generator", "home")
    ps = {**HOME, solar.agent: solar}
    # An order asking for more than the battery could ever hold is capped by the clearing...
    book = book_of((3, "offer", 9000, 0), (2, "bid", 9000, 15000))
    c = clear(book, ps, RULES, interval_ms=10 * HOUR)
    assert sum(t.energy_wh for t in c.trades) == 4000
    # ...and by its power within the interval...
    c = clear(book, ps, RULES, interval_ms=HOUR)
    assert sum(t.energy_wh for t in c.trades) == 2000
    # ...and the strategy bids only its free capacity.
    assert battery_limits(HOME[agent(2)], 3500, HOUR) == (2000, 500)
    assert battery_limits(HOME[agent(2)], 4000, HOUR) == (2000, 0)
    assert next_soc(3500, 500, 0, 4000) == 4000
    assert next_soc(3500, 900, 0, 4000) == 4000  # the bound holds even for a bad order
