"""Error levels and the status LED's blink codes, on gpiozero's MockFactory."""

from __future__ import annotations

import logging
import time

import pytest
from gpiozero import LED

from hardware.gpio import mock_pin_factory
from hardware.status import BLINK_CODES, CriticalError, ErrorLevel, StatusReporter

SCALE = 0.02  # blink codes at 1/50 of their real length


@pytest.fixture
def led():
    status = LED(17, pin_factory=mock_pin_factory())
    yield status
    status.close()


def blinks(led: LED, expected: int, timeout: float = 3.0) -> tuple[int, list]:
    """Wait until the pin has gone through `expected` blinks (or timed out); the number of
    blinks seen (rising edges) and the pin's history."""
    deadline = time.monotonic() + timeout
    while len(led.pin.states) < 1 + 2 * expected and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.1)  # nothing more may follow
    states = list(led.pin.states)
    rising = sum(
        1
        for before, after in zip(states, states[1:], strict=False)
        if after.state and not before.state
    )
    return rising, states


@pytest.mark.parametrize(
    ("level", "count"),
    [
        (ErrorLevel.CONNECTION, 1),
        (ErrorLevel.SENDING, 2),
        (ErrorLevel.MEASURING, 3),
        (ErrorLevel.SHORT, 1),
    ],
)
def test_each_level_blinks_its_code(led, level, count):
    reporter = StatusReporter(led, time_scale=SCALE)
    reporter.report(level, "something went wrong")
    seen, states = blinks(led, count)
    assert seen == count
    assert states[-1].state is False  # the LED ends dark


def test_blink_lengths_tell_short_from_long(led):
    assert BLINK_CODES[ErrorLevel.SHORT].on_s == 0.1
    assert BLINK_CODES[ErrorLevel.CONNECTION].on_s > 3 * BLINK_CODES[ErrorLevel.SENDING].on_s
    reporter = StatusReporter(led, time_scale=0.1)
    reporter.report(ErrorLevel.CONNECTION, "no peers")
    _, states = blinks(led, 1)
    # states[i].timestamp is the time since the previous change: the lit time is states[2]'s.
    assert states[2].timestamp == pytest.approx(0.15, abs=0.05)


def test_critical_blinks_four_times_and_stops_the_caller(led):
    reporter = StatusReporter(led, time_scale=SCALE)
    with pytest.raises(CriticalError, match="database unreadable"):
        reporter.report(ErrorLevel.CRITICAL, "database unreadable")
    assert blinks(led, 4)[0] == 4
    assert reporter.counts()["critical"] == 1


def test_critical_can_call_back_instead_of_raising():
    stops = []
    reporter = StatusReporter(on_critical=stops.append)
    reporter.report("critical", "disk full")
    assert stops == ["disk full"]


def test_silent_is_only_logged(led, caplog):
    reporter = StatusReporter(led, time_scale=SCALE)
    with caplog.at_level(logging.WARNING, logger="picogrid.hardware"):
        reporter.report(ErrorLevel.SILENT, "a reading came late")
    time.sleep(0.05)
    assert [s.state for s in led.pin.states] == [False]
    assert "silent error: a reading came late" in caplog.text


def test_every_report_is_logged_and_counted(caplog):
    reporter = StatusReporter()  # no LED at all: still logs and counts
    with caplog.at_level(logging.WARNING, logger="picogrid.hardware"):
        reporter.report(ErrorLevel.MEASURING, "ina219@0x41: I2C read failed")
        reporter.report(ErrorLevel.MEASURING, "ina219@0x41: I2C read failed")
        reporter.report(ErrorLevel.SENDING, "peer refused")
        reporter.report("short", "slow gossip")
    assert reporter.counts() == {
        "critical": 0,
        "connection": 0,
        "disk": 0,
        "clock": 0,
        "sending": 1,
        "measuring": 2,
        "short": 1,
        "silent": 0,
    }
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert levels[0] == ("ERROR", "measuring error: ina219@0x41: I2C read failed")
    assert levels[-1] == ("WARNING", "short error: slow gossip")
    with pytest.raises(ValueError):
        reporter.report("fatal", "not a level")


class RecordingLed:
    def __init__(self) -> None:
        self.calls: list[tuple[float, float, int]] = []

    def blink(self, on_time: float, off_time: float, n: int, background: bool) -> None:
        assert background
        self.calls.append((on_time, off_time, n))


def test_a_lesser_code_does_not_cut_a_graver_one_short(led):
    reporter = StatusReporter(led, time_scale=SCALE)
    reporter.report(ErrorLevel.MEASURING, "sensor gone")
    reporter.report(ErrorLevel.SHORT, "minor")  # arrives while 3 blinks are under way
    assert blinks(led, 3)[0] == 3


def test_codes_yield_only_to_equal_or_graver_ones_while_blinking():
    now = [100.0]
    status = RecordingLed()
    reporter = StatusReporter(status, clock=lambda: now[0])
    reporter.report(ErrorLevel.SENDING, "upload failed")  # 2 x 0.8 s: busy until 101.6
    reporter.report(ErrorLevel.SHORT, "minor")  # lesser: not shown
    now[0] = 101.0
    reporter.report(ErrorLevel.SENDING, "again")  # equal: starts over
    reporter.report(ErrorLevel.MEASURING, "sensor gone")  # graver: takes over
    now[0] = 104.0
    reporter.report(ErrorLevel.SHORT, "minor")  # the LED is free again
    assert [n for _, _, n in status.calls] == [2, 2, 3, 1]
    assert status.calls[-1][:2] == (0.1, 0.1)
    assert reporter.counts()["short"] == 2


def test_reporting_does_not_block(led):
    reporter = StatusReporter(led)  # real timings: 4 x 0.8 s
    started = time.monotonic()
    with pytest.raises(CriticalError):
        reporter.report(ErrorLevel.CRITICAL, "stop")
    assert time.monotonic() - started < 0.2
