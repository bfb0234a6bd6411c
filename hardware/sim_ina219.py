"""Simulated INA219 chips at register level, behind the same two smbus2 calls as a real bus.

    >>> bus = SimulatedINA219Bus({0x40: 0.1})
    >>> bus.set_load(0x40, current_ua=120_000, bus_mv=5_000)
    >>> INA219(bus, 0x40).read().current_ua
    120000

Each chip behaves as SBOS448 describes: power-on configuration 0x399F and calibration 0 (so
current and power read 0 until calibrated); shunt voltage in signed counts of 10 uV, clipped at
the PGA's full scale; bus voltage in bits 15..3 (4 mV) with CNVR and OVF; current =
shunt x calibration / 4096 and power = |current| x bus / 5000, both wrapping to 16 bits with OVF
set when they do not fit. Continuous modes convert on every data read, triggered modes on the
configuration write that triggers them; power-down and ADC-off keep the last results.

Faults for tests and demos: `saturate` (the shunt input clips, as in a short), `reset` (a
brown-out: registers back to power-on values), `fail` (the chip stops answering: `OSError`).
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterable, Mapping, Sequence

from hardware import ina219_registers as reg

_CONTINUOUS_MODES = {0b101, 0b110, 0b111}
_TRIGGERED_MODES = {0b001, 0b010, 0b011}


def _no_answer(address: int) -> OSError:
    return OSError(errno.EREMOTEIO, f"Remote I/O error (nothing answers at {address:#04x})")


def _div_trunc(numerator: int, denominator: int) -> int:
    """Integer division rounding toward zero, as the chip's arithmetic does."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


class SimulatedChip:
    """One simulated INA219: its registers, its true load and its injected faults."""

    def __init__(self, address: int, shunt_ohms: float = 0.1) -> None:
        self.address = address
        self.shunt_micro_ohms = round(shunt_ohms * 1_000_000)
        self.current_ua = 0  # the true current through the shunt (negative: reverse flow)
        self.bus_mv = 0  # the true voltage at IN- to ground
        self.saturated = False
        self.error: OSError | None = None
        self.error_times: int | None = None  # None: fail until cleared
        self.writes: list[tuple[int, int]] = []  # (register, value), for tests to inspect
        self.power_on_reset()

    def power_on_reset(self) -> None:
        self.config = reg.POWER_ON_CONFIG
        self.calibration = 0
        self._registers = {reg.SHUNT_VOLTAGE: 0, reg.BUS_VOLTAGE: 0, reg.POWER: 0, reg.CURRENT: 0}

    def convert(self) -> None:
        """One conversion of the true load into the data registers."""
        gain = reg.gain_of(self.config)
        full_scale = reg.full_scale_counts(gain)
        counts = _div_trunc(self.current_ua * self.shunt_micro_ohms, 10 * 1_000_000)
        if self.saturated:
            counts = full_scale if counts >= 0 else -full_scale
        counts = max(-full_scale, min(full_scale, counts))
        bus_limit = min(0x1FFF, reg.bus_range_of(self.config) * 1000 // reg.BUS_MV_PER_LSB)
        bus_counts = max(0, min(bus_limit, self.bus_mv // reg.BUS_MV_PER_LSB))
        current = _div_trunc(counts * self.calibration, 4096)
        power = abs(current) * bus_counts // 5000
        overflow = not -0x8000 <= current <= 0x7FFF or power > 0xFFFF
        self._registers[reg.SHUNT_VOLTAGE] = reg.unsigned(counts)
        self._registers[reg.BUS_VOLTAGE] = bus_counts << 3 | reg.BUS_CNVR | int(overflow)
        self._registers[reg.CURRENT] = reg.unsigned(current)
        self._registers[reg.POWER] = power & 0xFFFF

    def read_register(self, register: int) -> int:
        self._maybe_fail()
        if register == reg.CONFIG:
            return self.config
        if register == reg.CALIBRATION:
            return self.calibration
        if register not in self._registers:
            return 0
        if reg.mode_of(self.config) in _CONTINUOUS_MODES:
            self.convert()
        value = self._registers[register]
        if register == reg.POWER:  # reading power clears conversion-ready
            self._registers[reg.BUS_VOLTAGE] &= ~reg.BUS_CNVR
        return value

    def write_register(self, register: int, value: int) -> None:
        self._maybe_fail()
        self.writes.append((register, value))
        if register == reg.CONFIG:
            if value & reg.RESET_BIT:
                self.power_on_reset()
                return
            self.config = value
            if reg.mode_of(value) in _TRIGGERED_MODES:
                self.convert()
        elif register == reg.CALIBRATION:
            self.calibration = value & 0xFFFE
        # Writes to read-only registers are ignored, as by the chip.

    def _maybe_fail(self) -> None:
        if self.error is None:
            return
        error = self.error
        if self.error_times is not None:
            self.error_times -= 1
            if self.error_times <= 0:
                self.error, self.error_times = None, None
        raise error


class SimulatedINA219Bus:
    """An I2C bus with simulated INA219s at the given addresses (address -> shunt ohms)."""

    def __init__(self, chips: Mapping[int, float] | Iterable[int] = (0x40,)) -> None:
        self._lock = threading.Lock()
        self.chips: dict[int, SimulatedChip] = {}
        items = chips.items() if isinstance(chips, Mapping) else ((a, 0.1) for a in chips)
        for address, shunt_ohms in items:
            self.add_chip(address, shunt_ohms)

    def add_chip(self, address: int, shunt_ohms: float = 0.1) -> SimulatedChip:
        if not 0x40 <= address <= 0x4F:
            raise ValueError(f"an INA219 answers at 0x40-0x4F, not {address:#04x}")
        if address in self.chips:
            raise ValueError(f"two simulated chips at {address:#04x}")
        chip = SimulatedChip(address, shunt_ohms)
        self.chips[address] = chip
        return chip

    def addresses(self) -> list[int]:
        return sorted(self.chips)

    def chip(self, address: int) -> SimulatedChip:
        try:
            return self.chips[address]
        except KeyError:
            raise KeyError(f"no simulated INA219 at {address:#04x}") from None

    # -- the true world the chips measure, and faults --

    def set_load(self, address: int, *, current_ua: int, bus_mv: int) -> None:
        """The true current through the shunt (negative for reverse flow) and bus voltage."""
        with self._lock:
            chip = self.chip(address)
            chip.current_ua, chip.bus_mv = int(current_ua), int(bus_mv)

    def saturate(self, address: int, on: bool = True) -> None:
        """Clip the shunt input at full scale whatever the PGA range (a short circuit)."""
        with self._lock:
            self.chip(address).saturated = on

    def reset(self, address: int) -> None:
        """A brown-out: configuration back to 0x399F, calibration back to 0."""
        with self._lock:
            self.chip(address).power_on_reset()

    def fail(self, address: int, error: OSError | None = None, times: int | None = None) -> None:
        """Make the chip's next `times` transactions (all, if None) raise `error`."""
        with self._lock:
            chip = self.chip(address)
            chip.error = error if error is not None else _no_answer(address)
            chip.error_times = times

    def heal(self, address: int) -> None:
        with self._lock:
            chip = self.chip(address)
            chip.error, chip.error_times = None, None

    # -- the smbus2 interface --

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        with self._lock:
            chip = self.chips.get(i2c_addr)
            if chip is None:
                raise _no_answer(i2c_addr)
            data = reg.to_bytes(chip.read_register(register))
        # The INA219 does not advance its pointer: longer reads repeat the register.
        return [data[i % 2] for i in range(length)]

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        if len(data) != 2:
            raise OSError(errno.EIO, f"an INA219 register takes 2 bytes, not {len(data)}")
        with self._lock:
            chip = self.chips.get(i2c_addr)
            if chip is None:
                raise _no_answer(i2c_addr)
            chip.write_register(register, reg.from_bytes(list(data)))

    def close(self) -> None:
        """Nothing to release (an `smbus2.SMBus` has the same method)."""
