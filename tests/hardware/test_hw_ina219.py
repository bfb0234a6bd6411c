"""The INA219 driver against the register-level simulator (TI SBOS448)."""

from __future__ import annotations

import errno
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware import ina219_registers as reg
from hardware.ina219 import INA219, MeasurementError, calibration_value, choose_current_lsb_na
from hardware.sim_ina219 import SimulatedINA219Bus


def no_sleep(_seconds: float) -> None:
    pass


def make(
    address: int = 0x40, shunt_ohms: float = 0.1, **kwargs
) -> tuple[SimulatedINA219Bus, INA219]:
    bus = SimulatedINA219Bus({address: shunt_ohms})
    return bus, INA219(bus, address, shunt_ohms, sleep=no_sleep, **kwargs)


def config_writes(bus: SimulatedINA219Bus, address: int = 0x40) -> list[int]:
    return [value for register, value in bus.chip(address).writes if register == reg.CONFIG]


# -- the datasheet's arithmetic --


def test_calibration_worked_examples():
    # 0.1 ohm shunt with a 100 uA current LSB (SBOS448's programming example).
    assert calibration_value(current_lsb_na=100_000, shunt_micro_ohms=100_000) == 4096
    # 2 milliohm shunt with a 1 mA current LSB.
    assert calibration_value(current_lsb_na=1_000_000, shunt_micro_ohms=2_000) == 20480


def test_calibration_is_capped_and_bit0_is_void():
    assert calibration_value(current_lsb_na=1, shunt_micro_ohms=1_000) == 0xFFFE
    # trunc(0.04096 / (1 uA * 3 ohm)) = 13653, odd; the chip ignores bit 0.
    assert calibration_value(current_lsb_na=1_000, shunt_micro_ohms=3_000_000) == 13652
    with pytest.raises(ValueError):
        calibration_value(current_lsb_na=10**12, shunt_micro_ohms=10**6)


def test_current_lsb_is_round_and_between_the_datasheet_bounds():
    # SBOS448: 2 A expected -> minimum LSB 61.04 uA, maximum 488 uA; 100 uA is the round choice.
    assert choose_current_lsb_na(2_000_000_000) == 100_000
    for max_na in (3_200_000_000, 400_000_000, 15_000_000, 81_920_000_000):
        lsb = choose_current_lsb_na(max_na)
        assert max_na / 32767 <= lsb <= max_na / 4096


def test_datasheet_example_two_amps_on_a_tenth_ohm():
    bus, ina = make(max_expected_amps=2.0)
    assert (ina.current_lsb_na, ina.calibration) == (100_000, 4096)
    bus.set_load(0x40, current_ua=1_234_000, bus_mv=5_000)
    reading = ina.read()
    assert reading.current_ua == 1_234_000
    # Power LSB = 20 x 100 uA = 2 mW: register = 12340 x 1250 / 5000 = 3085 -> 6.170 W.
    assert reading.power_uw == 3085 * 2_000 == 6_170_000
    assert bus.chip(0x40).calibration == 4096


def test_power_on_configuration_word():
    assert reg.config_word(32, 8, reg.adc_field(12)[0], reg.MODE_CONTINUOUS) == 0x399F
    assert reg.config_word(16, 1, reg.adc_field(12, 128)[0], reg.MODE_TRIGGERED) == 0x07FB
    with pytest.raises(ValueError):
        reg.adc_field(10, 4)


# -- registers on the wire --


def test_registers_are_big_endian_and_bus_voltage_sits_in_bits_15_to_3():
    bus, ina = make()
    bus.set_load(0x40, current_ua=0, bus_mv=5_000)
    assert bus.chip(0x40).config == reg.POWER_ON_CONFIG
    assert bus.read_i2c_block_data(0x40, reg.CONFIG, 2) == [0x39, 0x9F]
    # 5 V = 1250 x 4 mV -> 1250 << 3 = 0x2710, with CNVR (bit 1) set.
    assert bus.read_i2c_block_data(0x40, reg.BUS_VOLTAGE, 2) == [0x27, 0x12]
    assert ina.bus_voltage_mv() == 5_000
    # The driver's configuration: 32 V, PGA /1 (auto-ranging starts narrow), 12-bit, continuous.
    assert bus.chip(0x40).config == 0x219F


def test_uncalibrated_chip_reads_zero_current():
    bus = SimulatedINA219Bus({0x40: 0.1})
    bus.set_load(0x40, current_ua=500_000, bus_mv=5_000)
    assert bus.read_i2c_block_data(0x40, reg.CURRENT, 2) == [0, 0]
    assert reg.signed(reg.from_bytes(bus.read_i2c_block_data(0x40, reg.SHUNT_VOLTAGE, 2))) == 5000


def test_negative_current_is_signed():
    bus, ina = make()
    bus.set_load(0x40, current_ua=-150_000, bus_mv=12_000)
    reading = ina.read()
    assert reading.shunt_uv == -15_000
    assert reading.current_ua == -150_000
    assert reading.power_uw == -1_800_000
    raw = reg.from_bytes(bus.read_i2c_block_data(0x40, reg.SHUNT_VOLTAGE, 2))
    assert raw == 0x10000 - 1500  # two's complement on the wire


def test_sixteen_volt_range_and_single_value_methods():
    bus, ina = make(bus_range_v=16, gain=8)
    bus.set_load(0x40, current_ua=300_000, bus_mv=12_000)
    assert ina.bus_voltage_mv() == 12_000
    assert ina.shunt_voltage_uv() == 30_000
    assert ina.current_ua() == 300_000
    assert ina.power_uw() == 3_600_000
    assert reg.bus_range_of(bus.chip(0x40).config) == 16


def test_triggered_mode_converts_on_each_reading():
    bus, ina = make(triggered=True, adc_samples=8)
    bus.set_load(0x40, current_ua=100_000, bus_mv=5_000)
    assert ina.read().current_ua == 100_000
    bus.set_load(0x40, current_ua=200_000, bus_mv=5_000)
    # Without a trigger the registers would still hold the old conversion.
    assert reg.signed(reg.from_bytes(bus.read_i2c_block_data(0x40, reg.CURRENT, 2))) == 1000
    assert ina.read().current_ua == 200_000


@given(
    current_ua=st.integers(min_value=-3_199_000, max_value=3_199_000),
    bus_mv=st.integers(min_value=0, max_value=26_000),
)
def test_any_load_within_range_reads_back_within_one_shunt_step(current_ua, bus_mv):
    bus, ina = make()
    bus.set_load(0x40, current_ua=current_ua, bus_mv=bus_mv)
    reading = ina.read()
    # The shunt ADC's step is 10 uV = 100 uA on 0.1 ohm; the bus ADC's step is 4 mV.
    assert abs(reading.current_ua - current_ua) < 100
    assert 0 <= bus_mv - reading.bus_mv < 4
    if reading.current_ua:
        assert (reading.current_ua > 0) == (current_ua > 0)
    if reading.power_uw:
        assert (reading.power_uw < 0) == (reading.current_ua < 0)
    expected_uw = abs(current_ua) * bus_mv // 1000
    # Power LSB 2 mW, plus one current step at this voltage, plus one bus step at this current.
    tolerance_uw = 2_000 + 100 * bus_mv // 1000 + 4 * abs(current_ua) // 1000 + 1
    assert abs(abs(reading.power_uw) - expected_uw) <= tolerance_uw


# -- overflow and gain --


def test_gain_rises_on_saturation_and_falls_again_with_the_signal():
    bus, ina = make()
    bus.set_load(0x40, current_ua=1_500_000, bus_mv=5_000)  # 150 mV: beyond /1 and /2
    assert ina.read().current_ua == 1_500_000
    assert ina.gain == 4
    assert [reg.gain_of(v) for v in config_writes(bus)] == [1, 2, 4]
    bus.set_load(0x40, current_ua=5_000, bus_mv=5_000)  # 0.5 mV: fits /1 again
    assert ina.read().current_ua == 5_000
    assert ina.gain == 1
    assert [reg.gain_of(v) for v in config_writes(bus)] == [1, 2, 4, 1]
    assert ina.read().current_ua == 5_000


def test_gain_is_lowered_only_with_margin():
    bus, ina = make()
    bus.set_load(0x40, current_ua=700_000, bus_mv=5_000)  # 70 mV -> /2
    ina.read()
    assert ina.gain == 2
    bus.set_load(0x40, current_ua=350_000, bus_mv=5_000)  # 35 mV: over 3/4 of /1's 40 mV
    ina.read()
    assert ina.gain == 2
    bus.set_load(0x40, current_ua=250_000, bus_mv=5_000)  # 25 mV: under 30 mV
    ina.read()
    assert ina.gain == 1


def test_saturation_at_the_widest_range_raises():
    bus, ina = make()
    bus.set_load(0x40, current_ua=4_000_000, bus_mv=5_000)  # 400 mV > 320 mV
    with pytest.raises(MeasurementError, match=r"0x40.*saturated"):
        ina.read()
    assert ina.gain == 8


def test_fixed_gain_does_not_rise_and_raises():
    bus, ina = make(gain=1)
    bus.set_load(0x40, current_ua=500_000, bus_mv=5_000)  # 50 mV > 40 mV
    with pytest.raises(MeasurementError, match="saturated"):
        ina.read()
    assert config_writes(bus) == [ina.config]


def test_injected_saturation_is_never_a_silent_number():
    bus, ina = make()
    bus.set_load(0x40, current_ua=10_000, bus_mv=5_000)
    bus.saturate(0x40)
    with pytest.raises(MeasurementError, match="saturated"):
        ina.read()
    bus.saturate(0x40, on=False)
    assert ina.read().current_ua == 10_000


def test_math_overflow_raises():
    bus, ina = make(max_expected_amps=0.2)  # 10 uA LSB, calibration 40960
    assert ina.calibration == 40960
    bus.set_load(0x40, current_ua=350_000, bus_mv=5_000)  # 35 mV fits /1, current doesn't fit
    with pytest.raises(MeasurementError, match=r"0x40.*overflow"):
        ina.read()
    # The register itself has wrapped: a driver ignoring OVF would report a wrong number.
    raw = reg.signed(reg.from_bytes(bus.read_i2c_block_data(0x40, reg.CURRENT, 2)))
    assert raw < 0
    assert bus.read_i2c_block_data(0x40, reg.BUS_VOLTAGE, 2)[1] & reg.BUS_OVF


# -- resets and I2C faults --


def test_reset_chip_is_noticed_and_recalibrated(caplog):
    bus, ina = make()
    bus.set_load(0x40, current_ua=1_500_000, bus_mv=5_000)
    ina.read()
    bus.reset(0x40)  # brown-out under a sharp load
    assert (bus.chip(0x40).calibration, bus.chip(0x40).config) == (0, reg.POWER_ON_CONFIG)
    with caplog.at_level(logging.WARNING, logger="picogrid.hardware"):
        reading = ina.read()
    assert reading.current_ua == 1_500_000  # not the 0 an uncalibrated chip gives
    assert ina.recalibrations == 1
    assert bus.chip(0x40).calibration == 4096
    assert reg.gain_of(bus.chip(0x40).config) == ina.gain == 4
    assert "ina219@0x40 lost its calibration" in caplog.text


def test_reset_by_the_reset_bit_is_recovered_too():
    bus, ina = make()
    bus.set_load(0x40, current_ua=20_000, bus_mv=3_300)
    ina.read()
    bus.write_i2c_block_data(0x40, reg.CONFIG, reg.to_bytes(reg.RESET_BIT))
    assert ina.read().current_ua == 20_000
    assert ina.recalibrations == 1


def test_i2c_error_names_the_address_and_passes():
    bus, ina = make(address=0x44)
    bus.set_load(0x44, current_ua=42_000, bus_mv=5_000)
    bus.fail(0x44, OSError(errno.EIO, "Input/output error"), times=1)
    with pytest.raises(MeasurementError, match="0x44") as info:
        ina.read()
    assert isinstance(info.value.__cause__, OSError)
    assert ina.read().current_ua == 42_000


def test_chip_that_stops_answering_mid_reading():
    bus, ina = make()
    bus.set_load(0x40, current_ua=42_000, bus_mv=5_000)
    ina.read()
    bus.fail(0x40)
    with pytest.raises(MeasurementError, match="0x40.*Remote I/O"):
        ina.read()
    bus.heal(0x40)
    assert ina.read().current_ua == 42_000


def test_absent_chip():
    bus = SimulatedINA219Bus({0x40: 0.1})
    ina = INA219(bus, 0x45, sleep=no_sleep)
    with pytest.raises(MeasurementError, match="ina219@0x45"):
        ina.read()


def test_bad_construction():
    bus = SimulatedINA219Bus()
    with pytest.raises(ValueError, match="0x40-0x4F"):
        INA219(bus, 0x30)
    with pytest.raises(ValueError, match="3.2 A"):
        INA219(bus, 0x40, 0.1, max_expected_amps=5.0)
    with pytest.raises(ValueError, match="gain"):
        INA219(bus, 0x40, gain=3)
    with pytest.raises(ValueError, match="positive"):
        INA219(bus, 0x40, shunt_ohms=0)
