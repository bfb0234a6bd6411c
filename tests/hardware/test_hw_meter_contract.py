"""The contract every meter keeps, run against each meter the node can build.

`MeterContract` holds the tests; each `Test...` subclass only says how to build its meter and how
one interval passes for it (the agent feeds the interval's contracted flows, the node samples
about once a second, the agent closes the interval). The agent loop relies on nothing else.
"""

from __future__ import annotations

from typing import Any

import pytest

from hardware.ina219 import INA219
from hardware.meter import INA219Meter, Meter, SimulatedMeter, reading_payload
from hardware.sim_ina219 import SimulatedINA219Bus

INTERVAL_S = 10
SECOND_US = 1_000_000


class MeterContract:
    """Shared tests; a subclass provides `make()` and `elapse()`."""

    def make(self, role: str, capacity_wh: int = 0) -> Meter:
        """A fresh meter of this kind for an agent of `role`."""
        raise NotImplementedError

    def elapse(self, meter: Meter) -> None:
        """One interval of INTERVAL_S seconds passes while the node samples the meter."""
        raise NotImplementedError

    def interval(
        self, meter: Meter, k: int, import_wh: int, export_wh: int, soc_wh: int | None = None
    ) -> dict[str, Any]:
        """Feed k's flows, let k pass, close it: k's reading."""
        meter.feed(k, import_wh, export_wh, interval_s=INTERVAL_S, soc_wh=soc_wh)
        self.elapse(meter)
        return meter.close_interval(k)

    def test_it_is_a_meter(self):
        meter = self.make("consumer")
        assert isinstance(meter, Meter)
        assert isinstance(meter.sensor, str) and meter.sensor

    def test_a_reading_is_a_protocol_payload_of_its_interval(self):
        meter = self.make("consumer")
        payload = self.interval(meter, 42, 500, 0)
        fields = {key: value for key, value in payload.items() if key != "interval"}
        assert payload == reading_payload(42, **fields)  # ints only, amounts >= 0, all keys
        assert (payload["interval"], payload["sensor"]) == (42, meter.sensor)
        assert payload["soc_wh"] is None  # only a storage has a charge

    @pytest.mark.parametrize("import_wh", [0, 50, 500, 3000])
    def test_a_consumer_reports_the_import_it_was_fed(self, import_wh):
        payload = self.interval(self.make("consumer"), 0, import_wh, 0)
        assert (payload["import_wh"], payload["export_wh"]) == (import_wh, 0)

    @pytest.mark.parametrize("export_wh", [0, 900, 2000])
    def test_a_generator_reports_the_export_it_was_fed(self, export_wh):
        payload = self.interval(self.make("generator"), 0, 0, export_wh)
        assert (payload["import_wh"], payload["export_wh"]) == (0, export_wh)

    def test_each_interval_reports_its_own_flows(self):
        meter = self.make("consumer")
        fed = [500, 1500, 0, 50]
        readings = [self.interval(meter, k, wh, 0) for k, wh in enumerate(fed, start=7)]
        assert [r["interval"] for r in readings] == [7, 8, 9, 10]
        assert [r["import_wh"] for r in readings] == fed

    def test_a_storage_charges_and_discharges_within_its_capacity(self):
        meter = self.make("storage", capacity_wh=4000)
        charged = self.interval(meter, 0, 3000, 0, soc_wh=3000)
        full = self.interval(meter, 1, 2000, 0, soc_wh=4000)
        discharged = self.interval(meter, 2, 0, 1500, soc_wh=2500)
        assert (charged["import_wh"], charged["soc_wh"]) == (3000, 3000)
        assert (full["import_wh"], full["soc_wh"]) == (2000, 4000)  # clamped at capacity
        assert (discharged["export_wh"], discharged["soc_wh"]) == (1500, 2500)

    def test_a_negative_flow_is_refused_and_the_meter_goes_on(self):
        meter = self.make("consumer")
        with pytest.raises(ValueError, match="never negative"):
            meter.feed(0, -1, 0, interval_s=INTERVAL_S)
        with pytest.raises(ValueError, match="never negative"):
            meter.feed(0, 0, -5, interval_s=INTERVAL_S)
        assert self.interval(meter, 0, 500, 0)["import_wh"] == 500

    def test_an_unknown_role_is_refused(self):
        with pytest.raises(ValueError, match="role must be one of"):
            self.make("battery")


class TestSimulatedMeter(MeterContract):
    def make(self, role: str, capacity_wh: int = 0) -> Meter:
        return SimulatedMeter(role, capacity_wh)

    def elapse(self, meter: Meter) -> None:
        for _ in range(INTERVAL_S):
            meter.sample()  # measures nothing, but the node calls it all the same


class TestINA219MeterOnSimulatedChip(MeterContract):
    """The INA219 driver and meter over the register-level chip twin, on a fake clock; an
    energy scale of 10**6 turns the twin's milliamps into the scenario's watt-hours. The chip's
    power register counts steps of 2 mW, 5.6 Wh here: the amounts fed are whole steps (25 Wh
    would read as 22 Wh, as on a real chip)."""

    def make(self, role: str, capacity_wh: int = 0) -> Meter:
        bus = SimulatedINA219Bus({0x40: 0.1})
        ina = INA219(bus, 0x40, 0.1, sleep=lambda s: None)
        self.now_us = 0
        return INA219Meter(
            ina, role, capacity_wh, 1_000_000, spacing_s=0, clock_us=lambda: self.now_us
        )

    def elapse(self, meter: Meter) -> None:
        for _ in range(INTERVAL_S):
            self.now_us += SECOND_US
            meter.sample()
