"""The node's hardware: the status LED and error reports, its agent's LEDs, its meter.

    glue = HardwareGlue(cfg, store, charters, agent, peers, metrics, uptime, lifecycle)
    # Node.start keeps it (and its `status`) as optional services, listens, runs `glue.run()`

- `glue.status` is a `hardware.status.StatusReporter`: every error is logged and counted by level
  (critical, connection, sending, measuring, short, silent) and blinks its code on the status LED
  (BCM 17 or `[leds] status`): a real pin on a Pi with `[hardware] enabled = true`, else a mock
  pin (gpiozero's MockFactory). Only CRITICAL stops the node, cleanly (see `_critical`).
- Gossip connection failures are reported as CONNECTION when a peer stops answering, and when
  no peer answers at all; at most one report per `CONNECTION_EVERY_S`, the rest are summed into
  the next one.
- With `[hardware] enabled = true`, once this node settles an interval it sets the LEDs of its
  own agent (found on the kit's board by name, `hardware.led_map`; pins from the kit's map with
  the `[leds]` table's changes) by DESIGN's rules, and refines them every second while that is
  the latest interval settled (a counterparty's settlement or a reading may come later).
- With a `[meter.sensor]` table the agent's INA219 meter is sampled about once a second on a
  worker thread; a failed sample is reported as MEASURING. The agent signs its reading with
  `await read_meter(meter, k, glue=glue, status=glue.status)`, which takes the last sample on the same thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from gpiozero import LED

from hardware import gpio
from hardware.ina219 import MeasurementError
from hardware.led_map import assign_agents, led_states
from hardware.leds import HOME_KINDS, HOMES, STATUS_LED, LedMode, home_led, pin_map_from_config
from hardware.meter import Meter
from hardware.status import ErrorLevel, StatusReporter
from ledger.charter import Charter
from ledger.store import Store
from node.config import NodeConfig
from node.errors import UserError
from node.p2p.peers import PeerTable
from node.trading.interval_view import figures_of, interval_state, socs_before

if TYPE_CHECKING:
    from ledger.actions import Action

log = logging.getLogger(__name__)
POLL_S = 1.0
SAMPLE_EVERY_S = 1.0
CONNECTION_EVERY_S = 30.0
MEASURING_EVERY_S = 30.0
FLASH_ON_S = FLASH_OFF_S = 0.5


class Throttle:
    """At most one report per `every_s` seconds; reports held back are counted."""

    def __init__(self, every_s: float, clock=time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self.last = -float("inf")
        self.held = 0

    def allow(self) -> tuple[bool, int]:
        """(may report now, how many were held back since the last report)."""
        now = self.clock()
        if now - self.last < self.every_s:
            self.held += 1
            return False, 0
        held, self.held, self.last = self.held, 0, now
        return True, held


def own_led_states(store: Store, charters: list[Charter], grid: str, name: str,
                   k: int) -> dict[str, LedMode]:
    """The modes of agent `name`'s LEDs for interval `k` (empty before settlement or when the
    agent has no place on the kit's board)."""
    state = interval_state(store, charters, grid, k)
    if not state.settlements:
        return {}
    figures = figures_of(state, socs_before(store, grid, k, state.participants,
                                            charters=charters))
    agents = [
        {"name": p.name, "role": p.role, "household": p.household, "capacity_wh": p.capacity_wh}
        for p in state.participants.values()
    ]
    modes = led_states(agents, figures)
    place = {n: slot for slot, n in assign_agents(agents).items()}.get(name)
    if place is None:
        return {}
    names = [home_led(place, kind) for kind in HOME_KINDS] if place in HOMES else [place]
    return {name: modes[name] for name in names}


STARTUP_GRACE_S = 10.0


class Lifecycle(Protocol):
    """How the glue stops its node on a critical error (`Node` is one)."""

    managed: bool  # a runner waits on the node's stop event (`picogrid run`)

    def request_stop(self, reason: str = "") -> None:
        """Ask the runner to stop the node."""

    async def stop(self) -> None:
        """Stop the node now."""


class HardwareGlue:
    """Owns the node's pins and its `StatusReporter`; `pin_factory` and `time_scale` are for
    tests (a given factory and shorter blink codes). `meter` is the agent's, once it has one."""

    def __init__(self, cfg: NodeConfig, store: Store, charters: list[Charter], agent: bytes,
                 peers: PeerTable, metrics: Counter[str], uptime: Callable[[], float],
                 lifecycle: Lifecycle, *, pin_factory: Any = None,
                 time_scale: float = 1.0) -> None:
        self.cfg = cfg
        self.store = store
        self.charters = charters
        self.agent = agent
        self.peers = peers
        self.metrics = metrics
        self.uptime = uptime
        self.lifecycle = lifecycle
        self.meter: Meter | None = None
        try:
            self.pins = pin_map_from_config(cfg.extra.get("leds"))
        except ValueError as exc:
            raise UserError(f"{cfg.dir / 'config.toml'}: {exc}") from None
        self.status: StatusReporter | None = None
        self._problems: list[str] = []  # minor faults found before the reporter exists
        self.factory = pin_factory
        if self.factory is None:
            try:
                self.factory = gpio.pin_factory() if cfg.hardware else gpio.mock_pin_factory()
            except gpio.GpioUnavailable as exc:
                self._problems.append(f"LEDs unavailable: {exc}")
        self._leds: dict[str, Any] = {}
        self._broken: set[str] = set()  # LEDs whose pin could not be had: not tried again
        self.led_modes: dict[str, LedMode] = {}
        self.led_interval: int | None = None
        # One process owns the status LED; on a Pi running several agents' nodes (the demo with
        # --hardware), the others set `[hardware] status_led = false` and only log.
        owns_status = cfg.extra.get("hardware", {}).get("status_led", True) is not False
        status_led = self._led(STATUS_LED) if owns_status else None
        self.status = StatusReporter(status_led, time_scale=time_scale, on_critical=self._critical)
        for problem in self._problems:
            self.status.report(ErrorLevel.SHORT, problem)
        self.critical: str | None = None
        self.meter_pool = ThreadPoolExecutor(1, thread_name_prefix="meter")
        self.meter_lock = threading.Lock()
        self.samples = 0
        self._due: set[int] = set()
        self._showing: int | None = None  # the latest interval we settled: what the LEDs show
        self._wake = asyncio.Event()
        self._down: set[str] = set()  # peers whose failure was already reported
        self._connection = Throttle(CONNECTION_EVERY_S)
        self._measuring = Throttle(MEASURING_EVERY_S)
        self._stop_task: asyncio.Task | None = None
        self.startup_grace_s = STARTUP_GRACE_S

    # -- pins ------------------------------------------------------------------------------------

    def _led(self, name: str) -> Any:
        led = self._leds.get(name)
        if led is not None or name in self._broken or self.factory is None:
            return led
        try:
            led = LED(self.pins[name], pin_factory=self.factory)
        except Exception as exc:  # a pin in use, no permission: the node goes on without it
            self._broken.add(name)
            problem = f"LED {name!r} (BCM {self.pins[name]}) unavailable: {exc}"
            if self.status is None:
                self._problems.append(problem)
            else:
                self.status.report(ErrorLevel.SHORT, problem)
            return None
        self._leds[name] = led
        return led

    def apply(self, modes: dict[str, LedMode]) -> None:
        """Set our LEDs; an LED already in its mode is left alone (a flash keeps its rhythm)."""
        for name, mode in modes.items():
            if self.led_modes.get(name) is mode:
                continue
            led = self._led(name)
            if led is None:
                continue
            if mode is LedMode.OFF:
                led.off()
            elif mode is LedMode.SOLID:
                led.on()
            else:
                led.blink(on_time=FLASH_ON_S, off_time=FLASH_OFF_S, background=True)
            self.led_modes[name] = mode

    def close(self) -> None:
        """Turn every LED off and release its pin; stop the meter's thread."""
        for led in self._leds.values():
            try:
                led.off()
                led.close()
            except Exception:  # closing must not fail a shutdown
                log.debug("closing an LED failed", exc_info=True)
        self._leds.clear()
        self.meter_pool.shutdown(wait=False, cancel_futures=True)

    # -- critical: stop the node cleanly -----------------------------------------------------------

    def _critical(self, message: str) -> None:
        """Stop the node as `picogrid run` stops on SIGTERM: in-flight writes committed, pins and
        store closed. `lifecycle.request_stop()` when a runner waits on it (`picogrid run`); else SIGTERM to
        ourselves when a handler for it is installed (`picogrid run` has one); else `node.stop()`
        in a task of its own (an embedded node)."""
        self.critical = message
        self.metrics["critical_errors"] += 1
        if self.lifecycle.managed:  # picogrid run: it stops us and exits 1
            self.lifecycle.request_stop(message)
            return
        if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None):
            os.kill(os.getpid(), signal.SIGTERM)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.critical("critical error outside the event loop; stop the node: %s", message)
            return
        if self._stop_task is None:
            self._stop_task = loop.create_task(self.lifecycle.stop(), name="critical-stop")

    # -- the listener and the task -----------------------------------------------------------------

    async def on_new(self, actions: list[Action]) -> None:
        """Our own settlements wake the loop: the LEDs show the latest interval settled."""
        me = self.agent
        for a in actions:
            if a.author == me and a.type == "settlement":
                self._due.add(a.payload["interval"])
                self._wake.set()

    def has_sensor(self) -> bool:
        """Whether config has a `[meter.sensor]` table (a real INA219 to sample)."""
        return bool((self.cfg.extra.get("meter") or {}).get("sensor"))

    async def run(self) -> None:
        """Sample the meter, report peer trouble, refresh the LEDs; until cancelled."""
        sampler = None
        if self.has_sensor():
            sampler = asyncio.create_task(self._sample_loop(), name="meter-sampler")
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), POLL_S)
                except TimeoutError:
                    pass
                self._wake.clear()
                try:
                    self.check_peers()
                    if self._due:
                        if self._showing is not None:
                            self._due.add(self._showing)
                        self._showing = max(self._due)
                        self._due.clear()
                    if self._showing is not None and self.cfg.hardware:
                        # Again every second: settlements and readings that arrive late (a
                        # counterparty's, an order gossip brought after the gate) refine it.
                        k = self._showing
                        modes = await loop.run_in_executor(
                            None, own_led_states, self.store, self.charters, self.cfg.grid,
                            self.cfg.name, k)
                        self.apply(modes)
                        self.led_interval = k
                except asyncio.CancelledError:
                    raise
                except Exception:  # the LEDs must never stop the node
                    log.exception("hardware step failed")
        finally:
            if sampler is not None:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
            self.close()

    def check_peers(self, now: float | None = None) -> None:
        """Report CONNECTION when a peer starts failing, and when none answers (throttled)."""
        now = time.monotonic() if now is None else now
        if self.uptime() < self.startup_grace_s:
            return  # peers started together are still coming up
        peers = self.peers.all()
        fresh = []
        for peer in peers:
            if peer.failures > 0 and peer.url not in self._down:
                self._down.add(peer.url)
                fresh.append(peer)
            elif peer.failures == 0:
                self._down.discard(peer.url)
        if not fresh:
            return
        ok, held = self._connection.allow()
        if not ok:
            return
        everyone = all(p.failures > 0 for p in peers)
        what = "; ".join(f"{p.url}: {p.last_error or 'no answer'}" for p in fresh[:3])
        more = f" (+{held} earlier failure(s) not logged)" if held else ""
        head = f"no peer answers ({len(peers)} known)" if everyone else "peer unreachable"
        self.status.report(ErrorLevel.CONNECTION, f"{head}: {what}{more}")

    # -- the meter ---------------------------------------------------------------------------------

    async def _sample_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = time.monotonic()
            meter = self.meter
            if meter is not None:
                error = await loop.run_in_executor(self.meter_pool, self._sample, meter)
                if error is not None:
                    self.report_measuring(f"meter {meter.sensor}: {error}")
            await asyncio.sleep(max(0.05, SAMPLE_EVERY_S - (time.monotonic() - started)))

    def _sample(self, meter: Meter) -> Exception | None:
        with self.meter_lock:
            try:
                meter.sample()
            except (MeasurementError, OSError) as exc:
                return exc
            self.samples += 1
            return None

    def report_measuring(self, message: str) -> None:
        """Report a MEASURING error, at most once per MEASURING_EVERY_S."""
        ok, held = self._measuring.allow()
        if ok:
            more = f" (+{held} earlier failed sample(s) not logged)" if held else ""
            self.status.report(ErrorLevel.MEASURING, message + more)


async def read_meter(meter: Meter, interval: int, glue: HardwareGlue | None = None,
                     status: StatusReporter | None = None) -> dict:
    """Take the last sample of `interval` and close it: the `reading` payload to sign.

    Runs on the meter's worker thread (never blocking the event loop, never racing the sampler).
    A failed last sample is reported as MEASURING and the reading is still made from the samples
    taken; a meter that can't close the interval at all is reported and the error raised."""
    pool = glue.meter_pool if glue is not None else None
    lock = glue.meter_lock if glue is not None else threading.Lock()

    def work() -> tuple[dict, Exception | None]:
        with lock:
            error = None
            try:
                meter.sample()
            except (MeasurementError, OSError) as exc:
                error = exc
            return meter.close_interval(interval), error

    def report(message: str) -> None:
        if status is None:
            log.error("measuring error: %s", message)
        else:
            status.report(ErrorLevel.MEASURING, message)

    sensor = meter.sensor
    try:
        reading, error = await asyncio.get_running_loop().run_in_executor(pool, work)
    except (MeasurementError, OSError, ValueError, TypeError) as exc:
        report(f"meter {sensor}: no reading for interval {interval}: {exc}")
        raise
    if error is not None:
        report(f"meter {sensor}: last sample of interval {interval} failed: {error}")
    return reading

