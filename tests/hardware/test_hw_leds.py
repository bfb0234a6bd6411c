"""The kit's LED board on gpiozero's MockFactory, and its pin map."""

from __future__ import annotations

import time

import pytest

from hardware.gpio import mock_pin_factory
from hardware.leds import (
    DEFAULT_PIN_MAP,
    INDICATOR_LEDS,
    STATUS_LED,
    KitBoard,
    LedMode,
    pin_map_from_config,
)

FLASH_S = 0.005


@pytest.fixture
def board():
    kit = KitBoard(pin_factory=mock_pin_factory(), flash_on_s=FLASH_S, flash_off_s=FLASH_S)
    yield kit
    kit.close()


def history(board: KitBoard, name: str) -> list[bool]:
    return [state.state for state in board.led(name).pin.states]


def wait_for_transitions(board: KitBoard, name: str, count: int, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while len(history(board, name)) <= count and time.monotonic() < deadline:
        time.sleep(0.005)


def test_the_kits_pins_are_designs():
    assert DEFAULT_PIN_MAP == {
        "Home 1/grid": 16,
        "Home 1/battery": 20,
        "Home 1/solar": 21,
        "Home 2/grid": 8,
        "Home 2/battery": 7,
        "Home 2/solar": 12,
        "Home 3/grid": 23,
        "Home 3/battery": 24,
        "Home 3/solar": 25,
        "Home battery": 15,
        "Neighbourhood battery": 26,
        "Home solar": 14,
        "Community solar": 18,
        "status": 17,
    }
    assert len(INDICATOR_LEDS) == 13 and STATUS_LED not in INDICATOR_LEDS


def test_pin_map_from_a_toml_table_changes_only_what_it_names():
    pins = pin_map_from_config({"status": 5, "Home 1/grid": 6})
    assert pins["status"] == 5 and pins["Home 1/grid"] == 6
    assert pins["Home 2/grid"] == 8
    assert pin_map_from_config(None) == DEFAULT_PIN_MAP


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"Home 4/grid": 5}, "unknown LED 'Home 4/grid'"),
        ({"status": 16}, "BCM 16: Home 1/grid, status"),
        ({"status": 2}, "I2C SDA"),
        ({"status": 40}, "not a GPIO pin"),
        ({"status": True}, "BCM pin number"),
        ({"status": "17"}, "BCM pin number"),
    ],
)
def test_bad_pin_maps_are_refused_clearly(table, message):
    with pytest.raises(ValueError, match=message):
        pin_map_from_config(table)


def test_board_uses_the_configured_pins():
    factory = mock_pin_factory()
    with KitBoard({"status": 5}, pin_factory=factory) as kit:
        assert kit.status_led.pin.info.name == "GPIO5"
        assert kit.led("Home 3/solar").pin.info.name == "GPIO25"
        assert kit.pin_map["status"] == 5


def test_solid_off_and_flashing(board):
    board.apply({"Home 1/grid": LedMode.SOLID, "Home battery": LedMode.FLASHING})
    wait_for_transitions(board, "Home battery", 4)
    assert board.led("Home 1/grid").value == 1
    assert history(board, "Home 1/grid") == [False, True]
    flashing = history(board, "Home battery")
    assert len(flashing) > 4 and flashing[1:5] == [True, False, True, False]
    assert history(board, "Home solar") == [False]
    assert board.states()["Home 1/grid"] is LedMode.SOLID
    assert board.states()["Home battery"] is LedMode.FLASHING
    assert board.states()["Home solar"] is LedMode.OFF
    board.apply({"Home 1/grid": LedMode.OFF, "Home battery": LedMode.SOLID})
    assert board.led("Home 1/grid").value == 0 and board.led("Home battery").value == 1
    board.led("Home battery").pin.clear_states()
    time.sleep(10 * FLASH_S)
    assert history(board, "Home battery") == [True]  # solid now: no more toggling


def test_logical_state_is_kept_while_gpiozero_value_toggles(board):
    board.apply({"Community solar": LedMode.FLASHING})
    seen = set()
    deadline = time.monotonic() + 2
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.add(board.led("Community solar").value)
        assert board.states()["Community solar"] is LedMode.FLASHING
        time.sleep(FLASH_S / 3)
    assert seen == {0, 1}


def test_reapplying_a_mode_leaves_the_led_alone(board):
    board.apply({"Home 2/solar": LedMode.SOLID})
    board.led("Home 2/solar").pin.clear_states()
    board.apply({"Home 2/solar": LedMode.SOLID})
    assert history(board, "Home 2/solar") == [True]


def test_apply_refuses_the_status_led_and_unknown_names(board):
    with pytest.raises(ValueError, match="StatusReporter"):
        board.apply({"status": LedMode.SOLID})
    with pytest.raises(ValueError, match="no LED named"):
        board.apply({"Home 9/grid": LedMode.SOLID})
    with pytest.raises(TypeError):
        board.apply({"Home 1/grid": "solid"})
    assert set(board.states().values()) == {LedMode.OFF}


def test_close_turns_everything_off_and_frees_the_pins():
    factory = mock_pin_factory()
    kit = KitBoard(pin_factory=factory, flash_on_s=FLASH_S, flash_off_s=FLASH_S)
    kit.apply(dict.fromkeys(INDICATOR_LEDS, LedMode.SOLID))
    pin = kit.led("Home 1/grid").pin
    kit.close()
    kit.close()
    assert pin.state is False
    assert set(kit.states().values()) == {LedMode.OFF}
    KitBoard(pin_factory=factory).close()  # the same pins can be taken again


def test_a_busy_pin_fails_the_whole_board_cleanly():
    factory = mock_pin_factory()
    first = KitBoard(pin_factory=factory)
    try:
        with pytest.raises(Exception, match="GPIO16|in use"):
            KitBoard(pin_factory=factory)
    finally:
        first.close()
    KitBoard(pin_factory=factory).close()
