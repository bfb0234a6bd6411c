"""Choosing real or simulated GPIO and I2C."""

from __future__ import annotations

import logging

import pytest
from gpiozero.pins.mock import MockFactory

from hardware import gpio


@pytest.fixture
def fresh_gpio(monkeypatch):
    monkeypatch.setattr(gpio, "_announced", set())
    monkeypatch.setattr(gpio, "_shared_mock", None)
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)


def test_raspberry_pi_is_recognised_by_its_device_tree_model(tmp_path):
    pi = tmp_path / "model-pi"
    pi.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    other = tmp_path / "model-other"
    other.write_bytes(b"Pine64 RockPro64\x00")
    missing = tmp_path / "missing"
    assert gpio.raspberry_pi_model((missing, pi)) == "Raspberry Pi 5 Model B Rev 1.0"
    assert gpio.raspberry_pi_model((other,)) is None
    assert gpio.raspberry_pi_model((missing,)) is None


def test_gpiozero_version_requirement():
    assert gpio.gpiozero_version_ok("2.0.1.post3")
    assert gpio.gpiozero_version_ok("2.0.2")
    assert gpio.gpiozero_version_ok("2.1")
    assert not gpio.gpiozero_version_ok("2.0.1")
    assert not gpio.gpiozero_version_ok("1.6.2")
    assert not gpio.gpiozero_version_ok("unknown")


def test_off_a_pi_leds_are_mocked_with_one_log_line(fresh_gpio, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(gpio, "MODEL_FILES", (tmp_path / "no-model",))
    with caplog.at_level(logging.INFO, logger="picogrid.hardware"):
        first = gpio.pin_factory()
        second = gpio.pin_factory()
    assert isinstance(first, MockFactory)
    assert second is first
    notes = [r for r in caplog.records if r.name == "picogrid.hardware"]
    assert [r.getMessage() for r in notes] == [
        "not a Raspberry Pi: LEDs are simulated (gpiozero MockFactory)"
    ]


def test_on_a_pi_an_old_gpiozero_is_refused(fresh_gpio, monkeypatch, tmp_path):
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    monkeypatch.setattr(gpio, "MODEL_FILES", (model,))
    monkeypatch.setattr(gpio.metadata, "version", lambda name: "1.6.2")
    with pytest.raises(gpio.GpioUnavailable, match=r"2\.0\.1\.post3"):
        gpio.pin_factory()


def test_missing_i2c_device_says_how_to_enable_it(monkeypatch, tmp_path):
    monkeypatch.setattr(gpio, "i2c_device_path", lambda n: tmp_path / f"i2c-{n}")
    with pytest.raises(gpio.I2CUnavailable, match="raspi-config") as info:
        gpio.open_i2c(1)
    assert "i2c-1" in str(info.value)


def test_unopenable_i2c_device_is_reported(monkeypatch, tmp_path):
    device = tmp_path / "i2c-1"
    device.write_text("")  # exists, but is no I2C adapter
    monkeypatch.setattr(gpio, "i2c_device_path", lambda n: device)
    monkeypatch.setattr("smbus2.SMBus", _refuse)
    with pytest.raises(gpio.I2CUnavailable, match="i2c group"):
        gpio.open_i2c(1)


def _refuse(bus_number: int):
    raise PermissionError(13, "Permission denied")
