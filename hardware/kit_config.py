"""The kit's hardware config file (TOML), as `picogrid hw` reads it.

    i2c_bus = 1

    [leds]                      # only the LEDs that differ from the kit's pins
    "Home 1/grid" = 16
    status = 17

    [[sensors]]
    name = "Home 1"
    address = 0x40
    shunt_ohms = 0.1
    max_expected_amps = 2.0     # optional: defaults to the shunt's full range (0.32 V / R)

Without [[sensors]] the kit's three INA219s at 0x40, 0x41 and 0x44 are assumed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardware.leds import pin_map_from_config


@dataclass(frozen=True, slots=True)
class SensorConfig:
    name: str
    address: int
    shunt_ohms: float = 0.1
    max_expected_amps: float | None = None

    @property
    def label(self) -> str:
        return f"ina219@{self.address:#04x}"


DEFAULT_SENSORS = (
    SensorConfig("sensor 1", 0x40),
    SensorConfig("sensor 2", 0x41),
    SensorConfig("sensor 3", 0x44),
)


@dataclass(frozen=True, slots=True)
class KitConfig:
    pin_map: dict[str, int] = field(default_factory=lambda: pin_map_from_config(None))
    sensors: tuple[SensorConfig, ...] = DEFAULT_SENSORS
    i2c_bus: int = 1


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, not {value!r}")
    if value <= 0:
        raise ValueError(f"{what} must be positive, not {value!r}")
    return float(value)


def _sensor(entry: Any, index: int) -> SensorConfig:
    where = f"[[sensors]] entry {index + 1}"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be a table")
    unknown = set(entry) - {"name", "address", "shunt_ohms", "max_expected_amps"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    address = entry.get("address")
    if isinstance(address, str):
        try:
            address = int(address, 0)
        except ValueError:
            raise ValueError(f"{where}: address {entry['address']!r} is not a number") from None
    if isinstance(address, bool) or not isinstance(address, int):
        raise ValueError(f"{where} needs an address (0x40-0x4F)")
    if not 0x40 <= address <= 0x4F:
        raise ValueError(f"{where}: an INA219 answers at 0x40-0x4F, not {address:#04x}")
    max_amps = entry.get("max_expected_amps")
    return SensorConfig(
        name=str(entry.get("name", f"sensor {index + 1}")),
        address=address,
        shunt_ohms=_number(entry.get("shunt_ohms", 0.1), f"{where} shunt_ohms"),
        max_expected_amps=None
        if max_amps is None
        else _number(max_amps, f"{where} max_expected_amps"),
    )


def parse_kit_config(data: Mapping[str, Any]) -> KitConfig:
    """A checked `KitConfig` from a parsed TOML document; ValueError says what is wrong."""
    leds = data.get("leds")
    if leds is not None and not isinstance(leds, Mapping):
        raise ValueError("[leds] must be a table of LED name = BCM pin")
    pin_map = pin_map_from_config(leds)
    raw_sensors = data.get("sensors")
    if raw_sensors is None:
        sensors = DEFAULT_SENSORS
    elif isinstance(raw_sensors, list):
        sensors = tuple(_sensor(entry, i) for i, entry in enumerate(raw_sensors))
    else:
        raise ValueError("sensors must be an array of tables ([[sensors]])")
    addresses = [sensor.address for sensor in sensors]
    for address in addresses:
        if addresses.count(address) > 1:
            raise ValueError(f"two [[sensors]] at address {address:#04x}")
    i2c_bus = data.get("i2c_bus", 1)
    if isinstance(i2c_bus, bool) or not isinstance(i2c_bus, int) or i2c_bus < 0:
        raise ValueError(f"i2c_bus must be a bus number (usually 1), not {i2c_bus!r}")
    return KitConfig(pin_map=pin_map, sensors=sensors, i2c_bus=i2c_bus)


def load_kit_config(path: Path | None) -> KitConfig:
    """The config file's settings (the kit's defaults without a file). Raises OSError for an
    unreadable file and ValueError (with the file name) for bad content."""
    if path is None:
        return KitConfig()
    with open(path, "rb") as handle:
        try:
            data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return parse_kit_config(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
