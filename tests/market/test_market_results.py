"""Per-agent figures, reconciliation of readings into bills, KPIs."""

from ledger.charter import GridRules
from market.participants import Participant
from market.results import (
    Bill,
    baseline_net,
    interval_figures,
    kpis,
    money,
    next_socs,
    planned_meter,
    reconcile,
)
from market.trades import Clearing, Trade

RULES = GridRules()  # retail 30000, feed-in 5000 milli-cents/kWh
H, S, B, C = (bytes([i]) * 32 for i in (1, 2, 3, 4))
HOME = Participant(H, "Home", "consumer", "home")
SOLAR = Participant(S, "Solar", "generator", "home")
BATTERY = Participant(B, "Battery", "storage", "home", 1000, 1000)
COMMUNITY = Participant(C, "Shared solar", "generator", "community")
PARTICIPANTS = {p.agent: p for p in (HOME, SOLAR, BATTERY, COMMUNITY)}
O1, O2, O3, B1, B2 = (bytes([i]) * 32 for i in (11, 12, 13, 21, 22))


def reading(import_wh, export_wh):
    return {"interval": 1, "import_wh": import_wh, "export_wh": export_wh, "soc_wh": None}


def test_money_is_milli_cents_rounded_down():
    assert money(1000, 30000) == 30000  # 1 kWh at 30 ct = 30 ct
    assert money(1, 15000) == 15  # 1 Wh at 15 ct/kWh = 0.015 ct
    assert money(333, 1001) == 333  # 333.333 rounded down
    assert money(0, 30000) == 0


# Home wants 500: 200 from its solar (0 ct), 100 from its battery (0 ct), 150 from the shared
# solar (15 ct); 50 from the utility grid. Solar makes 400: 200 to Home, 100 to the battery
# (charging while the battery also discharges to Home is allowed by the auctions), 100 exported.
CLEARING = Clearing(
    "merit-order",
    (
        Trade(S, H, 200, 0, O1, B1),
        Trade(B, H, 100, 0, O2, B1),
        Trade(C, H, 150, 15000, O3, B1),
        Trade(S, B, 100, 0, O1, B2),
    ),
    {H: 50},
    {S: 100, C: 0},
)


def test_interval_figures_as_planned():
    f = interval_figures(PARTICIPANTS, CLEARING, {B: 600})
    assert f["Home"] == {
        "demand_wh": 500,
        "from_generation_wh": 350,
        "from_storage_wh": 100,
        "from_grid_wh": 50,
    }
    assert f["Solar"] == {"generation_wh": 400, "sold_wh": 300}
    assert f["Shared solar"] == {"generation_wh": 150, "sold_wh": 150}
    assert f["Battery"] == {"soc_wh": 600, "charged_wh": 100, "discharged_wh": 100}
    assert next_socs(PARTICIPANTS, CLEARING, {B: 600}) == {B: 600}
    assert planned_meter(HOME, CLEARING) == (500, 0)
    assert planned_meter(SOLAR, CLEARING) == (0, 400)
    assert planned_meter(BATTERY, CLEARING) == (100, 100)


def test_interval_figures_from_meter_readings():
    # The home used 80 Wh more than it planned and the solar made 30 Wh less.
    f = interval_figures(PARTICIPANTS, CLEARING, {B: 600}, {H: (580, 0), S: (0, 370)})
    assert f["Home"]["demand_wh"] == 580 and f["Home"]["from_grid_wh"] == 130
    assert f["Solar"] == {"generation_wh": 370, "sold_wh": 300}


def test_reconcile_a_home_pays_trades_and_its_imbalance_at_retail():
    bill = reconcile(H, CLEARING.trades, reading(580, 0), RULES)
    assert bill == Bill(
        bought_wh=450,
        spent=money(150, 15000),  # 2250
        imbalance_import_wh=130,  # 580 metered - 450 contracted
        imbalance_spent=money(130, 30000),  # 3900
    )
    assert bill.net == 2250 + 3900


def test_reconcile_a_generator_that_under_delivers_buys_the_shortfall():
    # Sold 300, exported only 250: the missing 50 Wh came from the utility grid at retail.
    bill = reconcile(S, CLEARING.trades, reading(0, 250), RULES)
    assert (bill.sold_wh, bill.earned) == (300, 0)
    assert (bill.imbalance_import_wh, bill.imbalance_spent) == (50, 1500)
    # Exported 400: the unsold 100 Wh go to the utility grid at feed-in.
    bill = reconcile(S, CLEARING.trades, reading(0, 400), RULES)
    assert (bill.imbalance_export_wh, bill.imbalance_earned, bill.net) == (100, 500, -500)


def test_reconcile_a_battery_that_did_as_contracted_has_no_imbalance():
    bill = reconcile(B, CLEARING.trades, reading(100, 100), RULES)
    assert bill == Bill(bought_wh=100, sold_wh=100)


def test_what_buyers_spend_sellers_earn():
    bills = {a: reconcile(a, CLEARING.trades, reading(0, 0), RULES) for a in PARTICIPANTS}
    assert sum(b.spent for b in bills.values()) == sum(b.earned for b in bills.values()) == 2250


def test_bills_add_up():
    total = Bill(1, 2, 3, 4, 5, 6, 7, 8) + Bill(10, 20, 30, 40, 50, 60, 70, 80)
    assert total == Bill(11, 22, 33, 44, 55, 66, 77, 88)
    assert total.to_dict()["net"] == 33 + 77 - 44 - 88


def test_baseline_is_the_utility_grid_alone():
    assert baseline_net(HOME, reading(500, 0), RULES) == 15000
    assert baseline_net(SOLAR, reading(0, 400), RULES) == -2000
    assert baseline_net(BATTERY, reading(100, 100), RULES) == 0


def test_kpis_over_two_intervals():
    day = interval_figures(PARTICIPANTS, CLEARING, {B: 600})
    night = {
        "Home": {
            "demand_wh": 500,
            "from_generation_wh": 0,
            "from_storage_wh": 0,
            "from_grid_wh": 500,
        },
        "Solar": {"generation_wh": 0, "sold_wh": 0},
        "Shared solar": {"generation_wh": 0, "sold_wh": 0},
        "Battery": {"soc_wh": 600, "charged_wh": 0, "discharged_wh": 0},
    }
    bills = {"Home": Bill(spent=2250, imbalance_spent=16500), "Solar": Bill(imbalance_earned=500)}
    bills |= {"Battery": Bill(), "Shared solar": Bill(earned=2250)}
    baselines = {"Home": 30000, "Solar": -2000, "Battery": 0, "Shared solar": -750}
    k = kpis(PARTICIPANTS, [day, night], bills, baselines)
    # Local supply 350 + 100 = 450 of 1000 Wh demand; 450 of 550 Wh generated consumed locally.
    assert k["self_sufficiency"] == 0.45
    assert k["self_consumption"] == round(450 / 550, 4) == 0.8182
    assert k["home_shares"] == {"Home": {"grid": 0.55, "battery": 0.1, "solar": 0.35}}
    assert k["savings"]["per_agent"] == {
        "Battery": 0,
        "Home": 30000 - 18750,
        "Shared solar": -750 + 2250,
        "Solar": -2000 + 500,
    }
    assert k["savings"]["per_household"] == {"community": 1500, "home": 11250 - 1500}
    assert k["savings"]["saved"] == 11250 + 1500 - 1500
    assert k["savings"]["baseline"] == 27250
    assert k["savings"]["ratio"] == round(11250 / 27250, 4)
    assert k["bills"]["Home"]["net"] == 18750


def test_kpis_without_demand_or_generation_are_none():
    k = kpis(
        {H: HOME},
        [
            {
                "Home": {
                    "demand_wh": 0,
                    "from_generation_wh": 0,
                    "from_storage_wh": 0,
                    "from_grid_wh": 0,
                }
            }
        ],
        {"Home": Bill()},
        {"Home": 0},
    )
    assert k["self_sufficiency"] is None and k["self_consumption"] is None
    assert k["home_shares"]["Home"] == {"grid": None, "battery": None, "solar": None}
    assert k["savings"]["ratio"] is None
