"""Scenario files: the built-in kit, the annotated example, and clear errors for bad input."""

import tomllib
from pathlib import Path

import pytest

from ledger.charter import GridRules
from market.scenario import ScenarioError, default_scenario, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
CURVE = [0, 0, 0, 0, 0, 0, 2, 3, 4, 7, 9, 10, 10, 10, 10, 9, 9, 7, 4, 1, 0, 0, 0, 0]


def test_the_default_is_the_kit_of_design():
    s = default_scenario()
    assert [(a.name, a.role, a.household, a.capacity_wh, a.max_power_w) for a in s.agents] == [
        ("Home 1", "consumer", "home1", 0, 0),
        ("Home 2", "consumer", "home2", 0, 0),
        ("Home 3", "consumer", "home3", 0, 0),
        ("Home battery", "storage", "home1", 4000, 2000),
        ("Neighbourhood battery", "storage", "community", 20000, 5000),
        ("Home solar", "generator", "home1", 0, 0),
        ("Community solar", "generator", "community", 0, 0),
    ]
    assert s.rules == GridRules("merit-order", 30000, 5000, 15000, 0)
    assert s.mechanism == "merit-order"
    assert (s.intervals, s.interval_seconds) == (24, 3600)
    assert [s.expected("Home solar", h)[1] for h in range(24)] == [v * 150 for v in CURVE]
    assert [s.expected("Community solar", h)[1] for h in range(24)] == [v * 600 for v in CURVE]
    assert s.expected("Home 3", 5) == (700, 0)
    assert s.expected("Home battery", 12) == (0, 0)
    assert s.expected("Home solar", 24 + 12) == (0, 1500)  # interval mod 24 is the hour


def test_the_annotated_example_is_the_default():
    assert load_scenario(ROOT / "docs" / "scenario-example.toml") == default_scenario()


def test_participants_have_simulated_ids_from_names():
    import hashlib

    ps = default_scenario().participants()
    assert len(ps) == 7
    for agent, p in ps.items():
        assert agent == hashlib.blake2b(p.name.encode(), digest_size=32).digest()


BASE = """
name = "t"
[[agents]]
name = "Home"
role = "consumer"
household = "h"
consumption_wh = 100
"""


def scenario(extra_agent: str = "", top: str = "", base: str = BASE):
    text = top + base + ("\n[[agents]]\n" + extra_agent if extra_agent else "")
    return parse_scenario(tomllib.loads(text))


def test_a_consumption_profile():
    profile = list(range(100, 124))
    s = scenario(f'name = "P"\nrole = "consumer"\nhousehold = "p"\nconsumption_profile = {profile}')
    assert [s.expected("P", h)[0] for h in range(24)] == profile
    assert s.expected("Home", 3) == (100, 0)


@pytest.mark.parametrize(
    ("agent", "top", "message"),
    [
        ('name = "X"\nrole = "prosumer"\nhousehold = "h"', "", r"agents\[1\] \(X\)\.role"),
        (
            'name = "B"\nrole = "storage"\nhousehold = "h"\ncapacity_wh = -5\nmax_power_w = 10',
            "",
            r"\(B\)\.capacity_wh must be >= 1",
        ),
        (
            'name = "P"\nrole = "consumer"\nhousehold = "h"\nconsumption_profile = [1, 2, 3]',
            "",
            r"\(P\)\.consumption_profile must be a list of 24",
        ),
        ('name = "Home"\nrole = "consumer"\nhousehold = "h"\nconsumption_wh = 5', "", "duplicate name 'Home'"),
        ('name = "F"\nrole = "consumer"\nhousehold = "h"\nconsumption_wh = 500.0', "", r"\(F\)\.consumption_wh must be an integer"),
        ('name = "F"\nrole = "consumer"\nhousehold = "h"\nconsumption_wh = true', "", r"\(F\)\.consumption_wh must be an integer"),
        ('name = "T"\nrole = "consumer"\nhousehold = "h"\nconsumpton_wh = 5', "", "unknown key 'consumpton_wh'"),
        ('name = "C"\nrole = "consumer"\nhousehold = "h"\nconsumption_wh = 5\ncapacity_wh = 9', "", r"\(C\)\.capacity_wh does not apply to a consumer"),
        ('name = "N"\nrole = "consumer"\nhousehold = "h"', "", r"\(N\) needs exactly one of consumption_wh"),
        ('name = "G"\nrole = "generator"\nhousehold = "h"\ngeneration_scale = 5', "", r"\(G\) needs a generation_curve"),
        ('name = "G"\nrole = "generator"\nhousehold = "h"\ngeneration_scale = 1.5\ngeneration_curve = ' + str(CURVE), "", r"\(G\)\.generation_scale must be an integer"),
        ('name = "B"\nrole = "storage"\nhousehold = "h"\ncapacity_wh = 10', "", r"\(B\)\.max_power_w is required"),
        ('name = "H"\nrole = "consumer"\nconsumption_wh = 1', "", r"\(H\)\.household must be non-empty"),
        ('name = "S"\nrole = "consumer"\nhousehold = "h"\nconsumption_wh = 1\nstrategy = "nocolon"', "", r"\(S\)\.strategy must look like"),
        ("", 'mechanism = "first-come"\n', "mechanism must be one of"),
        ("", "interval_seconds = 0\n", "interval_seconds must be >= 1"),
        ("", "intervals = 2.5\n", "intervals must be an integer"),
        ("", "colour = 1\n", "unknown key 'colour'"),
        ("", "generation_curve = [1, 2]\n", "generation_curve must be a list of 24"),
    ],
)  # fmt: skip
def test_bad_input_names_the_key(agent, top, message):
    with pytest.raises(ScenarioError, match=message):
        scenario(agent, top)


def test_bad_tariffs_and_missing_agents():
    with pytest.raises(ScenarioError, match=r"tariffs\.retail must be an integer"):
        scenario(base=BASE + "\n[tariffs]\nretail = 0.3\n")
    with pytest.raises(ScenarioError, match="tariffs: unknown key 'vat'"):
        scenario(base=BASE + "\n[tariffs]\nvat = 20\n")
    with pytest.raises(ScenarioError, match="agents must be a non-empty array"):
        parse_scenario({"name": "empty"})
    s = scenario(base=BASE + "\n[tariffs]\nretail = 40000\n")
    assert s.rules == GridRules("merit-order", 40000, 5000, 15000, 0)  # the rest default


def test_load_scenario_reports_invalid_toml_and_missing_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)
    with pytest.raises(OSError):
        load_scenario(tmp_path / "missing.toml")
