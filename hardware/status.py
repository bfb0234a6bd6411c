"""Error levels of the reference kit, and the status LED (BCM 17) that blinks their codes.

| level      | status LED                    | meaning                                             |
|------------|-------------------------------|-----------------------------------------------------|
| critical   | 4 blinks (0.4 s on, 0.4 s off) | the node can't go on: the caller must stop          |
| connection | 1 long blink (1.5 s)          | no peer or network reachable                        |
| sending    | 2 blinks                      | an action or reading could not be sent              |
| measuring  | 3 blinks                      | a sensor gave no reading or an untrustworthy one    |
| disk       | 3 long blinks (1.5 s)         | the disk is full: nothing new can be stored         |
| clock      | 2 long blinks (1.5 s)         | the clock is off from the peers' beyond tolerance   |
| short      | 1 short blink (0.1 s)         | a minor fault worth a glance                        |
| silent     | none                          | only logged                                         |

The kit's own code had no connection error; PicoGrid gives it one long blink, unlike any other
code; a full disk and a clock set off (PicoGrid's too) get three and two long blinks.
Every report is logged (logger "picogrid.hardware") and counted. Blinking never blocks:
gpiozero blinks in a background thread. A code already blinking is not cut short by a less
severe one (critical, disk, connection, clock, measuring, sending, short: most severe first).
Only CRITICAL stops the node: `report` raises `CriticalError`, or calls
`on_critical(message)` if one was given (for an event loop that stops itself).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("picogrid.hardware")


class ErrorLevel(enum.Enum):
    CRITICAL = "critical"
    CONNECTION = "connection"
    SENDING = "sending"
    MEASURING = "measuring"
    DISK = "disk"
    CLOCK = "clock"
    SHORT = "short"
    SILENT = "silent"


@dataclass(frozen=True, slots=True)
class BlinkCode:
    count: int
    on_s: float
    off_s: float

    @property
    def duration_s(self) -> float:
        return self.count * (self.on_s + self.off_s)


BLINK_CODES: dict[ErrorLevel, BlinkCode] = {
    ErrorLevel.CRITICAL: BlinkCode(4, 0.4, 0.4),
    ErrorLevel.CONNECTION: BlinkCode(1, 1.5, 0.5),
    ErrorLevel.SENDING: BlinkCode(2, 0.4, 0.4),
    ErrorLevel.MEASURING: BlinkCode(3, 0.4, 0.4),
    ErrorLevel.DISK: BlinkCode(3, 1.5, 0.5),
    ErrorLevel.CLOCK: BlinkCode(2, 1.5, 0.5),
    ErrorLevel.SHORT: BlinkCode(1, 0.1, 0.1),
}

# Which code may cut another short: a failed measurement is lost for good, a failed send is
# retried, so measuring ranks above sending.
_SEVERITY = {
    ErrorLevel.CRITICAL: 7,
    ErrorLevel.DISK: 6,
    ErrorLevel.CONNECTION: 5,
    ErrorLevel.CLOCK: 4,
    ErrorLevel.MEASURING: 3,
    ErrorLevel.SENDING: 2,
    ErrorLevel.SHORT: 1,
    ErrorLevel.SILENT: 0,
}
_LOG_LEVEL = {
    ErrorLevel.CRITICAL: logging.CRITICAL,
    ErrorLevel.CONNECTION: logging.ERROR,
    ErrorLevel.SENDING: logging.ERROR,
    ErrorLevel.MEASURING: logging.ERROR,
    ErrorLevel.DISK: logging.ERROR,
    ErrorLevel.CLOCK: logging.ERROR,
    ErrorLevel.SHORT: logging.WARNING,
    ErrorLevel.SILENT: logging.WARNING,
}


class CriticalError(Exception):
    """A critical error was reported: the node must stop."""


class StatusReporter:
    """Logs, counts and blinks errors. `status_led` is a gpiozero LED (e.g.
    `KitBoard.status_led`) or None; `time_scale` shortens the blink codes for tests."""

    def __init__(
        self,
        status_led: Any = None,
        *,
        time_scale: float = 1.0,
        on_critical: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.status_led = status_led
        self.time_scale = time_scale
        self.on_critical = on_critical
        self._clock = clock
        self._counts = dict.fromkeys(ErrorLevel, 0)
        self._blinking: ErrorLevel | None = None
        self._blink_until = 0.0

    def counts(self) -> dict[str, int]:
        """How many errors of each level were reported, by level name."""
        return {level.value: count for level, count in self._counts.items()}

    def report(self, level: ErrorLevel | str, message: str) -> None:
        level = ErrorLevel(level)
        self._counts[level] += 1
        # One template per level: a log filter that groups records by template (the node's
        # LogThrottle) then holds back repeats of one level, never another level's first report.
        log.log(_LOG_LEVEL[level], f"{level.value} error: %s", message)
        self._blink(level)
        if level is ErrorLevel.CRITICAL:
            if self.on_critical is None:
                raise CriticalError(message)
            self.on_critical(message)

    def _blink(self, level: ErrorLevel) -> None:
        code = BLINK_CODES.get(level)
        if code is None or self.status_led is None:
            return
        now = self._clock()
        busy = self._blinking is not None and now < self._blink_until
        if busy and _SEVERITY[self._blinking] > _SEVERITY[level]:
            return
        on_s, off_s = code.on_s * self.time_scale, code.off_s * self.time_scale
        self.status_led.blink(on_time=on_s, off_time=off_s, n=code.count, background=True)
        self._blinking = level
        self._blink_until = now + code.count * (on_s + off_s)
