"""The kit's 13-LED board: three LEDs per home, one per battery and solar system, one status.

    >>> board = KitBoard()                      # the kit's BCM pins; mock pins off a Pi
    >>> board.apply({"Home 1/grid": LedMode.SOLID, "Home battery": LedMode.FLASHING})
    >>> board.states()["Home battery"]
    <LedMode.FLASHING: 'flashing'>

The board keeps each LED's logical state itself: while an LED blinks, gpiozero's `value`
toggles, so it can't say whether the LED is flashing. Applying the mode an LED already has
leaves it alone (a flashing LED keeps its rhythm from one interval to the next). The status LED
belongs to `hardware.status.StatusReporter` (`board.status_led`), not to `apply`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gpiozero import LED

from hardware import gpio

if TYPE_CHECKING:
    from gpiozero.pins import Factory


class LedMode(enum.Enum):
    OFF = "off"
    SOLID = "solid"
    FLASHING = "flashing"


HOMES = ("Home 1", "Home 2", "Home 3")
HOME_KINDS = ("grid", "battery", "solar")  # red, orange, green
STORAGE_LEDS = ("Home battery", "Neighbourhood battery")
GENERATOR_LEDS = ("Home solar", "Community solar")
STATUS_LED = "status"


def home_led(home: str, kind: str) -> str:
    """The name of a home's LED, e.g. home_led("Home 1", "grid") == "Home 1/grid"."""
    return f"{home}/{kind}"


# The kit's wiring (BCM numbers), in the order `picogrid hw test` lights them.
DEFAULT_PIN_MAP: dict[str, int] = {
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
    STATUS_LED: 17,
}
INDICATOR_LEDS = tuple(name for name in DEFAULT_PIN_MAP if name != STATUS_LED)

# Pins an LED must not take: the HAT ID EEPROM and the I2C bus the INA219s share.
RESERVED_PINS = {
    0: "the HAT ID EEPROM (ID_SD)",
    1: "the HAT ID EEPROM (ID_SC)",
    2: "I2C SDA (the INA219 sensors)",
    3: "I2C SCL (the INA219 sensors)",
}


def pin_map_from_config(table: Mapping[str, Any] | None) -> dict[str, int]:
    """The kit's pin map with a `[leds]` TOML table's changes (LED name -> BCM pin), checked.
    Raises ValueError naming the problem: unknown LED, bad or reserved pin, a pin used twice."""
    pins = dict(DEFAULT_PIN_MAP)
    for name, pin in (table or {}).items():
        if name not in DEFAULT_PIN_MAP:
            known = ", ".join(f'"{n}"' for n in DEFAULT_PIN_MAP)
            raise ValueError(f"unknown LED {name!r} in [leds]; the kit's LEDs are {known}")
        if isinstance(pin, bool) or not isinstance(pin, int):
            raise ValueError(f"[leds] {name!r} must be a BCM pin number, not {pin!r}")
        if pin in RESERVED_PINS:
            raise ValueError(f"[leds] {name!r}: BCM {pin} is {RESERVED_PINS[pin]}")
        if not 0 <= pin <= 27:
            raise ValueError(f"[leds] {name!r}: BCM {pin} is not a GPIO pin (4-27)")
        pins[name] = pin
    by_pin: dict[int, list[str]] = {}
    for name, pin in pins.items():
        by_pin.setdefault(pin, []).append(name)
    clashes = [f"BCM {pin}: {', '.join(names)}" for pin, names in by_pin.items() if len(names) > 1]
    if clashes:
        raise ValueError("[leds] gives one pin to several LEDs: " + "; ".join(clashes))
    return pins


class KitBoard:
    """The gpiozero LEDs of the kit. `pin_map` changes the kit's pins (see
    `pin_map_from_config`); `pin_factory` defaults to `hardware.gpio.pin_factory()`."""

    def __init__(
        self,
        pin_map: Mapping[str, int] | None = None,
        pin_factory: Factory | None = None,
        *,
        flash_on_s: float = 0.5,
        flash_off_s: float = 0.5,
    ) -> None:
        self._pins = pin_map_from_config(pin_map)
        factory = pin_factory if pin_factory is not None else gpio.pin_factory()
        self.flash_on_s, self.flash_off_s = flash_on_s, flash_off_s
        self._leds: dict[str, LED] = {}
        try:
            for name, pin in self._pins.items():
                self._leds[name] = LED(pin, pin_factory=factory)
        except Exception:
            self.close()
            raise
        self._modes = dict.fromkeys(INDICATOR_LEDS, LedMode.OFF)

    def __enter__(self) -> KitBoard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pin_map(self) -> dict[str, int]:
        return dict(self._pins)

    @property
    def status_led(self) -> LED:
        return self.led(STATUS_LED)

    def led(self, name: str) -> LED:
        """The gpiozero LED of that name (for the wiring test and the status reporter)."""
        try:
            return self._leds[name]
        except KeyError:
            raise KeyError(f"no LED named {name!r} on this board") from None

    def apply(self, states: Mapping[str, LedMode]) -> None:
        """Set the named LEDs to their modes; LEDs not named keep theirs."""
        for name, mode in states.items():
            if name == STATUS_LED:
                raise ValueError("the status LED is driven by StatusReporter, not apply()")
            if name not in self._modes:
                raise ValueError(f"no LED named {name!r} on this board")
            if not isinstance(mode, LedMode):
                raise TypeError(f"{name!r}: {mode!r} is not a LedMode")
        for name, mode in states.items():
            if self._modes[name] is mode:
                continue
            led = self._leds[name]
            if mode is LedMode.OFF:
                led.off()
            elif mode is LedMode.SOLID:
                led.on()
            else:
                led.blink(on_time=self.flash_on_s, off_time=self.flash_off_s, background=True)
            self._modes[name] = mode

    def states(self) -> dict[str, LedMode]:
        """Each indicator LED's logical state (what `apply` last set)."""
        return dict(self._modes)

    def close(self) -> None:
        """Turn everything off and release the pins (safe to call twice)."""
        for led in self._leds.values():
            led.off()
            led.close()
        self._leds.clear()
        self._modes = dict.fromkeys(INDICATOR_LEDS, LedMode.OFF)
