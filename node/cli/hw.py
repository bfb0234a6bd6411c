"""`picogrid hw test` (the kit's wiring check) and `picogrid hw scan` (who answers on I2C).

Exit codes: 0 everything worked; 1 something failed (an LED could not be driven, a sensor did
not answer or gave an untrustworthy reading, no I2C bus, nothing found by the scan);
2 a usage or config-file mistake.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from hardware import gpio
from hardware.ina219 import INA219, MeasurementError
from hardware.ina219_registers import POWER_ON_CONFIG, from_bytes
from hardware.kit_config import KitConfig, load_kit_config
from hardware.leds import KitBoard
from hardware.sim_ina219 import SimulatedINA219Bus
from node.errors import UserError

SCAN_RANGE = range(0x40, 0x50)
# What the simulated sensors of `--sim` carry: (current uA, bus mV), one after another.
SIM_LOADS = ((120_000, 5_000), (250_000, 5_000), (-80_000, 5_000))


def register(subparsers: Any) -> None:
    """Add `picogrid hw test` and `picogrid hw scan` to the command line."""
    hw = subparsers.add_parser(
        "hw", help="check the kit's LEDs and INA219 sensors", description=__doc__
    )
    hw.set_defaults(func=lambda args: _usage(hw))
    sub = hw.add_subparsers(dest="hw_command", metavar="SUBCOMMAND")

    test = sub.add_parser(
        "test",
        help="light each LED in turn, then read every sensor",
        description="Light each LED in turn (name and BCM pin), then read every configured "
        "INA219 and print volts, amps and watts. Exits 1 if anything failed.",
    )
    test.add_argument("--sim", action="store_true", help="mock pins and simulated INA219s")
    test.add_argument("--config", type=Path, metavar="FILE", help="kit config (TOML)")
    test.add_argument(
        "--delay", type=float, default=0.5, metavar="SECONDS", help="time each LED stays lit"
    )
    test.set_defaults(func=run_test)

    scan = sub.add_parser(
        "scan",
        help="list I2C devices answering at 0x40-0x4F",
        description="List the I2C devices answering at 0x40-0x4F (INA219 addresses). "
        "Exits 1 if there is no I2C bus or nothing answers.",
    )
    scan.add_argument("--sim", action="store_true", help="scan the simulated INA219s")
    scan.add_argument("--config", type=Path, metavar="FILE", help="kit config (TOML)")
    scan.set_defaults(func=run_scan)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _load(path: Path | None) -> KitConfig:
    try:
        return load_kit_config(path)
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def _fixed(value: int, unit_per_whole: int, decimals: int = 3) -> str:
    """An integer in small units as a decimal of whole units, without floats."""
    step = unit_per_whole // 10**decimals
    quotient, remainder = divmod(abs(value), step)
    if 2 * remainder >= step:
        quotient += 1
    whole, fraction = divmod(quotient, 10**decimals)
    sign = "-" if value < 0 and quotient else ""
    return f"{sign}{whole}.{fraction:0{decimals}d}"


def _simulated_bus(config: KitConfig) -> SimulatedINA219Bus:
    bus = SimulatedINA219Bus({s.address: s.shunt_ohms for s in config.sensors})
    for index, sensor in enumerate(config.sensors):
        current_ua, bus_mv = SIM_LOADS[index % len(SIM_LOADS)]
        bus.set_load(sensor.address, current_ua=current_ua, bus_mv=bus_mv)
    return bus


def _test_leds(config: KitConfig, sim: bool, delay: float) -> int:
    """Light each LED in turn; the number of failures."""
    print(f"LEDs ({'mock pins' if sim else 'GPIO'}, {delay:g} s each):", flush=True)
    try:
        factory = gpio.mock_pin_factory() if sim else gpio.pin_factory()
        board = KitBoard(config.pin_map, pin_factory=factory)
    except Exception as exc:  # gpiozero, lgpio ("GPIO busy") and our own raise several kinds
        print(f"  FAILED: the LEDs can't be driven: {exc}", flush=True)
        return 1
    failures = 0
    with board:
        for name, pin in board.pin_map.items():
            print(f"  {name:<22} BCM {pin:>2}  ", end="", flush=True)
            try:
                led = board.led(name)
                led.on()
                time.sleep(delay)
                led.off()
            except Exception as exc:
                print(f"FAILED: {exc}", flush=True)
                failures += 1
            else:
                print("lit", flush=True)
    return failures


def _test_sensors(config: KitConfig, sim: bool) -> int:
    """Read every configured sensor; the number of failures."""
    bus: Any
    if sim:
        bus = _simulated_bus(config)
        print("Sensors (simulated INA219s):", flush=True)
    else:
        try:
            bus = gpio.open_i2c(config.i2c_bus)
        except gpio.I2CUnavailable as exc:
            print(f"Sensors: FAILED: {exc}", flush=True)
            return len(config.sensors) or 1
        print(f"Sensors (I2C bus {config.i2c_bus}):", flush=True)
    failures = 0
    try:
        for sensor in config.sensors:
            prefix = f"  {sensor.name:<12} {sensor.label}  "
            try:
                ina = INA219(bus, sensor.address, sensor.shunt_ohms, sensor.max_expected_amps)
                reading = ina.read()
            except MeasurementError as exc:
                print(f"{prefix}FAILED: {exc}", flush=True)
                failures += 1
                continue
            print(
                f"{prefix}{_fixed(reading.bus_mv, 1000):>7} V  "
                f"{_fixed(reading.current_ua, 1_000_000):>7} A  "
                f"{_fixed(reading.power_uw, 1_000_000):>7} W",
                flush=True,
            )
    finally:
        bus.close()
    return failures


def run_test(args: argparse.Namespace) -> int:
    """Walk through the kit's LEDs and sensors, one by one."""
    if args.delay < 0:
        raise UserError("--delay must not be negative")
    config = _load(args.config)
    where = "simulated (mock pins, simulated INA219s)" if args.sim else "this machine's hardware"
    print(f"PicoGrid hardware test: {where}", flush=True)
    led_failures = _test_leds(config, args.sim, args.delay)
    sensor_failures = _test_sensors(config, args.sim)
    if led_failures or sensor_failures:
        print(f"FAILED: {led_failures} LED problem(s), {sensor_failures} sensor problem(s)")
        return 1
    print(f"OK: {len(config.pin_map)} LEDs, {len(config.sensors)} sensors")
    return 0


def run_scan(args: argparse.Namespace) -> int:
    """List the INA219 sensors found on the I2C bus."""
    config = _load(args.config)
    bus: Any
    if args.sim:
        bus = _simulated_bus(config)
        print("Scanning the simulated I2C bus at 0x40-0x4F:")
    else:
        try:
            bus = gpio.open_i2c(config.i2c_bus)
        except gpio.I2CUnavailable as exc:
            print(f"picogrid hw scan: {exc}")
            print("(`picogrid hw scan --sim` lists the simulated sensors instead)")
            return 1
        print(f"Scanning I2C bus {config.i2c_bus} at 0x40-0x4F:")
    found = 0
    try:
        for address in SCAN_RANGE:
            try:
                value = from_bytes(bus.read_i2c_block_data(address, 0x00, 2))
            except OSError:
                continue
            found += 1
            note = " (the INA219 power-on default)" if value == POWER_ON_CONFIG else ""
            print(f"  {address:#04x}  answers; register 0x00 = {value:#06x}{note}")
    finally:
        bus.close()
    print(f"{found} device(s) found" if found else "nothing answers at 0x40-0x4F")
    return 0 if found else 1
