"""Settled intervals as LED states: the rules, and a whole day of the default kit on mock pins."""

from __future__ import annotations

import time

import pytest

from hardware.gpio import mock_pin_factory
from hardware.led_map import assign_agents, kit_shaped, led_states
from hardware.leds import INDICATOR_LEDS, KitBoard, LedMode

OFF, SOLID, FLASHING = LedMode.OFF, LedMode.SOLID, LedMode.FLASHING

KIT_AGENTS = [
    {"name": "Home 1", "role": "consumer", "household": "home1", "capacity_wh": 0},
    {"name": "Home 2", "role": "consumer", "household": "home2", "capacity_wh": 0},
    {"name": "Home 3", "role": "consumer", "household": "home3", "capacity_wh": 0},
    {"name": "Home battery", "role": "storage", "household": "home1", "capacity_wh": 4000},
    {
        "name": "Neighbourhood battery",
        "role": "storage",
        "household": "community",
        "capacity_wh": 20000,
    },
    {"name": "Home solar", "role": "generator", "household": "home1", "capacity_wh": 0},
    {"name": "Community solar", "role": "generator", "household": "community", "capacity_wh": 0},
]
CURVE = [0, 0, 0, 0, 0, 0, 2, 3, 4, 7, 9, 10, 10, 10, 10, 9, 9, 7, 4, 1, 0, 0, 0, 0]


def home(demand=500, generation=0, storage=0, grid=0):
    return {
        "demand_wh": demand,
        "from_generation_wh": generation,
        "from_storage_wh": storage,
        "from_grid_wh": grid,
    }


DEMAND = {"Home 1": 500, "Home 2": 400, "Home 3": 700}
CAPACITY = {"Home battery": 4000, "Neighbourhood battery": 20000}
MAX_POWER = {"Home battery": 2000, "Neighbourhood battery": 5000}


class SettledHour:
    """One hour of the default kit settled by a plain merit order (test data, not the market's
    code)."""

    def __init__(self, factor: int, soc: dict[str, int]) -> None:
        self.output = {"Home solar": 150 * factor, "Community solar": 600 * factor}
        self.left = dict(self.output)
        self.sold = dict.fromkeys(self.output, 0)
        self.need = dict(DEMAND)
        self.homes = {name: home(wh) for name, wh in DEMAND.items()}
        self.soc = soc
        self.charged = dict.fromkeys(CAPACITY, 0)
        self.discharged = dict.fromkeys(CAPACITY, 0)

    def take(self, source: str, consumer: str) -> None:
        amount = min(self.need[consumer], self.left[source])
        self.need[consumer] -= amount
        self.left[source] -= amount
        self.sold[source] += amount
        self.homes[consumer]["from_generation_wh"] += amount

    def charge(self, source: str, battery: str) -> None:
        room = min(
            CAPACITY[battery] - self.soc[battery], MAX_POWER[battery] - self.charged[battery]
        )
        amount = min(self.left[source], room)
        self.left[source] -= amount
        self.sold[source] += amount
        self.charged[battery] += amount
        self.soc[battery] += amount

    def discharge(self, battery: str, consumer: str) -> None:
        power_left = MAX_POWER[battery] - self.discharged[battery]
        amount = min(self.need[consumer], self.soc[battery], power_left)
        self.need[consumer] -= amount
        self.soc[battery] -= amount
        self.discharged[battery] += amount
        self.homes[consumer]["from_storage_wh"] += amount

    def settle(self) -> dict[str, dict[str, int]]:
        """Each household's solar serves its home, then charges its battery, which covers the
        home's deficit; the rest of the generation serves the other homes; the neighbourhood
        battery absorbs what is left, then covers deficits; the utility grid does the rest."""
        self.take("Home solar", "Home 1")
        self.charge("Home solar", "Home battery")
        self.discharge("Home battery", "Home 1")
        for consumer in DEMAND:
            self.take("Home solar", consumer)
            self.take("Community solar", consumer)
        self.charge("Home solar", "Neighbourhood battery")
        self.charge("Community solar", "Neighbourhood battery")
        for consumer in DEMAND:
            self.discharge("Neighbourhood battery", consumer)
            self.homes[consumer]["from_grid_wh"] = self.need[consumer]
        figures: dict[str, dict[str, int]] = dict(self.homes)
        for name, wh in self.output.items():
            figures[name] = {"generation_wh": wh, "sold_wh": self.sold[name]}
        for name in CAPACITY:
            figures[name] = {
                "soc_wh": self.soc[name],
                "charged_wh": self.charged[name],
                "discharged_wh": self.discharged[name],
            }
        return figures


def kit_day() -> list[dict[str, dict[str, int]]]:
    """The default kit's 24 intervals; the batteries start empty."""
    soc = dict.fromkeys(CAPACITY, 0)
    return [SettledHour(factor, soc).settle() for factor in CURVE]


# -- the rules --


def test_home_leds_show_where_the_energy_came_from():
    figures = {"Home 1": home(generation=200, storage=100, grid=200), "Home 2": home(grid=400)}
    states = led_states(KIT_AGENTS, figures)
    assert [states[f"Home 1/{kind}"] for kind in ("grid", "battery", "solar")] == [SOLID] * 3
    assert [states[f"Home 2/{kind}"] for kind in ("grid", "battery", "solar")] == [SOLID, OFF, OFF]
    assert states["Home 3/grid"] is OFF  # no figures: nothing shown


@pytest.mark.parametrize(
    ("figures", "mode"),
    [
        ({"soc_wh": 1000, "charged_wh": 500, "discharged_wh": 0}, FLASHING),
        ({"soc_wh": 0, "charged_wh": 0, "discharged_wh": 300}, FLASHING),
        ({"soc_wh": 1000, "charged_wh": 0, "discharged_wh": 0}, SOLID),
        ({"soc_wh": 0, "charged_wh": 0, "discharged_wh": 0}, OFF),
    ],
)
def test_storage_flashes_while_working_glows_while_holding_and_is_dark_when_empty(figures, mode):
    assert (
        led_states(KIT_AGENTS, {"Neighbourhood battery": figures})["Neighbourhood battery"] is mode
    )


@pytest.mark.parametrize(
    ("community", "mode"),
    [
        ({"generation_wh": 600, "sold_wh": 600}, FLASHING),
        ({"generation_wh": 600, "sold_wh": 0}, SOLID),  # producing, nobody took it
        ({"generation_wh": 0, "sold_wh": 0}, OFF),
    ],
)
def test_generator_flashes_while_delivering(community, mode):
    assert led_states(KIT_AGENTS, {"Community solar": community})["Community solar"] is mode


def test_home_solar_feeding_its_own_household_counts_as_delivering():
    figures = {
        "Home solar": {"generation_wh": 300, "sold_wh": 0},
        "Home 1": home(generation=300, grid=200),
    }
    assert led_states(KIT_AGENTS, figures)["Home solar"] is FLASHING
    charging = {
        "Home solar": {"generation_wh": 300, "sold_wh": 0},
        "Home battery": {"soc_wh": 300, "charged_wh": 300, "discharged_wh": 0},
    }
    assert led_states(KIT_AGENTS, charging)["Home solar"] is FLASHING
    # Another household drawing from generators says nothing about this one.
    elsewhere = {"Home solar": {"generation_wh": 300, "sold_wh": 0}, "Home 2": home(generation=300)}
    assert led_states(KIT_AGENTS, elsewhere)["Home solar"] is SOLID


def test_every_indicator_led_gets_a_state_and_figures_must_be_ints():
    assert set(led_states(KIT_AGENTS, {})) == set(INDICATOR_LEDS)
    with pytest.raises(TypeError):
        led_states(KIT_AGENTS, {"Home 1": home(grid=1.5)})


def test_kit_names_and_aliases_find_their_leds():
    shuffled = list(reversed(KIT_AGENTS))
    assert assign_agents(shuffled) == {
        "Home 1": "Home 1",
        "Home 2": "Home 2",
        "Home 3": "Home 3",
        "Home battery": "Home battery",
        "Neighbourhood battery": "Neighbourhood battery",
        "Home solar": "Home solar",
        "Community solar": "Community solar",
    }
    aliases = [
        {"name": "Storage 2", "role": "storage"},
        {"name": "Storage 1", "role": "storage"},
        {"name": "Generation 2", "role": "generator"},
    ]
    assert assign_agents(aliases) == {
        "Home battery": "Storage 1",
        "Neighbourhood battery": "Storage 2",
        "Community solar": "Generation 2",
    }


def test_other_scenarios_fill_the_board_in_order_and_drop_extras():
    agents = [{"name": f"House {i}", "role": "consumer"} for i in range(5)]
    agents.insert(3, {"name": "Home 2", "role": "consumer"})
    agents.append({"name": "Wind", "role": "generator"})
    placed = assign_agents(agents)
    assert (placed["Home 1"], placed["Home 2"], placed["Home 3"]) == (
        "House 0",
        "Home 2",
        "House 1",
    )
    assert placed["Home solar"] == "Wind" and "Community solar" not in placed
    figures = {"House 4": home(grid=100), "Home 2": home(grid=100)}
    states = led_states(agents, figures)
    assert states["Home 2/grid"] is SOLID
    assert [states[f"Home {i}/grid"] for i in (1, 3)] == [OFF, OFF]  # House 4 isn't shown


# -- a whole day on the kit's pins --


def test_a_day_of_the_default_kit_on_mock_pins():
    flash_s, window_s = 0.004, 0.06
    day = kit_day()
    board = KitBoard(pin_factory=mock_pin_factory(), flash_on_s=flash_s, flash_off_s=flash_s)
    seen: dict[str, set[LedMode]] = {name: set() for name in INDICATOR_LEDS}
    try:
        for hour, figures in enumerate(day):
            states = led_states(KIT_AGENTS, figures)
            pins = {name: board.led(name).pin for name in INDICATOR_LEDS}
            board.apply(states)  # returns once solid and dark LEDs have stopped blinking
            for pin in pins.values():
                pin.clear_states()
            # At least `window_s`, and until each flashing LED has blinked twice (bounded): on
            # a loaded machine the blink thread may get few turns in a short window.
            deadline = time.monotonic() + 5.0
            time.sleep(window_s)
            while time.monotonic() < deadline and any(
                len(pins[name].states) < 4 for name, mode in states.items() if mode is FLASHING
            ):
                time.sleep(window_s)
            assert board.states() == states
            for name, mode in states.items():
                seen[name].add(mode)
                history = [change.state for change in pins[name].states]
                where = f"hour {hour}, {name}, {mode.value}: {history}"
                if mode is FLASHING:
                    assert len(history) >= 4 and {True, False} <= set(history[1:]), where
                else:
                    assert history == [mode is SOLID], where  # steady all interval
    finally:
        board.close()

    # The day shows what DESIGN describes, not a board stuck in one state.
    assert seen["Home battery"] == {OFF, SOLID, FLASHING}
    assert seen["Neighbourhood battery"] >= {OFF, FLASHING}
    assert seen["Home solar"] == seen["Community solar"] == {OFF, FLASHING}
    for name in ("Home 1/grid", "Home 2/solar", "Home 3/battery"):
        assert seen[name] == {OFF, SOLID}
    night, noon = led_states(KIT_AGENTS, day[0]), led_states(KIT_AGENTS, day[12])
    assert [night[f"Home {i}/grid"] for i in (1, 2, 3)] == [SOLID] * 3
    assert night["Community solar"] is OFF and noon["Community solar"] is FLASHING
    assert noon["Home 1/solar"] is SOLID and noon["Home 1/grid"] is OFF


def _with(**changes):
    """The kit's agents with some changed: name -> {field: value}, or None to drop it."""
    out = []
    for agent in KIT_AGENTS:
        change = changes.get(agent["name"], {})
        if change is not None:
            out.append({**agent, **change})
    return out


def test_the_kit_and_its_aliases_are_kit_shaped():
    assert kit_shaped(KIT_AGENTS)
    assert kit_shaped(list(reversed(KIT_AGENTS)))
    renamed = _with(**{"Home battery": {"name": "Storage 1"},
                       "Community solar": {"name": "Generation 2"}})
    assert kit_shaped(renamed)
    # other names in the kit's households still fit the board
    assert kit_shaped(_with(**{"Home 2": {"name": "Ana"}, "Home 3": {"name": "Bo"}}))


@pytest.mark.parametrize(
    "changes",
    [
        {"Home 3": None},  # two homes
        {"Home solar": {"role": "consumer"}},  # four homes, one solar
        {"Home battery": {"household": "home2"}},  # the home battery in another home
        {"Home solar": {"household": "community"}},
        {"Home 3": {"household": "home2"}},  # two homes in one household
        {"Neighbourhood battery": {"household": "home3"}},
        {"Community solar": {"household": "home1"}},
        {"Home 2": {"name": "Home 3"}},  # a name twice: the board could not tell them apart
    ],
)
def test_any_other_grid_is_drawn_generically(changes):
    assert not kit_shaped(_with(**changes))
    assert not kit_shaped(_with(**changes) + [KIT_AGENTS[0] | {"name": "Home 4"}])
