"""`picogrid simulate`: the result object, determinism, and the command end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.charter import MECHANISMS
from market.scenario import default_scenario, load_scenario
from market.simulate import format_report, simulate

ROOT = Path(__file__).resolve().parents[2]
PICOGRID = Path(sys.executable).parent / "picogrid"
KIT = default_scenario()

CONSUMER_KEYS = {"demand_wh", "from_generation_wh", "from_storage_wh", "from_grid_wh"}
GENERATOR_KEYS = {"generation_wh", "sold_wh"}
STORAGE_KEYS = {"soc_wh", "charged_wh", "discharged_wh"}


def test_result_shape():
    r = simulate(KIT, intervals=3)
    assert set(r) == {"scenario", "mechanism", "agents", "intervals", "kpis"}
    assert r["scenario"] == "Default PicoGrid" and r["mechanism"] == "merit-order"
    assert r["agents"][3] == {
        "name": "Home battery",
        "role": "storage",
        "household": "home1",
        "capacity_wh": 4000,
    }
    assert [row["interval"] for row in r["intervals"]] == [0, 1, 2]
    keys = {"consumer": CONSUMER_KEYS, "generator": GENERATOR_KEYS, "storage": STORAGE_KEYS}
    for row in r["intervals"]:
        assert set(row) == {"interval", "agents", "trades", "grid_import_wh", "grid_export_wh"}
        for a in r["agents"]:
            assert set(row["agents"][a["name"]]) == keys[a["role"]]
    assert {"self_sufficiency", "self_consumption", "savings", "bills"} <= set(r["kpis"])


def test_the_kit_day_adds_up():
    r = simulate(KIT)
    rows = r["intervals"]
    assert len(rows) == 24
    # Night: 6 hours of 1600 Wh; hour 6: 100 Wh short (see test_market_clearing); then none.
    assert sum(row["grid_import_wh"] for row in rows) == 6 * 1600 + 100
    # Surplus once both batteries are full: hours 13-18.
    assert [row["grid_export_wh"] for row in rows[13:19]] == [4550, 5900, 5150, 5150, 3650, 1400]
    assert rows[23]["agents"]["Home battery"]["soc_wh"] == 1650
    assert rows[23]["agents"]["Neighbourhood battery"]["soc_wh"] == 15100
    # 38400 Wh demanded, 9700 from the utility grid; 95 * 750 = 71250 Wh generated.
    assert r["kpis"]["self_sufficiency"] == round(28700 / 38400, 4)
    assert r["kpis"]["self_consumption"] == round(28700 / 71250, 4)
    for row in rows:
        for t in row["trades"]:
            assert set(t) == {"seller", "buyer", "energy_wh", "price"}
    # The community as a whole pays the utility for imports and is paid for exports only.
    bills = r["kpis"]["bills"]
    assert sum(b["net"] for b in bills.values()) == 9700 * 30 - 25800 * 5
    assert sum(b["spent"] for b in bills.values()) == sum(b["earned"] for b in bills.values())


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_every_mechanism_conserves_energy_and_is_deterministic(mechanism):
    r = simulate(KIT, mechanism=mechanism)
    assert r["mechanism"] == mechanism
    assert r == simulate(KIT, mechanism=mechanism)
    for row in r["intervals"]:
        a = row["agents"]
        demand = sum(a[n]["demand_wh"] for n in ("Home 1", "Home 2", "Home 3"))
        generation = sum(a[n]["generation_wh"] for n in ("Home solar", "Community solar"))
        charged = sum(
            a[n]["charged_wh"] - a[n]["discharged_wh"]
            for n in ("Home battery", "Neighbourhood battery")
        )
        assert generation + row["grid_import_wh"] == demand + charged + row["grid_export_wh"]


def test_unknown_mechanism_is_refused():
    with pytest.raises(ValueError, match="unknown mechanism"):
        simulate(KIT, mechanism="first-come")


def test_a_custom_strategy_that_under_bids_pays_imbalance(tmp_path, monkeypatch):
    (tmp_path / "halfhearted.py").write_text(
        "from market.strategies import OrderIntent\n"
        "class HalfBid:\n"
        "    def orders(self, ctx):\n"
        "        return [OrderIntent('bid', ctx.demand_wh // 2, ctx.rules.community_price)]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    text = (ROOT / "docs" / "scenario-example.toml").read_text()
    text = text.replace(
        "consumption_wh = 500\n", 'consumption_wh = 500\nstrategy = "halfhearted:HalfBid"\n', 1
    )
    path = tmp_path / "s.toml"
    path.write_text(text)
    r = simulate(load_scenario(path), intervals=1)
    home1 = r["intervals"][0]["agents"]["Home 1"]
    assert home1 == {
        "demand_wh": 500,
        "from_generation_wh": 0,
        "from_storage_wh": 0,
        "from_grid_wh": 500,
    }
    bill = r["kpis"]["bills"]["Home 1"]
    assert bill["imbalance_import_wh"] == 500 and bill["imbalance_spent"] == 500 * 30


def test_report_is_readable():
    text = format_report(simulate(KIT, intervals=13))
    assert "Interval 12 (hour 12)" in text
    assert "trade: Home solar -> Home battery: 1000 Wh at 0.00 ct/kWh" in text
    assert "Summary" in text and "self-sufficiency" in text


def run(*args, check=True):
    return subprocess.run(
        [str(PICOGRID), "simulate", *args], capture_output=True, cwd=ROOT, check=check, timeout=60
    )


def test_command_json_is_the_same_bytes_every_time():
    first, second = run("--json"), run("--json")
    assert first.stdout == second.stdout
    expected = json.dumps(simulate(KIT), sort_keys=True, separators=(",", ":")) + "\n"
    assert first.stdout == expected.encode()


def test_command_flags_and_errors(tmp_path):
    out = run(
        "--scenario",
        "docs/scenario-example.toml",
        "--intervals",
        "2",
        "--mechanism",
        "pay-as-bid",
        "--json",
    )
    r = json.loads(out.stdout)
    assert r["mechanism"] == "pay-as-bid" and len(r["intervals"]) == 2
    assert b"Summary" in run("--intervals", "1").stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[agents]]\nname = "A"\nrole = "prosumer"\nhousehold = "h"\n')
    for args, message in [
        (("--scenario", str(bad)), b"role must be one of"),
        (("--scenario", str(tmp_path / "none.toml")), b"cannot read scenario"),
        (("--mechanism", "first-come"), b"unknown mechanism"),
    ]:
        done = run(*args, check=False)
        assert done.returncode == 2 and message in done.stderr and b"Traceback" not in done.stderr
