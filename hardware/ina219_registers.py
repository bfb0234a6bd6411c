"""The INA219's register map and bit fields, as TI's datasheet SBOS448 describes them.

Shared by the driver (`hardware.ina219`) and the register-level simulator
(`hardware.sim_ina219`), so both speak exactly the same encoding. Every register is 16 bits,
sent most significant byte first (big-endian).
"""

from __future__ import annotations

# Register pointers (SBOS448 table "Summary of Register Set").
CONFIG = 0x00
SHUNT_VOLTAGE = 0x01  # signed, LSB 10 uV
BUS_VOLTAGE = 0x02  # bits 15..3 = voltage (LSB 4 mV), bit 1 = CNVR, bit 0 = OVF
POWER = 0x03  # unsigned, LSB = 20 x current LSB
CURRENT = 0x04  # signed, LSB = current LSB
CALIBRATION = 0x05  # bit 0 is void (always 0)

POWER_ON_CONFIG = 0x399F  # 32 V, PGA /8, 12-bit bus and shunt, shunt and bus continuous
RESET_BIT = 0x8000

BUS_CNVR = 0x0002  # conversion ready; cleared by reading the power register
BUS_OVF = 0x0001  # math overflow: current or power out of range
BUS_MV_PER_LSB = 4
SHUNT_UV_PER_LSB = 10
CALIBRATION_MAX = 0xFFFE

# PGA divisor -> (PG field, full-scale shunt voltage in register counts of 10 uV).
PGA = {1: (0b00, 4000), 2: (0b01, 8000), 4: (0b10, 16000), 8: (0b11, 32000)}
GAINS = (1, 2, 4, 8)

# Bus voltage range in volts -> BRNG bit.
BUS_RANGES = {16: 0, 32: 1}

# ADC field (BADC/SADC, 4 bits) for one conversion at 9..12 bits, or 12-bit averaging of N samples,
# with the conversion time in microseconds (SBOS448 table "ADC Settings").
ADC_BITS = {9: (0b0000, 84), 10: (0b0001, 148), 11: (0b0010, 276), 12: (0b0011, 532)}
ADC_SAMPLES = {
    1: (0b0011, 532),
    2: (0b1001, 1060),
    4: (0b1010, 2130),
    8: (0b1011, 4260),
    16: (0b1100, 8510),
    32: (0b1101, 17020),
    64: (0b1110, 34050),
    128: (0b1111, 68100),
}

# MODE field.
MODE_POWER_DOWN = 0b000
MODE_TRIGGERED = 0b011  # shunt and bus, triggered
MODE_ADC_OFF = 0b100
MODE_CONTINUOUS = 0b111  # shunt and bus, continuous


def adc_field(bits: int = 12, samples: int = 1) -> tuple[int, int]:
    """The 4-bit ADC field and its conversion time in microseconds."""
    if samples != 1:
        if bits != 12:
            raise ValueError("averaging is only available at 12-bit resolution")
        if samples not in ADC_SAMPLES:
            raise ValueError(f"adc_samples must be one of {sorted(ADC_SAMPLES)}, not {samples}")
        return ADC_SAMPLES[samples]
    if bits not in ADC_BITS:
        raise ValueError(f"adc_bits must be one of {sorted(ADC_BITS)}, not {bits}")
    return ADC_BITS[bits]


def config_word(bus_range_v: int, gain: int, adc: int, mode: int) -> int:
    """Pack a configuration register value (the same ADC field for bus and shunt)."""
    if bus_range_v not in BUS_RANGES:
        raise ValueError(f"bus range must be 16 or 32 V, not {bus_range_v}")
    if gain not in PGA:
        raise ValueError(f"PGA gain must be one of {GAINS}, not {gain}")
    return BUS_RANGES[bus_range_v] << 13 | PGA[gain][0] << 11 | adc << 7 | adc << 3 | (mode & 0b111)


def gain_of(config: int) -> int:
    """The PGA divisor (1, 2, 4 or 8) a configuration register value selects."""
    return GAINS[(config >> 11) & 0b11]


def bus_range_of(config: int) -> int:
    return 32 if config & (1 << 13) else 16


def mode_of(config: int) -> int:
    return config & 0b111


def full_scale_counts(gain: int) -> int:
    """The shunt register's full scale for a PGA setting, in counts of 10 uV."""
    return PGA[gain][1]


def to_bytes(value: int) -> list[int]:
    """A 16-bit register value as the two bytes on the wire, most significant first."""
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"register value {value} does not fit 16 bits")
    return [value >> 8, value & 0xFF]


def from_bytes(data: list[int] | bytes) -> int:
    """Two bytes from the wire (most significant first) as an unsigned 16-bit value."""
    if len(data) < 2:
        raise ValueError(f"a register is 2 bytes, got {len(data)}")
    return (data[0] & 0xFF) << 8 | (data[1] & 0xFF)


def signed(value: int) -> int:
    """An unsigned 16-bit register value read as two's complement."""
    return value - 0x10000 if value & 0x8000 else value


def unsigned(value: int) -> int:
    """A signed value as its 16-bit two's-complement register pattern (wrapping like the chip)."""
    return value & 0xFFFF
