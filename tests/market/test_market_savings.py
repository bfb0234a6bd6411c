"""Savings a treasurer would sign (market.savings): stored energy valued at its purchase cost,
energy given inside a household valued at the feed-in it displaces, totals equal to the bills."""

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.charter import GridRules
from market.participants import Participant
from market.results import Bill, baseline_net, kpis, reconcile
from market.savings import SavingsBook
from market.scenario import default_scenario
from market.simulate import simulate
from market.trades import Trade

RULES = GridRules()  # retail 30000, feed-in 5000, community 15000, household 0
H, S, B, C, N = (bytes([i]) * 32 for i in (1, 2, 3, 4, 5))
HOME = Participant(H, "Home", "consumer", "home")
SOLAR = Participant(S, "Solar", "generator", "home")
BATTERY = Participant(B, "Battery", "storage", "home", 4000, 2000)
SHARED = Participant(C, "Shared solar", "generator", "community")
NBAT = Participant(N, "Shared battery", "storage", "community", 20000, 5000)
ALL = {p.agent: p for p in (HOME, SOLAR, BATTERY, SHARED, NBAT)}
X = bytes(32)


def reading(imp: int, exp: int) -> dict:
    return {"import_wh": imp, "export_wh": exp}


def run(intervals, rules=RULES):
    """intervals: [(trades, {agent: (import, export)})] -> kpis by name, with credits."""
    book = SavingsBook()
    bills = {p.name: Bill() for p in ALL.values()}
    base = {p.name: 0 for p in ALL.values()}
    socs = {B: 0, N: 0}
    for trades, meters in intervals:
        book.add(ALL, rules, trades, socs)
        for agent, who in ALL.items():
            r = reading(*meters.get(agent, (0, 0)))
            bills[who.name] += reconcile(agent, trades, r, rules)
            base[who.name] += baseline_net(who, r, rules)
        for t in trades:
            if t.buyer in socs:
                socs[t.buyer] += t.energy_wh
            if t.seller in socs:
                socs[t.seller] -= t.energy_wh
    credits = {ALL[a].name: c for a, c in book.credits.items()}
    return kpis(ALL, [], bills, base, credits)["savings"]


def test_a_battery_that_only_charges_saves_exactly_zero():
    # The shared battery buys 2000 Wh of shared solar at 15 ct: 30 ct spent, all of it stored.
    t = Trade(C, N, 2000, 15000, X, X)
    s = run([([t], {N: (2000, 0), C: (0, 2000)})])
    assert s["per_agent"]["Shared battery"] == 0
    assert s["stored_value"] == 30000  # 2 kWh at its purchase cost of 15 ct/kWh
    assert s["per_agent"]["Shared solar"] == 20000  # 15 ct instead of 5 ct feed-in, per kWh


def test_home_solar_feeding_its_own_home_shows_no_negative_savings():
    # 1000 Wh from Solar to Home at the household price 0.
    t = Trade(S, H, 1000, 0, X, X)
    s = run([([t], {H: (1000, 0), S: (0, 1000)})])
    assert s["per_agent"]["Solar"] == 0  # gave up 5 ct of feed-in, credited at feed-in
    assert s["per_agent"]["Home"] == 25000  # 30 ct retail avoided, 5 ct of solar's value used
    assert s["per_household"]["home"] == 25000 == s["saved"]  # what the household really saved


def test_stored_energy_sold_later_saves_its_margin():
    # Charge 1000 Wh at 15 ct, then sell 1000 Wh to Home at 15 ct: the battery breaks even.
    charge = Trade(C, N, 1000, 15000, X, X)
    sell = Trade(N, H, 1000, 15000, X, X)
    s = run([([charge], {N: (1000, 0), C: (0, 1000)}), ([sell], {N: (0, 1000), H: (1000, 0)})])
    assert s["per_agent"]["Shared battery"] == 0
    assert s["per_agent"]["Home"] == 15000
    assert s["stored_value"] == 0


def test_home_battery_charged_at_zero_inside_the_household():
    charge = Trade(S, B, 1000, 0, X, X)
    give = Trade(B, H, 600, 0, X, X)
    s = run([([charge], {B: (1000, 0), S: (0, 1000)}), ([give], {B: (0, 600), H: (600, 0)})])
    assert s["per_agent"]["Solar"] == 0
    assert s["per_agent"]["Battery"] == 0
    assert s["per_agent"]["Home"] == 600 * 25  # retail minus feed-in, per Wh
    assert s["stored_value"] == 400 * 5  # 400 Wh held, at the feed-in they cost
    # The household's total: its bills against the baseline, plus what its battery now holds.
    assert s["per_household"]["home"] == s["saved"] == 600 * 25
    assert s["saved"] == s["baseline"] - s["net"] + s["stored_value"]


tariff = st.integers(0, 60000)


@st.composite
def rules_in_order(draw):
    """Tariffs as a community sets them: feed-in <= community and household price <= retail, in
    whole ct/kWh (so every amount is exact: `money` rounds only sub-milli-cent fractions)."""
    feed_in = draw(st.integers(0, 20))
    retail = draw(st.integers(feed_in, 60))
    community = draw(st.integers(feed_in, retail))
    household = draw(st.integers(0, retail))
    return GridRules("merit-order", retail * 1000, feed_in * 1000, community * 1000,
                     household * 1000)


home_demand = st.lists(st.integers(0, 2000), min_size=24, max_size=24).map(tuple)


@settings(max_examples=40, deadline=None)
@given(rules_in_order(), home_demand, st.integers(0, 400), st.integers(0, 4))
def test_merit_order_never_shows_negative_savings(rules, demand, solar_scale, days):
    """Under merit order with sensible tariffs nobody loses by trading, at any hour of any day:
    batteries charging mid-day do not make the figures negative."""
    kit = default_scenario()
    agents = tuple(replace(a, consumption_wh=demand) if a.name == "Home 3"
                   else replace(a, generation_scale=solar_scale) if a.name == "Home solar"
                   else a for a in kit.agents)
    scenario = replace(kit, agents=agents, rules=rules)
    result = simulate(scenario, intervals=1 + days * 6 + 11)
    savings = result["kpis"]["savings"]
    assert all(v >= 0 for v in savings["per_agent"].values()), savings
    assert all(v >= 0 for v in savings["per_household"].values()), savings
    assert savings["saved"] == sum(savings["per_agent"].values())
    assert savings["stored_value"] >= 0  # the batteries start empty: what they hold is a gain


@settings(max_examples=60, deadline=None)
@given(rules_in_order(), st.lists(st.tuples(st.sampled_from([S, C, B, N]),
                                            st.sampled_from([H, B, N]),
                                            st.integers(1, 3000), tariff), max_size=12))
def test_credits_only_move_value_between_agents_or_into_stock(rules, raw):
    trades = [Trade(s, b, e, p, X, X) for s, b, e, p in raw if s != b]
    book = SavingsBook()
    book.add(ALL, rules, trades, {B: 0, N: 0})
    # Household shifts cancel out: what is left of the credits is what the batteries now hold.
    assert sum(book.credits.values()) == book.stored_value()
    assert book.stored_value() >= 0


def test_pay_as_clear_kit_day_has_no_negative_savings_for_homes():
    """A whole kit day under an auction: homes and the community never show a loss."""
    kit = default_scenario()
    result = simulate(replace(kit, rules=replace(kit.rules, mechanism="pay-as-clear")))
    savings = result["kpis"]["savings"]
    homes = [a.name for a in kit.agents if a.role == "consumer"]
    assert all(savings["per_agent"][h] >= 0 for h in homes), savings
    assert savings["saved"] > 0


def test_the_worked_example_of_docs_market():
    """docs/market.md "Savings a treasurer can sign": the table, to the milli-cent."""
    h1, hs, hb = (Participant(bytes([i]) * 32, n, r, "home1", *c) for i, n, r, c in (
        (31, "Home 1", "consumer", ()), (32, "Home solar", "generator", ()),
        (33, "Home battery", "storage", (4000, 2000))))
    cs = Participant(bytes([34]) * 32, "Community solar", "generator", "community")
    nb = Participant(bytes([35]) * 32, "Neighbourhood battery", "storage", "community", 20000, 5000)
    h2 = Participant(bytes([36]) * 32, "Home 2", "consumer", "home2")
    who = {p.agent: p for p in (h1, hs, hb, cs, nb, h2)}
    hours = [
        [Trade(hs.agent, h1.agent, 1000, 0, X, X), Trade(hs.agent, hb.agent, 1000, 0, X, X),
         Trade(cs.agent, nb.agent, 2000, 15000, X, X)],
        [Trade(hb.agent, h1.agent, 600, 0, X, X), Trade(nb.agent, h2.agent, 1000, 15000, X, X)],
    ]
    book = SavingsBook()
    bills = {p.name: Bill() for p in who.values()}
    base = {p.name: 0 for p in who.values()}
    socs = {hb.agent: 0, nb.agent: 0}
    for trades in hours:
        book.add(who, RULES, trades, socs)
        for agent, p in who.items():
            imp = sum(t.energy_wh for t in trades if t.buyer == agent)
            exp = sum(t.energy_wh for t in trades if t.seller == agent)
            bills[p.name] += reconcile(agent, trades, reading(imp, exp), RULES)
            base[p.name] += baseline_net(p, reading(imp, exp), RULES)
            if agent in socs:
                socs[agent] += imp - exp
    s = kpis(who, [], bills, base, {who[a].name: c for a, c in book.credits.items()})["savings"]
    ct = 1000
    assert s["per_agent"] == {"Home 1": 40 * ct, "Home solar": 0, "Home battery": 0,
                              "Community solar": 20 * ct, "Neighbourhood battery": 0,
                              "Home 2": 15 * ct}
    assert s["per_household"] == {"community": 20 * ct, "home1": 40 * ct, "home2": 15 * ct}
    assert (s["baseline"], s["net"], s["stored_value"], s["saved"]) == \
        (58 * ct, 0, 17 * ct, 75 * ct)
