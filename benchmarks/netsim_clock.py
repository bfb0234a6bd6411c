"""A virtual clock for the network simulator: time dilation.

The simulator runs every node in one process on the machine's cores. Past a hundred nodes the
cores, not the simulated network, set the pace: a node that would have its own CPU waits for
the others' work. Dilation gives each node the CPU it would have: the clock the simulation reads
runs `slowdown` (K) times slower than real time, so a second of simulated time lasts K real
seconds, and K seconds of CPU fit in it.

How:
- `time.monotonic`, `time.time` (and their `_ns` forms) are replaced, for the length of the run,
  by functions that count real elapsed time divided by K from the moment of installation. The
  node code reads the time through the `time` module (`time.monotonic()`, `time.time_ns()`),
  and so does asyncio's `loop.time()`; all of it then sees virtual time. At installation the
  virtual clocks read what the real ones read (the wall clock keeps its real epoch).
- The event loop's selector waits K times the timeout the loop asks for: the loop computes its
  timeouts from virtual timers, so `asyncio.sleep(1)` lasts K real seconds, without waking more
  often than it would.
- Threads are real: the shared verify pool and the store writer run at real speed, so their work
  appears K times faster in virtual time. That is the point (each simulated node has its own
  core), and also the limit: figures assume a node's CPU is K times this process's share.

Objects that took `time.monotonic` as a default argument before installation (throttles of log
reports, the disk watch) keep the real clock; they only compare it with itself.

`LagProbe` measures whether K sufficed: how late a 100 ms virtual timer fires. When the loop
cannot keep up even with the dilated clock, its timers fire late, and this lag says so.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import time
from collections.abc import Coroutine
from typing import Any

_REAL_MONOTONIC_NS = time.monotonic_ns
_REAL_TIME_NS = time.time_ns
PROBE_EVERY_S = 0.1


def real_monotonic() -> float:
    """The real monotonic clock, whatever is installed."""
    return _REAL_MONOTONIC_NS() / 1e9


def auto_slowdown(nodes: int, per_core: int = 100) -> int:
    """The default slowdown: one for each `per_core` nodes begun."""
    return max(1, math.ceil(nodes / per_core))


class Dilation:
    """Virtual time running `slowdown` times slower than real time, from installation on."""

    def __init__(self, slowdown: float) -> None:
        if not slowdown >= 1:
            raise ValueError(f"slowdown must be at least 1, got {slowdown!r}")
        self.k = float(slowdown)
        self._saved: dict[str, Any] = {}
        self._mono0_ns = self._wall0_ns = 0

    def _elapsed_ns(self) -> int:
        return int((_REAL_MONOTONIC_NS() - self._mono0_ns) / self.k)

    def monotonic_ns(self) -> int:
        """Virtual monotonic clock, nanoseconds."""
        return self._mono0_ns + self._elapsed_ns()

    def monotonic(self) -> float:
        """Virtual monotonic clock, seconds."""
        return self.monotonic_ns() / 1e9

    def time_ns(self) -> int:
        """Virtual wall clock, nanoseconds since the Unix epoch."""
        return self._wall0_ns + self._elapsed_ns()

    def time(self) -> float:
        """Virtual wall clock, seconds since the Unix epoch."""
        return self.time_ns() / 1e9

    def real_elapsed(self) -> float:
        """Real seconds since installation."""
        return (_REAL_MONOTONIC_NS() - self._mono0_ns) / 1e9

    def install(self) -> None:
        """Replace the `time` module's clocks (K = 1 leaves them real)."""
        if self._saved:
            raise RuntimeError("this clock is installed already")
        self._mono0_ns, self._wall0_ns = _REAL_MONOTONIC_NS(), _REAL_TIME_NS()
        names = ("monotonic", "monotonic_ns", "time", "time_ns")
        self._saved = {name: getattr(time, name) for name in names}
        if self.k != 1:
            for name in names:
                setattr(time, name, getattr(self, name))

    def uninstall(self) -> None:
        """Put the real clocks back."""
        for name, real in self._saved.items():
            setattr(time, name, real)
        self._saved = {}

    def __enter__(self) -> Dilation:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()


def dilated_selector(slowdown: float) -> selectors.BaseSelector:
    """The platform's selector, waiting `slowdown` times each timeout it is given."""

    class DilatedSelector(selectors.DefaultSelector):
        def select(self, timeout: float | None = None):
            if timeout is not None and timeout > 0:
                timeout *= slowdown
            return super().select(timeout)

    return DilatedSelector()


def run(main: Coroutine, slowdown: float = 1) -> Any:
    """Run `main` to its end on an event loop whose clock is dilated `slowdown` times; its
    result. Slowdown 1 is asyncio.run, the real clock."""
    if slowdown == 1:
        return asyncio.run(main)
    with Dilation(slowdown), asyncio.Runner(
            loop_factory=lambda: asyncio.SelectorEventLoop(dilated_selector(slowdown))) as runner:
        return runner.run(main)


class LagProbe:
    """How late a timer of PROBE_EVERY_S fires on this loop, in virtual time, per phase."""

    def __init__(self, every_s: float = PROBE_EVERY_S) -> None:
        self.every_s = every_s
        self.phases: dict[str, list[float]] = {}
        self.current: list[float] = []
        self.task: asyncio.Task | None = None

    def phase(self, name: str) -> None:
        """Count the samples from now on under `name`."""
        self.current = self.phases.setdefault(name, [])

    def start(self) -> None:
        """Begin probing on the running loop."""
        self.task = asyncio.create_task(self._probe())

    async def stop(self) -> None:
        """Stop probing."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.every_s)
            self.current.append(loop.time() - asked - self.every_s)

    @staticmethod
    def summary(lags: list[float]) -> dict:
        """p50, p99 and max lag in milliseconds, and the number of samples."""
        if not lags:
            return {"samples": 0}
        ordered = sorted(lags)

        def at(q: float) -> float:
            return round(1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)

        return {"p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0),
                "samples": len(ordered)}

    def figures(self) -> dict:
        """The summary of every phase, and of all phases after the first (the cold start)."""
        out = {name: self.summary(lags) for name, lags in self.phases.items()}
        later = [lag for name, lags in list(self.phases.items())[1:] for lag in lags]
        out["after_settle"] = self.summary(later)
        return out
