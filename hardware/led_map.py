"""A settled interval as LED states, by DESIGN's rules (pure: no pins, no clock).

Homes: red (grid) lit when the home drew from the utility grid, orange (battery) when from any
storage, green (solar) when from any generator; several may be lit, each SOLID or OFF.

Storage: FLASHING while charging or discharging, SOLID when it holds energy and is idle, OFF
when empty.

Generators: FLASHING while delivering, SOLID when producing but nothing took the energy
(available and idle: curtailed or unsold), OFF when producing nothing. Delivering means it
produced (generation_wh > 0) and either sold energy (sold_wh > 0) or its own household took
generation (a home of the same household with from_generation_wh > 0 or a battery of the same
household with charged_wh > 0), so that home solar feeding its own home counts as delivering
whether or not the market books that as a sale.

Agents are placed on the kit's board by name first ("Home 1".."Home 3"; "Home battery" or
"Storage 1"; "Neighbourhood battery" or "Storage 2"; "Home solar" or "Generation 1";
"Community solar" or "Generation 2"), then the remaining agents of each role in list order on
the remaining LEDs of that role; agents beyond the board are not shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from hardware.leds import GENERATOR_LEDS, HOMES, INDICATOR_LEDS, STORAGE_LEDS, LedMode, home_led

_SLOTS: dict[str, dict[str, tuple[str, ...]]] = {
    "consumer": {home: (home,) for home in HOMES},
    "storage": {
        STORAGE_LEDS[0]: (STORAGE_LEDS[0], "Storage 1"),
        STORAGE_LEDS[1]: (STORAGE_LEDS[1], "Neighborhood battery", "Storage 2"),
    },
    "generator": {
        GENERATOR_LEDS[0]: (GENERATOR_LEDS[0], "Generation 1"),
        GENERATOR_LEDS[1]: (GENERATOR_LEDS[1], "Generation 2"),
    },
}


def assign_agents(agents: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Board place ("Home 1", "Home battery", "Home solar", ...) -> the agent shown there."""
    placed: dict[str, str] = {}
    for role, slots in _SLOTS.items():
        names = [str(agent["name"]) for agent in agents if agent.get("role") == role]
        free = list(names)
        for slot, aliases in slots.items():
            wanted = {alias.casefold() for alias in aliases}
            match = next((name for name in free if name.casefold() in wanted), None)
            if match is not None:
                placed[slot] = match
                free.remove(match)
        for slot in slots:
            if slot not in placed and free:
                placed[slot] = free.pop(0)
    return placed


def kit_shaped(agents: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a grid's agents fit the kit's board: 3 homes, 2 batteries and 2 solar systems,
    named apart, placed as `assign_agents` places them, with the home battery and the home solar
    in Home 1's household, three households for the homes, and the other two parts in none of
    them. Any other grid is drawn generically, by role and household."""
    roles = Counter(agent.get("role") for agent in agents)
    names = [str(agent["name"]) for agent in agents]
    if roles != Counter(consumer=3, storage=2, generator=2) or len(set(names)) != len(names):
        return False
    house = {str(agent["name"]): agent.get("household") for agent in agents}
    at = {slot: house[name] for slot, name in assign_agents(agents).items()}
    homes = [at[home] for home in HOMES]
    if len(set(homes)) != len(homes):
        return False
    return (
        at[STORAGE_LEDS[0]] == homes[0] == at[GENERATOR_LEDS[0]]
        and at[STORAGE_LEDS[1]] not in homes
        and at[GENERATOR_LEDS[1]] not in homes
    )


def _wh(figures: Mapping[str, Any], key: str) -> int:
    value = figures.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} must be an int of Wh, not {value!r}")
    return value


def _household_took_generation(
    household: Any,
    agents: Sequence[Mapping[str, Any]],
    interval_agents: Mapping[str, Mapping[str, Any]],
) -> bool:
    for agent in agents:
        if agent.get("household") != household:
            continue
        figures = interval_agents.get(str(agent["name"]), {})
        if agent.get("role") == "consumer" and _wh(figures, "from_generation_wh") > 0:
            return True
        if agent.get("role") == "storage" and _wh(figures, "charged_wh") > 0:
            return True
    return False


def led_states(
    agents: Sequence[Mapping[str, Any]], interval_agents: Mapping[str, Mapping[str, Any]]
) -> dict[str, LedMode]:
    """Every indicator LED's mode for one settled interval.

    `agents`: [{"name", "role", "household", "capacity_wh"}, ...]; `interval_agents`: agent name
    -> that agent's figures for the interval (as in `picogrid simulate --json`). An agent with no
    figures shows OFF.
    """
    states = dict.fromkeys(INDICATOR_LEDS, LedMode.OFF)
    by_name = {str(agent["name"]): agent for agent in agents}
    for slot, name in assign_agents(agents).items():
        figures = interval_agents.get(name)
        if figures is None:
            continue
        if slot in HOMES:
            for kind, key in (
                ("grid", "from_grid_wh"),
                ("battery", "from_storage_wh"),
                ("solar", "from_generation_wh"),
            ):
                lit = _wh(figures, key) > 0
                states[home_led(slot, kind)] = LedMode.SOLID if lit else LedMode.OFF
        elif slot in STORAGE_LEDS:
            if _wh(figures, "charged_wh") > 0 or _wh(figures, "discharged_wh") > 0:
                states[slot] = LedMode.FLASHING
            elif _wh(figures, "soc_wh") > 0:
                states[slot] = LedMode.SOLID
        else:
            if _wh(figures, "generation_wh") <= 0:
                continue
            household = by_name[name].get("household")
            delivering = _wh(figures, "sold_wh") > 0 or _household_took_generation(
                household, agents, interval_agents
            )
            states[slot] = LedMode.FLASHING if delivering else LedMode.SOLID
    return states
