"""Where the LEDs and sensors really are: GPIO pin factory and I2C bus, or their simulations.

On a Raspberry Pi, gpiozero's default pin factory is used (lgpio on a Pi 5 / Bookworm, which
needs gpiozero >= 2.0.1.post3). Anywhere else the LEDs run on gpiozero's `MockFactory`, and one
log line on the "picogrid.hardware" logger says so. Likewise `open_i2c` opens /dev/i2c-N or
raises `I2CUnavailable` with what to do; the caller then uses the simulated INA219s and calls
`announce_simulated_i2c` to say so, once.
"""

from __future__ import annotations

import logging
import os
import re
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin

if TYPE_CHECKING:
    import smbus2
    from gpiozero.pins import Factory

log = logging.getLogger("picogrid.hardware")

MODEL_FILES = (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model"))
MIN_GPIOZERO = (2, 0, 1, 3)  # 2.0.1.post3: the first release that drives a Pi 5 through lgpio

_shared_mock: MockFactory | None = None
_announced: set[str] = set()


class GpioUnavailable(RuntimeError):
    """The Pi's GPIO can't be used (old gpiozero, no pin library, pins busy)."""


class I2CUnavailable(RuntimeError):
    """No usable I2C bus here; the message says how to enable it."""


def raspberry_pi_model(model_files: tuple[Path, ...] | None = None) -> str | None:
    """The board's model string if this is a Raspberry Pi, else None."""
    for path in MODEL_FILES if model_files is None else model_files:
        try:
            model = path.read_bytes().decode("ascii", "replace").strip("\x00 \n")
        except OSError:
            continue
        if "Raspberry Pi" in model:
            return model
    return None


def _announce(key: str, message: str) -> None:
    if key not in _announced:
        _announced.add(key)
        log.info(message)


def gpiozero_version_ok(version: str) -> bool:
    """Whether a gpiozero version string is at least 2.0.1.post3."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?(?:\.post(\d+))?", version)
    if not match:
        return False
    return tuple(int(part or 0) for part in match.groups()) >= MIN_GPIOZERO


def mock_pin_factory() -> MockFactory:
    """A fresh mock pin factory whose pins record their state history (`pin.states`)."""
    return MockFactory(pin_class=MockPin)


def pin_factory() -> Factory:
    """The pin factory for this machine (see the module's docstring)."""
    global _shared_mock
    if os.environ.get("GPIOZERO_PIN_FACTORY"):  # the user chose; gpiozero honours it
        Device.ensure_pin_factory()
        return Device.pin_factory
    model = raspberry_pi_model()
    if model is None:
        if _shared_mock is None:
            _shared_mock = mock_pin_factory()
        _announce("gpio", "not a Raspberry Pi: LEDs are simulated (gpiozero MockFactory)")
        return _shared_mock
    version = metadata.version("gpiozero")
    if not gpiozero_version_ok(version):
        raise GpioUnavailable(
            f"gpiozero {version} is too old for this {model}: install gpiozero >= 2.0.1.post3"
        )
    try:
        Device.ensure_pin_factory()
    except Exception as exc:  # gpiozero raises several kinds here
        raise GpioUnavailable(f"no GPIO pin library works on this {model}: {exc}") from exc
    return Device.pin_factory


def i2c_device_path(bus_number: int) -> Path:
    return Path(f"/dev/i2c-{bus_number}")


def open_i2c(bus_number: int = 1) -> smbus2.SMBus:
    """The I2C bus /dev/i2c-N as an `smbus2.SMBus`, or `I2CUnavailable` saying what to do."""
    import smbus2

    path = i2c_device_path(bus_number)
    if not path.exists():
        raise I2CUnavailable(
            f"I2C bus {bus_number} is not available ({path} is missing); on a Raspberry Pi "
            "enable it with `sudo raspi-config` (Interface Options > I2C) and reboot"
        )
    try:
        return smbus2.SMBus(bus_number)
    except OSError as exc:
        raise I2CUnavailable(f"cannot open {path}: {exc}; is your user in the i2c group?") from exc


def announce_simulated_i2c(reason: str) -> None:
    """Say once that meters use simulated INA219s, and why."""
    _announce("i2c", f"{reason}: meters use simulated INA219s")
