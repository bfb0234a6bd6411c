"""`picogrid hw test` and `picogrid hw scan`, as separate processes and in-process, and the
config file they read."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from hardware import gpio
from hardware.kit_config import DEFAULT_SENSORS, load_kit_config, parse_kit_config
from hardware.leds import DEFAULT_PIN_MAP
from node.cli import hw
from node.errors import UserError

PICOGRID = Path(sys.executable).with_name("picogrid")


def picogrid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PICOGRID), *args], capture_output=True, text=True, timeout=60, check=False
    )


def run_hw(argv: list[str]) -> int:
    """`picogrid hw ...` in this process, with only the hw sub-command registered (as
    node.cli does it: a UserError is exit code 2)."""
    parser = argparse.ArgumentParser(prog="picogrid")
    hw.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"picogrid: error: {exc}", file=sys.stderr)
        return 2


@pytest.fixture
def no_pi_no_i2c(monkeypatch, tmp_path):
    """This machine as a PC: no device-tree model, no /dev/i2c-N."""
    monkeypatch.setattr(gpio, "MODEL_FILES", (tmp_path / "no-model",))
    monkeypatch.setattr(gpio, "i2c_device_path", lambda n: tmp_path / f"i2c-{n}")
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)


# -- as the user runs them --


def test_hw_test_sim_lights_every_led_and_reads_every_sensor():
    result = picogrid("hw", "test", "--sim", "--delay", "0")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name, pin in DEFAULT_PIN_MAP.items():
        assert f"{name:<22} BCM {pin:>2}  lit" in out
    assert "sensor 1     ina219@0x40    5.000 V    0.120 A    0.600 W" in out
    assert "ina219@0x41    5.000 V    0.250 A    1.250 W" in out
    assert "ina219@0x44    5.000 V   -0.080 A   -0.400 W" in out
    assert out.rstrip().endswith("OK: 14 LEDs, 3 sensors")


def test_hw_test_sim_with_a_config_file(tmp_path):
    config = tmp_path / "kit.toml"
    config.write_text(
        'i2c_bus = 1\n[leds]\nstatus = 5\n"Home 1/grid" = 6\n'
        '[[sensors]]\nname = "Home 1"\naddress = 0x45\nshunt_ohms = 0.1\n'
        "max_expected_amps = 2.0\n"
    )
    result = picogrid("hw", "test", "--sim", "--delay", "0", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "status                 BCM  5  lit" in result.stdout
    assert "Home 1/grid            BCM  6  lit" in result.stdout
    assert "Home 1       ina219@0x45    5.000 V    0.120 A" in result.stdout
    assert "0x40" not in result.stdout


def test_hw_scan_sim_lists_the_simulated_chips():
    result = picogrid("hw", "scan", "--sim")
    assert result.returncode == 0, result.stderr
    lines = [line.split()[0] for line in result.stdout.splitlines() if "answers" in line]
    assert lines == ["0x40", "0x41", "0x44"]
    assert "3 device(s) found" in result.stdout


def test_a_bad_config_file_is_a_user_error(tmp_path):
    config = tmp_path / "kit.toml"
    config.write_text('[leds]\n"Home 4/grid" = 5\n')
    result = picogrid("hw", "test", "--sim", "--delay", "0", "--config", str(config))
    assert result.returncode == 2
    assert "kit.toml: unknown LED 'Home 4/grid'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[leds]\nstatus = 16\n", "one pin to several LEDs"),
        ("[[sensors]]\naddress = 0x30\n", "0x40-0x4F"),
        ("[leds\n", "not valid TOML"),
    ],
)
def test_config_file_mistakes_are_named(tmp_path, capsys, content, message):
    config = tmp_path / "kit.toml"
    config.write_text(content)
    assert run_hw(["hw", "test", "--sim", "--delay", "0", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and "kit.toml" in err


def test_a_missing_config_file_is_a_user_error(tmp_path):
    result = picogrid("hw", "scan", "--sim", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr


# -- failures, in-process --


def test_a_failing_sensor_is_reported_by_address_and_the_test_goes_on(monkeypatch, capsys):
    build = hw._simulated_bus

    def with_a_dead_chip(config):
        bus = build(config)
        bus.fail(0x41)
        return bus

    monkeypatch.setattr(hw, "_simulated_bus", with_a_dead_chip)
    assert run_hw(["hw", "test", "--sim", "--delay", "0"]) == 1
    out = capsys.readouterr().out
    assert "ina219@0x41  FAILED: ina219@0x41: I2C" in out
    assert "ina219@0x44    5.000 V" in out  # read after the failure
    assert "FAILED: 0 LED problem(s), 1 sensor problem(s)" in out


def test_an_overloaded_sensor_fails_the_test(monkeypatch, capsys):
    build = hw._simulated_bus

    def overloaded(config):
        bus = build(config)
        bus.set_load(0x40, current_ua=4_000_000, bus_mv=5_000)
        return bus

    monkeypatch.setattr(hw, "_simulated_bus", overloaded)
    assert run_hw(["hw", "test", "--sim", "--delay", "0"]) == 1
    assert "ina219@0x40  FAILED: ina219@0x40: shunt voltage saturated" in capsys.readouterr().out


def test_hw_test_off_a_pi_uses_mock_leds_and_fails_without_i2c(no_pi_no_i2c, capsys):
    assert run_hw(["hw", "test", "--delay", "0"]) == 1
    out = capsys.readouterr().out
    assert "Community solar        BCM 18  lit" in out
    assert "Sensors: FAILED: I2C bus 1 is not available" in out
    assert "raspi-config" in out


def test_hw_scan_without_i2c_says_so(no_pi_no_i2c, capsys):
    assert run_hw(["hw", "scan"]) == 1
    out = capsys.readouterr().out
    assert "I2C bus 1 is not available" in out and "--sim" in out


def test_hw_scan_that_finds_nothing_fails(monkeypatch, capsys, tmp_path):
    config = tmp_path / "kit.toml"
    config.write_text("sensors = []\n")
    assert run_hw(["hw", "scan", "--sim", "--config", str(config)]) == 1
    assert "nothing answers at 0x40-0x4F" in capsys.readouterr().out


def test_usage_mistakes(capsys):
    assert run_hw(["hw"]) == 2
    assert run_hw(["hw", "test", "--sim", "--delay", "-1"]) == 2
    assert "--delay must not be negative" in capsys.readouterr().err


def test_fixed_point_display_without_floats():
    assert hw._fixed(5_004, 1000) == "5.004"
    assert hw._fixed(-80_000, 1_000_000) == "-0.080"
    assert hw._fixed(1_249_500, 1_000_000) == "1.250"
    assert hw._fixed(-400, 1_000_000) == "0.000"


# -- the config file --


def test_config_defaults_and_parsing(tmp_path):
    defaults = load_kit_config(None)
    assert defaults.pin_map == DEFAULT_PIN_MAP
    assert (
        [s.address for s in defaults.sensors]
        == [0x40, 0x41, 0x44]
        == [s.address for s in DEFAULT_SENSORS]
    )
    assert defaults.i2c_bus == 1
    config = parse_kit_config(
        {
            "i2c_bus": 0,
            "sensors": [{"address": "0x4f", "shunt_ohms": 0.01}, {"address": 0x40}],
        }
    )
    assert [(s.name, s.label, s.shunt_ohms) for s in config.sensors] == [
        ("sensor 1", "ina219@0x4f", 0.01),
        ("sensor 2", "ina219@0x40", 0.1),
    ]
    assert config.i2c_bus == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"leds": [1, 2]}, r"\[leds\] must be a table"),
        ({"sensors": {"address": 0x40}}, "array of tables"),
        ({"sensors": [{"address": 0x40}, {"address": 0x40}]}, "two .* at address 0x40"),
        ({"sensors": [{"address": 0x40, "shunt": 0.1}]}, "unknown key"),
        ({"sensors": [{"name": "x"}]}, "needs an address"),
        ({"sensors": [{"address": "forty"}]}, "not a number"),
        ({"sensors": [{"address": 0x40, "shunt_ohms": -1}]}, "positive"),
        ({"i2c_bus": "one"}, "i2c_bus"),
    ],
)
def test_config_mistakes(data, message):
    with pytest.raises(ValueError, match=message):
        parse_kit_config(data)
