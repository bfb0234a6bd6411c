"""`node.devices.hardware.read_meter`, which the agent awaits to sign a reading: the last sample
and the close run off the event loop, for every kind of meter, and trouble is reported."""

from __future__ import annotations

import pytest

from hardware.ina219 import INA219
from hardware.meter import INA219Meter, Meter, SimulatedMeter
from hardware.sim_ina219 import SimulatedINA219Bus
from hardware.status import StatusReporter
from node.devices.hardware import read_meter

SECOND_US = 1_000_000


class Bare:
    """A node without its hardware glue: read_meter uses its own lock and the default pool."""

    def __init__(self) -> None:
        self.status = StatusReporter()


class Clock:
    def __init__(self) -> None:
        self.now_us = 0

    def __call__(self) -> int:
        return self.now_us


def meter_of(kind: str, clock: Clock) -> Meter:
    if kind == "simulated":
        return SimulatedMeter("consumer")
    chip = INA219(SimulatedINA219Bus({0x40: 0.1}), 0x40, 0.1, sleep=lambda s: None)
    return INA219Meter(chip, "consumer", 0, 1_000_000, spacing_s=0, clock_us=clock)


@pytest.mark.parametrize("kind", ["simulated", "ina219"])
async def test_read_meter_closes_the_interval_the_agent_fed(kind):
    node, clock = Bare(), Clock()
    meter = meter_of(kind, clock)
    meter.feed(3, 500, 0, interval_s=10)
    clock.now_us += 10 * SECOND_US  # the interval passes (nobody sampled it)
    reading = await read_meter(meter, 3, status=node.status)
    assert (reading["interval"], reading["import_wh"], reading["export_wh"]) == (3, 500, 0)
    assert reading["sensor"] == meter.sensor
    assert node.status.counts()["measuring"] == 0


async def test_a_meter_that_cannot_close_is_reported_and_raises():
    class Broken(SimulatedMeter):
        def close_interval(self, interval: int) -> dict:
            raise ValueError("reading import_wh must be >= 0, not -1")

    node = Bare()
    with pytest.raises(ValueError, match="must be >= 0"):
        await read_meter(Broken("consumer"), 9, status=node.status)
    assert node.status.counts()["measuring"] == 1
