"""Scenarios: a PicoGrid described in a TOML file (agents, tariffs, mechanism, interval length).

The demo founds its community's charter from a scenario and `picogrid simulate` runs one offline.
`docs/scenario-example.toml` is an annotated copy of the built-in default, the kit of DESIGN.

Energy model: a scenario's day has 24 intervals, interval `k` being hour `k mod 24` of the day,
whatever `interval_seconds` (the wall-clock length written into the charter) is. Energies are Wh
per interval; a power limit of P W moves P Wh in an interval (one modelled hour, see
`ENERGY_INTERVAL_MS`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from ledger.charter import MECHANISMS, GridRules
from market.participants import ROLES, Participant, simulated_agent_id

HOURS = 24
ENERGY_INTERVAL_MS = 3_600_000  # the duration one scenario interval's energy stands for

_TOP_KEYS = {
    "name",
    "mechanism",
    "interval_seconds",
    "intervals",
    "generation_curve",
    "tariffs",
    "agents",
}
_TARIFF_KEYS = ("retail", "feed_in", "community_price", "household_price")
_AGENT_KEYS = {
    "name",
    "role",
    "household",
    "capacity_wh",
    "max_power_w",
    "consumption_wh",
    "consumption_profile",
    "generation_scale",
    "generation_curve",
    "strategy",
}


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the offending key."""


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """One agent of a scenario. Consumption and generation are Wh per interval."""

    name: str
    role: str
    household: str
    capacity_wh: int = 0
    max_power_w: int = 0
    consumption_wh: int | tuple[int, ...] = 0  # an average for every hour, or 24 hourly values
    generation_curve: tuple[int, ...] = ()  # 24 values; generation = curve[hour] * scale
    generation_scale: int = 0
    strategy: str | None = None  # "package.module:Name"; None: the role's default strategy

    def expected(self, interval: int) -> tuple[int, int]:
        """(demand_wh, generation_wh) in `interval`, whose hour of day is `interval mod 24`."""
        hour = interval % HOURS
        demand = generation = 0
        if self.role == "consumer":
            c = self.consumption_wh
            demand = c[hour] if isinstance(c, tuple) else c
        elif self.role == "generator":
            generation = self.generation_curve[hour] * self.generation_scale
        return demand, generation


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    agents: tuple[AgentSpec, ...]
    rules: GridRules
    interval_seconds: int = 3600
    intervals: int = HOURS

    @property
    def mechanism(self) -> str:
        return self.rules.mechanism

    def agent(self, name: str) -> AgentSpec:
        for spec in self.agents:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def expected(self, name: str, interval: int) -> tuple[int, int]:
        """(demand_wh, generation_wh) of the agent called `name` in `interval`."""
        return self.agent(name).expected(interval)

    def participants(self) -> dict[bytes, Participant]:
        """The scenario's agents as market participants, keyed by simulated agent id."""
        out = {}
        for s in self.agents:
            agent = simulated_agent_id(s.name)
            out[agent] = Participant(
                agent, s.name, s.role, s.household, s.capacity_wh, s.max_power_w
            )
        return out


def _int(value: object, where: str, minimum: int | None = 0) -> int:
    if value is None:
        raise ScenarioError(f"{where} is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where} must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise ScenarioError(f"{where} must be >= {minimum}, not {value}")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(f"{where} must be non-empty text, not {value!r}")
    return value


def _hours(value: object, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) != HOURS:
        raise ScenarioError(f"{where} must be a list of {HOURS} integers (one per hour of the day)")
    return tuple(_int(v, f"{where}[{i}]") for i, v in enumerate(value))


def _unknown(m: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(m) - allowed)
    if extra:
        raise ScenarioError(
            f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _agent(m: object, i: int, curve: tuple[int, ...] | None) -> AgentSpec:
    where = f"agents[{i}]"
    if not isinstance(m, dict):
        raise ScenarioError(f"{where} must be a table ([[agents]])")
    name = _text(m.get("name"), f"{where}.name")
    where = f"agents[{i}] ({name})"
    _unknown(m, _AGENT_KEYS, where)
    role = m.get("role")
    if role not in ROLES:
        raise ScenarioError(f"{where}.role must be one of {', '.join(ROLES)}, not {role!r}")
    household = _text(m.get("household"), f"{where}.household")
    allowed = {
        "consumer": {"consumption_wh", "consumption_profile"},
        "generator": {"generation_scale", "generation_curve"},
        "storage": {"capacity_wh"},
    }[role] | {"name", "role", "household", "max_power_w", "strategy"}
    misplaced = sorted(set(m) - allowed)
    if misplaced:
        raise ScenarioError(f"{where}.{misplaced[0]} does not apply to a {role}")
    spec = {"name": name, "role": role, "household": household}
    spec["max_power_w"] = _int(m.get("max_power_w", 0), f"{where}.max_power_w")
    if "strategy" in m:
        spec["strategy"] = _text(m["strategy"], f"{where}.strategy")
        if ":" not in spec["strategy"]:
            raise ScenarioError(f"{where}.strategy must look like 'package.module:Name'")
    if role == "consumer":
        if ("consumption_wh" in m) == ("consumption_profile" in m):
            raise ScenarioError(f"{where} needs exactly one of consumption_wh, consumption_profile")
        if "consumption_wh" in m:
            spec["consumption_wh"] = _int(m["consumption_wh"], f"{where}.consumption_wh")
        else:
            spec["consumption_wh"] = _hours(
                m["consumption_profile"], f"{where}.consumption_profile"
            )
    elif role == "generator":
        own = m.get("generation_curve")
        spec["generation_curve"] = (
            _hours(own, f"{where}.generation_curve") if own is not None else curve
        )
        if spec["generation_curve"] is None:
            raise ScenarioError(f"{where} needs a generation_curve (its own or the scenario's)")
        spec["generation_scale"] = _int(m.get("generation_scale"), f"{where}.generation_scale")
    else:
        spec["capacity_wh"] = _int(m.get("capacity_wh"), f"{where}.capacity_wh", 1)
        spec["max_power_w"] = _int(m.get("max_power_w"), f"{where}.max_power_w", 1)
    return AgentSpec(**spec)


def parse_scenario(data: dict) -> Scenario:
    """Check a decoded scenario table and build the `Scenario`."""
    _unknown(data, _TOP_KEYS, "scenario")
    name = _text(data.get("name"), "name")
    mechanism = data.get("mechanism", "merit-order")
    if mechanism not in MECHANISMS:
        raise ScenarioError(f"mechanism must be one of {', '.join(MECHANISMS)}, not {mechanism!r}")
    tariffs = data.get("tariffs", {})
    if not isinstance(tariffs, dict):
        raise ScenarioError("tariffs must be a table ([tariffs])")
    _unknown(tariffs, set(_TARIFF_KEYS), "tariffs")
    defaults = GridRules()
    prices = {k: _int(tariffs.get(k, getattr(defaults, k)), f"tariffs.{k}") for k in _TARIFF_KEYS}
    curve = data.get("generation_curve")
    curve = _hours(curve, "generation_curve") if curve is not None else None
    agents = data.get("agents")
    if not isinstance(agents, list) or not agents:
        raise ScenarioError("agents must be a non-empty array of tables ([[agents]])")
    specs = tuple(_agent(m, i, curve) for i, m in enumerate(agents))
    names = [s.name for s in specs]
    for n in names:
        if names.count(n) > 1:
            raise ScenarioError(f"agents: duplicate name {n!r}")
    return Scenario(
        name=name,
        agents=specs,
        rules=GridRules(mechanism=mechanism, **prices),
        interval_seconds=_int(data.get("interval_seconds", 3600), "interval_seconds", 1),
        intervals=_int(data.get("intervals", HOURS), "intervals", 1),
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario TOML file (ScenarioError for bad content, OSError for I/O)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return parse_scenario(data)


def default_scenario() -> Scenario:
    """The default PicoGrid of DESIGN (the seeds' kit), shipped as `market/scenarios/default.toml`."""
    text = resources.files("market").joinpath("scenarios/default.toml").read_text(encoding="utf-8")
    return parse_scenario(tomllib.loads(text))


# A household's day in tenths of its average hour (mean exactly 10, so a home's daily energy is
# unchanged): low at night, a breakfast peak at 07:00, a dip at work hours, the evening peak at
# 19:00. The shape of a typical European household load profile, rounded to whole tenths.
DAY_PROFILE_TENTHS = (7, 5, 5, 5, 5, 7, 9, 13, 12, 10, 9, 9,
                      11, 10, 10, 10, 11, 14, 16, 17, 15, 12, 10, 8)


def day_scenario() -> Scenario:
    """The default PicoGrid with each home's flat average spread over `DAY_PROFILE_TENTHS`:
    what `picogrid demo` and a node without a scenario forecast (Home 1: 350 Wh at 01:00 ...
    850 Wh at 19:00, 500 Wh an hour on average)."""
    kit = default_scenario()
    agents = tuple(
        replace(a, consumption_wh=tuple(a.consumption_wh * m // 10 for m in DAY_PROFILE_TENTHS))
        if a.role == "consumer" and isinstance(a.consumption_wh, int) else a
        for a in kit.agents
    )
    return replace(kit, agents=agents)
