"""Meters: what an agent signs as its `reading` after each interval (PROTOCOL section 3).

A meter is told each interval's contracted flows (`feed(k, ...)`: a simulated meter reports
them, an INA219 over simulated chips makes its chip carry them, a real sensor ignores them),
sampled during the interval (`sample()`, about once a second or as often as the node likes) and
closed at its end (`close_interval(k)` returns the reading payload and starts the next
interval). The `Meter` protocol says when the agent calls each. Import and export are from the author's side of its meter: a home imports what
it consumes, a generator exports what it produces, a battery imports while charging and exports
while discharging. With the usual wiring (current flowing from IN+ to IN- toward the load, the
battery or the grid) a positive current is consumption for a home, production for a generator
and charging for a battery.

Energy scale (`INA219Meter(energy_scale=...)`): the kit models a house with currents of
milliamps at 5 V, so the energy really measured is tiny. Reported Wh = measured Wh x
energy_scale, an integer (1, the default, is an honest meter). With energy_scale=1000 every
milliwatt-hour measured counts as one watt-hour. To size it: a load of P watts shown as E Wh
over an interval of T seconds needs energy_scale = E x 3600 / (P x T).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from hardware.energy import EnergyAccount, StateOfCharge
from hardware.gpio import I2CUnavailable, announce_simulated_i2c, open_i2c
from hardware.ina219 import INA219, Measurement
from hardware.sim_ina219 import SimulatedINA219Bus

log = logging.getLogger("picogrid.hardware")

ROLES = ("consumer", "generator", "storage")
# Sign that turns the sensor's power into imported power for each role.
_IMPORT_SIGN = {"consumer": 1, "storage": 1, "generator": -1}


SIM_BUS_MV = 5000  # the bus voltage a simulated INA219 is given with its load


@runtime_checkable
class Meter(Protocol):
    """What the agent loop uses of a meter, whatever measures behind it.

    The agent calls, for each interval `k` it reads:
    - `feed(k, import_wh, export_wh, interval_s=..., soc_wh=...)` once, with `k`'s contracted
      flows, as soon as they are settled and never before `close_interval(k - 1)`;
    - `sample()` about once a second while `k` runs;
    - `close_interval(k)` once `k` has ended: the PROTOCOL `reading` payload.
    A simulated meter reports what it was fed; an INA219 over simulated chips makes its chip
    carry the fed flows; an INA219 on a real bus measures what really flows and ignores feeds.
    """

    sensor: str

    def feed(
        self,
        interval: int,
        import_wh: int,
        export_wh: int,
        *,
        interval_s: int,
        soc_wh: int | None = None,
    ) -> None:
        """Interval `interval`'s contracted flows (a storage's expected charge after it)."""
        ...

    def sample(self) -> None:
        """Measure once (a meter that measures nothing does nothing)."""
        ...

    def close_interval(self, interval: int) -> dict[str, Any]:
        """End the interval: its reading payload; the next interval starts now."""
        ...


def _check_flows(import_wh: int, export_wh: int) -> None:
    if import_wh < 0 or export_wh < 0:
        raise ValueError("import_wh and export_wh are amounts, never negative")


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    return role


def _mean(total: int, count: int) -> int:
    """Integer mean rounded to nearest, halves away from zero (0 for no samples)."""
    if count == 0:
        return 0
    quotient, remainder = divmod(abs(total), count)
    if 2 * remainder >= count:
        quotient += 1
    return quotient if total >= 0 else -quotient


def reading_payload(
    interval: int,
    *,
    import_wh: int,
    export_wh: int,
    soc_wh: int | None,
    bus_mv: int,
    current_ua: int,
    power_uw: int,
    samples: int,
    sensor: str,
) -> dict[str, Any]:
    """The PROTOCOL `reading` body, checked: ints only (never bool or float)."""
    payload: dict[str, Any] = {
        "interval": interval,
        "import_wh": import_wh,
        "export_wh": export_wh,
        "soc_wh": soc_wh,
        "bus_mv": bus_mv,
        "current_ua": current_ua,
        "power_uw": power_uw,
        "samples": samples,
        "sensor": sensor,
    }
    for key, value in payload.items():
        if key == "sensor":
            ok = isinstance(value, str)
        elif key == "soc_wh" and value is None:
            ok = True
        else:
            ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok:
            raise TypeError(f"reading {key} must be {'str' if key == 'sensor' else 'int'}")
    for key in ("import_wh", "export_wh", "samples"):
        if payload[key] < 0:
            raise ValueError(f"reading {key} must be >= 0, not {payload[key]}")
    return payload


class INA219Meter:
    """A meter over an INA219. `sample()` averages `reads_per_sample` readings spaced
    `spacing_s` apart (10 over about a second by default) into one sample; each sample's power is
    taken to have held since the previous sample, and at `close_interval` the latest power is
    taken to hold up to the close. A failed reading raises `MeasurementError` and the sample is
    dropped: the next good sample covers the gap. The payload's bus_mv, current_ua and power_uw
    are the interval's means as the sensor sees them; `samples` counts the chip readings.

    `feed()`: over a `SimulatedINA219Bus` the chip is given, from now on, the steady current that
    makes this meter report the fed flows over `interval_s` seconds (the storage's `soc_wh` is
    not used: the meter tracks its charge from what it measures). On a real bus a feed is only
    checked and otherwise ignored: the sensor measures what really flows."""

    def __init__(
        self,
        ina219: INA219,
        role: str,
        capacity_wh: int = 0,
        energy_scale: int = 1,
        *,
        initial_soc_wh: int = 0,
        reads_per_sample: int = 10,
        spacing_s: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
        clock_us: Callable[[], int] | None = None,
    ) -> None:
        if reads_per_sample < 1:
            raise ValueError("a sample needs at least one reading")
        self.ina219 = ina219
        self.role = _check_role(role)
        self.sensor = ina219.name
        self.reads_per_sample = reads_per_sample
        self.spacing_s = spacing_s
        self._sleep = sleep
        self._clock_us = clock_us or (lambda: time.monotonic_ns() // 1000)
        self._sign = _IMPORT_SIGN[role]
        self._account = EnergyAccount(energy_scale)
        self.energy_scale = energy_scale
        self._soc = StateOfCharge(capacity_wh, initial_soc_wh) if role == "storage" else None
        self._last_us = self._clock_us()
        self._last_power_uw: int | None = None
        self._clear_interval()

    def _clear_interval(self) -> None:
        self._bus_total = self._current_total = self._power_total = 0
        self._sample_count = 0
        self._reads = 0

    def feed(
        self,
        interval: int,
        import_wh: int,
        export_wh: int,
        *,
        interval_s: int,
        soc_wh: int | None = None,
    ) -> None:
        """Over simulated chips: carry these flows from now on; on a real bus: nothing."""
        _check_flows(import_wh, export_wh)
        bus = self.ina219.bus
        if not isinstance(bus, SimulatedINA219Bus):
            return
        current = sensor_current_for_flow_ua(
            self.role, import_wh, export_wh, interval_s, self.energy_scale, SIM_BUS_MV
        )
        bus.set_load(self.ina219.address, current_ua=current, bus_mv=SIM_BUS_MV)

    def sample(self) -> None:
        """Average `reads_per_sample` readings into one sample (raises `MeasurementError`)."""
        readings: list[Measurement] = []
        for index in range(self.reads_per_sample):
            if index and self.spacing_s > 0:
                self._sleep(self.spacing_s)
            readings.append(self.ina219.read())
        now = self._clock_us()
        count = len(readings)
        power = _mean(sum(r.power_uw for r in readings), count)
        self._account.add(self._sign * power, now - self._last_us)
        self._last_us, self._last_power_uw = now, power
        self._bus_total += _mean(sum(r.bus_mv for r in readings), count)
        self._current_total += _mean(sum(r.current_ua for r in readings), count)
        self._power_total += power
        self._sample_count += 1
        self._reads += count

    def close_interval(self, interval: int) -> dict[str, Any]:
        """The interval's reading from what was sampled; the next interval starts now."""
        now = self._clock_us()
        if self._last_power_uw is not None:
            self._account.add(self._sign * self._last_power_uw, now - self._last_us)
        self._last_us = now
        import_wh, export_wh = self._account.close()
        soc = self._soc.update(import_wh, export_wh) if self._soc is not None else None
        payload = reading_payload(
            interval,
            import_wh=import_wh,
            export_wh=export_wh,
            soc_wh=soc,
            bus_mv=_mean(self._bus_total, self._sample_count),
            current_ua=_mean(self._current_total, self._sample_count),
            power_uw=_mean(self._power_total, self._sample_count),
            samples=self._reads,
            sensor=self.sensor,
        )
        self._clear_interval()
        return payload


class SimulatedMeter:
    """A meter for scenarios without sensors: it reports, for each interval, the flows it was
    fed for that interval (none if it was not fed). Its electrical figures are 0 and `samples`
    is 0: nothing was measured. A storage tracks its charge from the flows, or takes the charge
    it is told (`soc_wh`)."""

    sensor = "sim"

    def __init__(self, role: str, capacity_wh: int = 0, *, initial_soc_wh: int = 0) -> None:
        self.role = _check_role(role)
        self._soc = StateOfCharge(capacity_wh, initial_soc_wh) if role == "storage" else None
        self._fed: dict[int, tuple[int, int, int | None]] = {}

    def feed(
        self,
        interval: int,
        import_wh: int,
        export_wh: int,
        *,
        interval_s: int,
        soc_wh: int | None = None,
    ) -> None:
        """Interval `interval`'s true flows; a storage may also be told its true charge."""
        _check_flows(import_wh, export_wh)
        self._fed[interval] = (import_wh, export_wh, soc_wh)

    def sample(self) -> None:
        """Nothing to measure."""

    def close_interval(self, interval: int) -> dict[str, Any]:
        """The flows fed for this interval (feeds of earlier intervals are dropped)."""
        import_wh, export_wh, known_soc = self._fed.pop(interval, (0, 0, None))
        self._fed = {k: flows for k, flows in self._fed.items() if k > interval}
        soc = None
        if self._soc is not None:
            if known_soc is not None:
                soc = self._soc.set(known_soc)
            else:
                soc = self._soc.update(import_wh, export_wh)
        return reading_payload(
            interval,
            import_wh=import_wh,
            export_wh=export_wh,
            soc_wh=soc,
            bus_mv=0,
            current_ua=0,
            power_uw=0,
            samples=0,
            sensor=self.sensor,
        )


def sensor_current_for_flow_ua(
    role: str, import_wh: int, export_wh: int, interval_s: int, energy_scale: int, bus_mv: int
) -> int:
    """The steady current a simulated INA219 must carry so that an `INA219Meter` of this role
    reports these flows over an interval of `interval_s` seconds (net flow: a steady load can't
    both import and export)."""
    if interval_s <= 0 or energy_scale < 1 or bus_mv <= 0:
        raise ValueError("interval_s, energy_scale and bus_mv must be positive")
    net_wh = import_wh - export_wh
    power_uw = _IMPORT_SIGN[_check_role(role)] * net_wh * 3_600_000_000
    return _mean(power_uw * 1000, interval_s * energy_scale * bus_mv)


def make_meter(role: str, config: Mapping[str, Any], sim: bool) -> Meter:
    """A meter for an agent from its config.

    Keys: `capacity_wh` (storage), and optionally `sensor` = {`address`, `shunt_ohms`,
    `max_expected_amps`}, `i2c_bus` (default 1), `energy_scale` (default 1),
    `sample_spacing_s` (default 0.1). Without a sensor: a `SimulatedMeter`. With one: an
    `INA219Meter` on the real bus, or on a simulated chip at the same address when `sim` is
    true or this machine has no I2C (said once in the log).
    """
    capacity = int(config.get("capacity_wh", 0))
    sensor = config.get("sensor")
    if not sensor:
        return SimulatedMeter(role, capacity)
    address = int(sensor.get("address", 0x40))
    shunt_ohms = float(sensor.get("shunt_ohms", 0.1))
    max_amps = sensor.get("max_expected_amps")
    bus: Any
    if sim:
        bus = SimulatedINA219Bus({address: shunt_ohms})
    else:
        try:
            bus = open_i2c(int(config.get("i2c_bus", 1)))
        except I2CUnavailable as exc:
            announce_simulated_i2c(str(exc))
            bus = SimulatedINA219Bus({address: shunt_ohms})
    ina = INA219(bus, address, shunt_ohms, None if max_amps is None else float(max_amps))
    return INA219Meter(
        ina,
        role,
        capacity,
        int(config.get("energy_scale", 1)),
        spacing_s=float(config.get("sample_spacing_s", 0.1)),
    )
