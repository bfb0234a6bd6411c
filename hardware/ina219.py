"""Driver for TI's INA219 current, voltage and power monitor (datasheet SBOS448) over I2C.

    >>> ina = INA219(smbus2.SMBus(1), address=0x40, shunt_ohms=0.1, max_expected_amps=2.0)
    >>> ina.read()
    Measurement(bus_mv=5004, shunt_uv=12030, current_ua=120300, power_uw=600000)

All results are integers in milli- or micro-units. What the common Python library gets wrong,
this driver does differently:

- An overflow is an error, never a number: a saturated shunt reading (at the top of the PGA's
  range) or the chip's math overflow flag (OVF) raises `MeasurementError`.
- PGA auto-ranging goes both ways: on saturation the range is widened (/1 -> /2 -> /4 -> /8) and
  the reading retaken; when the signal falls below 3/4 of a narrower range, the next reading
  uses that narrower range again, for its better resolution.
- A chip that reset itself (a brown-out under a sharp load puts the calibration register back to
  0, so current and power would read 0) is noticed on every reading and re-calibrated.
- I2C failures (`OSError` from smbus2) become `MeasurementError` naming the chip's address.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hardware import ina219_registers as reg

log = logging.getLogger("picogrid.hardware")

# 0.04096 / (current_lsb * R_shunt) with the LSB in nA and the shunt in micro-ohms.
_CAL_NUMERATOR = 40_960_000_000_000
# The current LSB in uA that a calibration value really gives: this / (cal * shunt_uohm).
_LSB_UA_NUMERATOR = 40_960_000_000
# The widest shunt range (PGA /8) in microvolts.
_MAX_SHUNT_UV = 320_000
# Hysteresis for narrowing the range: the signal must be under 3/4 of the narrower full scale.
_NARROW_NUM, _NARROW_DEN = 3, 4


class MeasurementError(Exception):
    """A reading that could not be taken, or could not be trusted; the message names the chip."""


class I2CBus(Protocol):
    """The two smbus2 calls the driver uses (an `smbus2.SMBus` or `SimulatedINA219Bus`)."""

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None: ...


@dataclass(frozen=True, slots=True)
class Measurement:
    """One reading of the chip. `power_uw` carries the sign of the current (the chip's power
    register holds the magnitude)."""

    bus_mv: int
    shunt_uv: int
    current_ua: int
    power_uw: int


def calibration_value(current_lsb_na: int, shunt_micro_ohms: int) -> int:
    """The calibration register for a current LSB and shunt: trunc(0.04096 / (LSB * R)),
    capped at 0xFFFE; bit 0 is void in the chip, so it is cleared here."""
    if current_lsb_na <= 0 or shunt_micro_ohms <= 0:
        raise ValueError("current LSB and shunt resistance must be positive")
    cal = min(_CAL_NUMERATOR // (current_lsb_na * shunt_micro_ohms), reg.CALIBRATION_MAX)
    cal &= 0xFFFE
    if cal == 0:
        raise ValueError(
            f"a current LSB of {current_lsb_na} nA is too coarse for a "
            f"{shunt_micro_ohms} micro-ohm shunt (calibration would be 0)"
        )
    return cal


def choose_current_lsb_na(max_expected_na: int) -> int:
    """A round current LSB (1, 2 or 5 x 10^k nA) between Imax/32767 and Imax/4096."""
    if max_expected_na <= 0:
        raise ValueError("max expected current must be positive")
    low = -(-max_expected_na // 32767)  # ceil: the finest LSB that still reaches Imax
    high = max(low, max_expected_na // 4096)
    decade = 1
    while True:
        for mantissa in (1, 2, 5):
            lsb = mantissa * decade
            if lsb >= low:
                return lsb if lsb <= high else low
        decade *= 10


def _div_round(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, halves away from zero."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


class INA219:
    """One INA219 on an I2C bus. Nothing is sent until the first reading (or `configure()`).

    `gain` is the PGA divisor (1, 2, 4 or 8) or None for auto-ranging (the default).
    `max_expected_amps` sets the current LSB; it defaults to the most the shunt can measure
    (320 mV / shunt_ohms). `sleep` waits for conversions; tests pass a no-op.
    """

    def __init__(
        self,
        bus: I2CBus,
        address: int = 0x40,
        shunt_ohms: float = 0.1,
        max_expected_amps: float | None = None,
        *,
        bus_range_v: int = 32,
        gain: int | None = None,
        adc_bits: int = 12,
        adc_samples: int = 1,
        triggered: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0x40 <= address <= 0x4F:
            raise ValueError(f"an INA219 answers at 0x40-0x4F, not {address:#04x}")
        shunt_uohm = round(shunt_ohms * 1_000_000)
        if shunt_uohm <= 0:
            raise ValueError(f"shunt resistance must be positive, not {shunt_ohms}")
        limit_na = _MAX_SHUNT_UV * 1000 * 1_000_000 // shunt_uohm
        if max_expected_amps is None:
            max_na = limit_na
        else:
            max_na = round(max_expected_amps * 1_000_000_000)
            if not 0 < max_na <= limit_na:
                raise ValueError(
                    f"a {shunt_ohms} ohm shunt measures up to {limit_na / 1e9:g} A; "
                    f"max_expected_amps={max_expected_amps} is out of range"
                )
        if gain is not None and gain not in reg.GAINS:
            raise ValueError(f"gain must be one of {reg.GAINS} or None (auto), not {gain}")
        if bus_range_v not in reg.BUS_RANGES:
            raise ValueError(f"bus range must be 16 or 32 V, not {bus_range_v}")
        self.bus = bus
        self.address = address
        self.name = f"ina219@{address:#04x}"
        self.shunt_micro_ohms = shunt_uohm
        self.current_lsb_na = choose_current_lsb_na(max_na)
        self.calibration = calibration_value(self.current_lsb_na, shunt_uohm)
        self.auto_gain = gain is None
        self.gain = 1 if gain is None else gain
        self.bus_range_v = bus_range_v
        self._adc, conversion_us = reg.adc_field(adc_bits, adc_samples)
        # A full cycle converts the shunt, then the bus; allow 10 % for the chip's clock.
        self._conversion_s = 2 * conversion_us * 11 / 10 / 1_000_000
        self._mode = reg.MODE_TRIGGERED if triggered else reg.MODE_CONTINUOUS
        self._sleep = sleep
        self._configured = False
        self.recalibrations = 0

    def __repr__(self) -> str:
        return (
            f"INA219({self.name}, shunt={self.shunt_micro_ohms} uohm, "
            f"lsb={self.current_lsb_na} nA, cal={self.calibration}, gain=/{self.gain})"
        )

    @property
    def config(self) -> int:
        """The configuration register value this driver writes."""
        return reg.config_word(self.bus_range_v, self.gain, self._adc, self._mode)

    def configure(self) -> None:
        """Write configuration and calibration, then wait for a fresh conversion."""
        self._write(reg.CONFIG, self.config)
        self._write(reg.CALIBRATION, self.calibration)
        self._configured = True
        self._sleep(self._conversion_s)

    def bus_voltage_mv(self) -> int:
        """The bus voltage (IN- to ground) in millivolts."""
        if not self._configured:
            self.configure()
        return (self._read(reg.BUS_VOLTAGE) >> 3) * reg.BUS_MV_PER_LSB

    def shunt_voltage_uv(self) -> int:
        return self.read().shunt_uv

    def current_ua(self) -> int:
        return self.read().current_ua

    def power_uw(self) -> int:
        return self.read().power_uw

    def read(self) -> Measurement:
        """One trustworthy reading, or `MeasurementError`."""
        if not self._configured:
            self.configure()
        # Enough attempts to widen through every range and recover from one reset.
        for _ in range(len(reg.GAINS) + 2):
            if self._mode == reg.MODE_TRIGGERED:
                self._write(reg.CONFIG, self.config)
                self._sleep(self._conversion_s)
            shunt = reg.signed(self._read(reg.SHUNT_VOLTAGE))
            bus = self._read(reg.BUS_VOLTAGE)
            current = reg.signed(self._read(reg.CURRENT))
            power = self._read(reg.POWER)
            # Checked after the data: a reset before or during these reads is caught too.
            if self._read(reg.CALIBRATION) != self.calibration:
                self._recover_from_reset()
                continue
            saturated = abs(shunt) >= reg.full_scale_counts(self.gain)
            if saturated:
                if self.auto_gain and self.gain < reg.GAINS[-1]:
                    self._set_gain(self.gain * 2)
                    continue
                raise MeasurementError(
                    f"{self.name}: shunt voltage saturated at the +/-"
                    f"{reg.full_scale_counts(self.gain) // 100} mV range (PGA /{self.gain}); "
                    "the current is beyond what this shunt can measure"
                )
            if bus & reg.BUS_OVF:
                raise MeasurementError(
                    f"{self.name}: math overflow (OVF): the current is beyond the calibrated "
                    f"range of +/-{self.full_scale_ua() // 1000} mA; "
                    "raise max_expected_amps"
                )
            if self.auto_gain:
                self._narrow_range(shunt)
            magnitude = _div_round(20 * power * _LSB_UA_NUMERATOR, self._lsb_denominator)
            return Measurement(
                bus_mv=(bus >> 3) * reg.BUS_MV_PER_LSB,
                shunt_uv=shunt * reg.SHUNT_UV_PER_LSB,
                current_ua=_div_round(current * _LSB_UA_NUMERATOR, self._lsb_denominator),
                power_uw=-magnitude if current < 0 else magnitude,
            )
        raise MeasurementError(f"{self.name}: no stable reading (the chip keeps resetting?)")

    def full_scale_ua(self) -> int:
        """The largest current the calibration can represent (32767 current LSBs), in uA."""
        return 32767 * _LSB_UA_NUMERATOR // self._lsb_denominator

    @property
    def _lsb_denominator(self) -> int:
        return self.calibration * self.shunt_micro_ohms

    def _recover_from_reset(self) -> None:
        self.recalibrations += 1
        log.warning("%s lost its calibration (reset under load?); re-calibrating", self.name)
        self.configure()

    def _set_gain(self, gain: int) -> None:
        log.debug("%s: PGA /%d -> /%d", self.name, self.gain, gain)
        self.gain = gain
        self._write(reg.CONFIG, self.config)
        self._sleep(self._conversion_s)

    def _narrow_range(self, shunt_counts: int) -> None:
        """Choose the narrowest range the signal fits with margin, for the next reading."""
        for gain in reg.GAINS:
            if gain >= self.gain:
                return
            limit = reg.full_scale_counts(gain) * _NARROW_NUM // _NARROW_DEN
            if abs(shunt_counts) < limit:
                self._set_gain(gain)
                return

    def _read(self, register: int) -> int:
        try:
            data = self.bus.read_i2c_block_data(self.address, register, 2)
            return reg.from_bytes(data)
        except (OSError, ValueError) as exc:
            raise MeasurementError(
                f"{self.name}: I2C read of register {register:#04x} failed: {exc}"
            ) from exc

    def _write(self, register: int, value: int) -> None:
        try:
            self.bus.write_i2c_block_data(self.address, register, reg.to_bytes(value))
        except OSError as exc:
            self._configured = False
            raise MeasurementError(
                f"{self.name}: I2C write of register {register:#04x} failed: {exc}"
            ) from exc
