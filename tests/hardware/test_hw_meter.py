"""Meters: averaging, integer energy integration, state of charge, the reading payload."""

from __future__ import annotations

import logging

import pytest

from hardware import meter as meter_module
from hardware.energy import PJ_PER_WH, EnergyAccount, StateOfCharge
from hardware.gpio import I2CUnavailable
from hardware.ina219 import INA219, MeasurementError
from hardware.meter import (
    INA219Meter,
    SimulatedMeter,
    make_meter,
    reading_payload,
    sensor_current_for_flow_ua,
)
from hardware.sim_ina219 import SimulatedINA219Bus

READING_KEYS = {
    "interval",
    "import_wh",
    "export_wh",
    "soc_wh",
    "bus_mv",
    "current_ua",
    "power_uw",
    "samples",
    "sensor",
}
SECOND_US = 1_000_000
HOUR_US = 3600 * SECOND_US


class FakeClock:
    def __init__(self) -> None:
        self.now_us = 0

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: int) -> None:
        self.now_us += seconds * SECOND_US


def kit_meter(role: str, capacity_wh: int = 0, energy_scale: int = 1, **kwargs):
    bus = SimulatedINA219Bus({0x40: 0.1})
    ina = INA219(bus, 0x40, 0.1, sleep=lambda s: None)
    clock = FakeClock()
    meter = INA219Meter(ina, role, capacity_wh, energy_scale, spacing_s=0, clock_us=clock, **kwargs)
    return bus, meter, clock


def assert_is_reading(payload: dict) -> None:
    assert set(payload) == READING_KEYS
    for key, value in payload.items():
        assert not isinstance(value, float | bool), key
        if key == "sensor":
            assert isinstance(value, str)
        elif not (key == "soc_wh" and value is None):
            assert isinstance(value, int), key


# -- integer bookkeeping --


def test_energy_account_carries_fractions_to_the_next_interval():
    account = EnergyAccount()
    reported = []
    for _ in range(5):
        account.add(600_000, HOUR_US)  # 0.6 W for an hour = 0.6 Wh
        reported.append(account.close())
    assert reported == [(0, 0), (1, 0), (0, 0), (1, 0), (1, 0)]
    assert sum(i for i, _ in reported) == 3  # 5 x 0.6 Wh, nothing lost


def test_energy_account_splits_import_and_export_and_scales():
    account = EnergyAccount(energy_scale=1000)
    account.add(2_000_000, HOUR_US // 2)  # 1 Wh imported, x1000
    account.add(-500_000, HOUR_US)  # 0.5 Wh exported, x1000
    assert account.close() == (1000, 500)
    assert PJ_PER_WH == 3_600_000_000_000_000
    with pytest.raises(ValueError):
        EnergyAccount(0)
    with pytest.raises(TypeError):
        EnergyAccount(1.5)  # type: ignore[arg-type]


def test_state_of_charge_is_clamped():
    soc = StateOfCharge(capacity_wh=100, initial_wh=50)
    assert soc.update(import_wh=80, export_wh=0) == 100
    assert soc.update(import_wh=0, export_wh=130) == 0
    assert soc.set(250) == 100


# -- the INA219 meter --


def test_sample_averages_ten_reads_it_does_not_sum_them():
    bus = SimulatedINA219Bus({0x40: 0.1})
    bus.set_load(0x40, current_ua=100_000, bus_mv=5_000)
    loads = iter(range(110_000, 200_000, 10_000))  # 100 mA, then 110 .. 190 mA
    waits = []

    def sleep(seconds: float) -> None:  # the load changes while the meter waits
        waits.append(seconds)
        bus.set_load(0x40, current_ua=next(loads), bus_mv=5_000)

    ina = INA219(bus, 0x40, 0.1, sleep=lambda s: None)
    meter = INA219Meter(ina, "consumer", sleep=sleep, clock_us=FakeClock())
    meter.sample()
    payload = meter.close_interval(0)
    assert waits == [0.1] * 9  # ten reads over about a second
    assert payload["current_ua"] == 145_000  # the mean of 100 .. 190 mA
    assert payload["bus_mv"] == 5_000
    assert payload["power_uw"] == 725_000
    assert payload["samples"] == 10


def test_consumer_imports_what_it_consumes():
    bus, meter, clock = kit_meter("consumer")
    bus.set_load(0x40, current_ua=200_000, bus_mv=5_000)  # 1 W
    for _ in range(60):
        clock.advance(60)
        meter.sample()
    payload = meter.close_interval(7)
    assert_is_reading(payload)
    assert payload == {
        "interval": 7,
        "import_wh": 1,
        "export_wh": 0,
        "soc_wh": None,
        "bus_mv": 5_000,
        "current_ua": 200_000,
        "power_uw": 1_000_000,
        "samples": 600,
        "sensor": "ina219@0x40",
    }


def test_energy_scale_turns_kit_milliwatt_hours_into_watt_hours():
    bus, meter, clock = kit_meter("consumer", energy_scale=1000)
    bus.set_load(0x40, current_ua=100_000, bus_mv=5_000)  # 0.5 W
    meter.sample()
    clock.advance(3600)
    meter.sample()
    assert meter.close_interval(0)["import_wh"] == 500


def test_generator_exports_what_it_produces():
    bus, meter, clock = kit_meter("generator", energy_scale=10)
    bus.set_load(0x40, current_ua=400_000, bus_mv=5_000)  # 2 W produced
    clock.advance(1800)
    meter.sample()
    payload = meter.close_interval(0)
    assert (payload["import_wh"], payload["export_wh"], payload["soc_wh"]) == (0, 10, None)


def test_battery_imports_charging_exports_discharging_and_tracks_charge():
    bus, meter, clock = kit_meter("storage", capacity_wh=15, energy_scale=10)
    bus.set_load(0x40, current_ua=200_000, bus_mv=5_000)  # charging at 1 W
    clock.advance(3600)
    meter.sample()
    first = meter.close_interval(0)
    assert (first["import_wh"], first["export_wh"], first["soc_wh"]) == (10, 0, 10)
    clock.advance(3600)
    meter.sample()
    second = meter.close_interval(1)
    assert (second["import_wh"], second["soc_wh"]) == (10, 15)  # clamped at capacity
    bus.set_load(0x40, current_ua=-400_000, bus_mv=5_000)  # discharging at 2 W
    clock.advance(3600)
    meter.sample()
    third = meter.close_interval(2)
    assert (third["import_wh"], third["export_wh"], third["soc_wh"]) == (0, 20, 0)
    assert third["current_ua"] == -400_000 and third["power_uw"] == -2_000_000


def test_latest_power_holds_up_to_the_close_and_the_next_interval_starts_there():
    bus, meter, clock = kit_meter("consumer")
    bus.set_load(0x40, current_ua=200_000, bus_mv=5_000)  # 1 W
    clock.advance(1800)
    meter.sample()  # 0.5 Wh so far
    clock.advance(1800)  # no sample, but the load held: 1 Wh at the close
    assert meter.close_interval(0)["import_wh"] == 1
    clock.advance(3600)
    meter.sample()
    assert meter.close_interval(1)["import_wh"] == 1


def test_interval_without_samples():
    _, meter, clock = kit_meter("consumer")
    clock.advance(60)
    payload = meter.close_interval(3)
    assert_is_reading(payload)
    assert (payload["samples"], payload["import_wh"], payload["bus_mv"]) == (0, 0, 0)


def test_failed_sample_is_dropped_and_the_next_one_covers_the_gap():
    bus, meter, clock = kit_meter("consumer")
    bus.set_load(0x40, current_ua=200_000, bus_mv=5_000)
    clock.advance(1800)
    bus.fail(0x40, times=1)  # the sample's first transaction fails
    with pytest.raises(MeasurementError, match="0x40"):
        meter.sample()
    clock.advance(1800)
    meter.sample()
    payload = meter.close_interval(0)
    assert payload["import_wh"] == 1
    assert payload["samples"] == 10


def test_overflowing_sensor_reports_an_error_not_energy():
    bus, meter, clock = kit_meter("consumer")
    bus.set_load(0x40, current_ua=5_000_000, bus_mv=5_000)  # beyond a 0.1 ohm shunt
    with pytest.raises(MeasurementError, match="saturated"):
        meter.sample()
    clock.advance(3600)
    assert meter.close_interval(0)["import_wh"] == 0


# -- the simulated meter and feeding simulations (the contract both meters share is in
# test_hw_meter_contract.py) --


def test_simulated_meter_reports_the_flows_it_is_told():
    home = SimulatedMeter("consumer")
    home.feed(4, import_wh=500, export_wh=0, interval_s=10)
    home.sample()
    payload = home.close_interval(4)
    assert_is_reading(payload)
    assert payload["import_wh"] == 500 and payload["sensor"] == "sim"
    assert payload["samples"] == 0
    assert home.close_interval(5)["import_wh"] == 0  # flows are per interval


def test_simulated_meter_keeps_each_feed_for_its_own_interval():
    home = SimulatedMeter("consumer")
    home.feed(5, 700, 0, interval_s=10)  # told k+1's flows before k closes
    home.feed(4, 300, 0, interval_s=10)
    assert home.close_interval(4)["import_wh"] == 300
    assert home.close_interval(5)["import_wh"] == 700
    home.feed(6, 100, 0, interval_s=10)
    assert home.close_interval(7)["import_wh"] == 0  # 6's flows are not 7's
    assert home.close_interval(6)["import_wh"] == 0  # and a closed-over feed is dropped


def test_simulated_storage_tracks_or_takes_its_charge():
    battery = SimulatedMeter("storage", capacity_wh=4000)
    battery.feed(0, 3000, 0, interval_s=10)
    assert battery.close_interval(0)["soc_wh"] == 3000
    battery.feed(1, 2000, 0, interval_s=10)
    assert battery.close_interval(1)["soc_wh"] == 4000
    battery.feed(2, 0, 1500, interval_s=10, soc_wh=2400)
    payload = battery.close_interval(2)
    assert (payload["export_wh"], payload["soc_wh"]) == (1500, 2400)
    with pytest.raises(ValueError):
        SimulatedMeter("battery")


def test_feeding_a_simulated_ina219_meter_reproduces_the_scenario_flows():
    _, meter, clock = kit_meter("consumer", energy_scale=100_000)
    meter.feed(0, 500, 0, interval_s=10)
    assert meter.ina219.bus.chip(0x40).current_ua == 360_000  # 1.8 W at 5 V
    for _ in range(10):
        clock.advance(1)
        meter.sample()
    assert meter.close_interval(0)["import_wh"] == 500

    _, solar, clock = kit_meter("generator", energy_scale=100_000)
    solar.feed(0, 0, 900, interval_s=10)
    assert solar.ina219.bus.chip(0x40).current_ua > 0  # producing: positive current
    clock.advance(10)
    solar.sample()
    assert solar.close_interval(0)["export_wh"] == 900


def test_a_meter_on_a_real_bus_measures_and_ignores_feeds():
    bus = SimulatedINA219Bus({0x40: 0.1})
    bus.set_load(0x40, current_ua=20_000, bus_mv=5_000)

    class RealBus:  # not a SimulatedINA219Bus: the meter can't tell it what to carry
        def read_i2c_block_data(self, *args):
            return bus.read_i2c_block_data(*args)

        def write_i2c_block_data(self, *args):
            bus.write_i2c_block_data(*args)

    real = INA219Meter(INA219(RealBus(), 0x40, sleep=lambda s: None), "consumer", spacing_s=0)
    real.feed(0, 1, 0, interval_s=10)
    assert bus.chip(0x40).current_ua == 20_000  # the true load is untouched
    real.sample()
    assert real.close_interval(0)["current_ua"] == 20_000
    with pytest.raises(ValueError):
        real.feed(1, -1, 0, interval_s=10)  # a bad feed is refused all the same
    assert sensor_current_for_flow_ua("storage", 0, 36, 3600, 1, 5_000) == -7_200_000


def test_reading_payload_refuses_floats_and_negative_amounts():
    good = dict(
        import_wh=1,
        export_wh=0,
        soc_wh=None,
        bus_mv=5000,
        current_ua=1,
        power_uw=1,
        samples=0,
        sensor="sim",
    )
    assert_is_reading(reading_payload(1, **good))
    with pytest.raises(TypeError):
        reading_payload(1, **{**good, "import_wh": 1.0})
    with pytest.raises(TypeError):
        reading_payload(1, **{**good, "samples": True})
    with pytest.raises(ValueError):
        reading_payload(1, **{**good, "export_wh": -1})


# -- make_meter --


def test_make_meter_without_a_sensor_is_simulated():
    meter = make_meter("storage", {"capacity_wh": 4000}, sim=False)
    assert isinstance(meter, SimulatedMeter)
    meter.feed(0, 5000, 0, interval_s=10)
    assert meter.close_interval(0)["soc_wh"] == 4000


def test_make_meter_with_a_sensor_in_simulation():
    config = {
        "sensor": {"address": 0x41, "shunt_ohms": 0.1, "max_expected_amps": 2.0},
        "energy_scale": 1000,
        "sample_spacing_s": 0,
    }
    meter = make_meter("consumer", config, sim=True)
    assert isinstance(meter, INA219Meter)
    assert isinstance(meter.ina219.bus, SimulatedINA219Bus)
    assert (meter.sensor, meter.energy_scale, meter.spacing_s) == ("ina219@0x41", 1000, 0)
    meter.ina219.bus.set_load(0x41, current_ua=50_000, bus_mv=5_000)
    meter.sample()
    assert meter.close_interval(0)["current_ua"] == 50_000


def test_make_meter_falls_back_to_simulated_chips_without_i2c(monkeypatch, caplog):
    def no_i2c(bus_number: int = 1):
        raise I2CUnavailable(f"I2C bus {bus_number} is not available")

    monkeypatch.setattr(meter_module, "open_i2c", no_i2c)
    monkeypatch.setattr("hardware.gpio._announced", set())
    config = {"sensor": {"address": 0x44}, "i2c_bus": 3}
    with caplog.at_level(logging.INFO, logger="picogrid.hardware"):
        first = make_meter("generator", config, sim=False)
        make_meter("generator", config, sim=False)
    assert isinstance(first.ina219.bus, SimulatedINA219Bus)
    lines = [r.message for r in caplog.records if "simulated INA219" in r.message]
    assert lines == ["I2C bus 3 is not available: meters use simulated INA219s"]
