"""The agent loop: every interval, sign orders, settle, and sign the meter reading.

For interval `k` (PROTOCOL section 6 timing, from the charter version in force):
- once `k - 1` is settled and until `k`'s gate closes, sign this agent's offers/bids for `k`
  from its strategy (forecast from the scenario; a battery's state of charge from its last
  reading plus what it contracted since, so its orders never overrun capacity);
- at gate closure + grace, clear the book held for `k` and sign this agent's `settlement`;
- when `k` has ended, sign the meter `reading` for `k`.
Each step is signed once; after a restart the loop picks up from what its own chain holds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ledger.chain import now_us
from market.intervals import (
    charter_in_force,
    gate_closure_us,
    interval_start_us,
    next_open_interval,
    settle_at_us,
)
from market.participants import Participant
from market.results import planned_meter
from market.scenario import Scenario, ScenarioError, day_scenario, load_scenario
from market.strategies import StrategyContext, StrategyError, default_strategy, load_strategy
from node.errors import UserError
from node.trading.interval_view import energy_window_ms, interval_state

if TYPE_CHECKING:
    from node.node import Node

log = logging.getLogger("picogrid.agent")
MAX_SLEEP_S = 1.0


class AgentLoop:
    def __init__(self, node: Node) -> None:
        self.node = node
        cfg = node.cfg
        try:
            self.scenario: Scenario = (load_scenario(cfg.scenario) if cfg.scenario
                                       else day_scenario())
        except ScenarioError as exc:
            raise UserError(f"scenario {cfg.scenario}: {exc}") from None
        try:
            self.strategy = load_strategy(cfg.strategy) if cfg.strategy else \
                default_strategy(cfg.role)
        except StrategyError as exc:
            raise UserError(f"strategy {cfg.strategy!r}: {exc}") from None
        self.me = Participant(node.identity.agent, cfg.name, cfg.role, cfg.household,
                              cfg.capacity_wh, cfg.max_power_w)
        self.meter = self._make_meter()
        self.ordered: set[int] = set()
        self.settled: set[int] = set()
        self.read: set[int] = set()
        self.soc_wh = 0  # from the latest reading ...
        self.soc_interval = -(2**62)  # ... which was of this interval
        self.net_wh: dict[int, int] = {}  # per settled interval: bought - sold (contracted)
        self.planned: dict[int, tuple[int, int]] = {}  # per interval: (import, export) agreed
        self.interval_s = 1
        self._known_name = self._in_scenario()
        self._recover()
        self.last_settled: int | None = max(self.settled) if self.settled else None

    def _in_scenario(self) -> bool:
        try:
            self.scenario.agent(self.me.name)
            return True
        except KeyError:
            log.warning("agent %r is not in scenario %r: it forecasts no demand or generation",
                        self.me.name, self.scenario.name)
            return False

    def _make_meter(self):
        from hardware.meter import make_meter

        sensor_cfg = dict(self.node.cfg.extra.get("meter", {}))
        sensor_cfg.setdefault("capacity_wh", self.me.capacity_wh)
        return make_meter(self.me.role, sensor_cfg, sim=not self.node.cfg.hardware)

    def _recover(self) -> None:
        """What our own chain says we already did (a restart must not sign anything twice)."""
        store, me = self.node.store, self.me.agent
        start = 0
        while batch := store.chain(me, start, 1000):
            for a in batch:
                k = a.payload.get("interval") if a.type != "genesis" else None
                if a.type in ("offer", "bid"):
                    self.ordered.add(k)
                elif a.type == "settlement":
                    self.settled.add(k)
                    self.net_wh[k] = self._net(a.payload)
                elif a.type == "reading":
                    self.read.add(k)
                    if a.payload["soc_wh"] is not None:
                        self.soc_wh, self.soc_interval = a.payload["soc_wh"], k
            start += len(batch)

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                delay = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad interval must not stop the agent
                log.exception("agent step failed")
                delay = MAX_SLEEP_S
            await asyncio.sleep(delay)

    async def step(self) -> float:
        """Do what is due now; return how long to sleep until something may be due."""
        charters = self.node.charters
        if not charters:
            return MAX_SLEEP_S
        now = now_us()
        for j in sorted(self.ordered - self.settled):
            if settle_at_us(charters, j) <= now:
                await self.settle(j)
        for j in sorted(self.ordered - self.read):
            if interval_start_us(charters, j + 1) <= now:
                await self.sign_reading(j)
        k = next_open_interval(charters, now)
        # Orders for k wait for k-1's settlement: a battery must know what it already agreed.
        ready_at = settle_at_us(charters, k - 1)
        if k not in self.ordered and ready_at <= now < gate_closure_us(charters, k):
            await self.sign_orders(k)
        upcoming = [ready_at if now < ready_at else gate_closure_us(charters, k)]
        upcoming += [settle_at_us(charters, j) for j in self.ordered - self.settled]
        upcoming += [interval_start_us(charters, j + 1) for j in self.ordered - self.read]
        wait = (min(upcoming) - now_us()) / 1e6
        return min(MAX_SLEEP_S, max(0.01, wait))

    def expected_soc(self) -> int:
        """The battery's charge once what it contracted after its latest reading is done."""
        soc = self.soc_wh + sum(n for j, n in self.net_wh.items() if j > self.soc_interval)
        return max(0, min(self.me.capacity_wh, soc))

    def _net(self, settlement: dict) -> int:
        me = self.me.agent
        return sum((t[2] if t[1] == me else 0) - (t[2] if t[0] == me else 0)
                   for t in settlement["trades"])

    def forecast(self, k: int) -> tuple[int, int]:
        return self.scenario.expected(self.me.name, k) if self._known_name else (0, 0)

    async def sign_orders(self, k: int) -> None:
        charter = charter_in_force(self.node.charters, k)
        rules = charter.grids.get(self.node.cfg.grid)
        self.ordered.add(k)
        if rules is None:
            return  # our grid has no market in this charter version
        demand, generation = self.forecast(k)
        ctx = StrategyContext(self.me, k, demand, generation, self.expected_soc(), rules,
                              energy_window_ms(charter))
        for intent in self.strategy.orders(ctx):
            if intent.energy_wh <= 0:
                continue
            await self.node.append(intent.side, {"interval": k, "energy_wh": intent.energy_wh,
                                                 "price": intent.price})
        self.node.metrics["orders_signed"] += 1

    async def settle(self, k: int) -> None:
        self.settled.add(k)
        loop = asyncio.get_running_loop()
        state = await loop.run_in_executor(
            None, interval_state, self.node.store, self.node.charters, self.node.cfg.grid, k
        )
        payload = state.payload_for(self.me.agent)
        if payload is None:
            return
        await self.node.append("settlement", payload)
        self.node.metrics["intervals_settled"] += 1
        self.last_settled = k
        self.net_wh[k] = self._net(payload)
        # What the meter will read in k if everyone delivers what was agreed.
        self.planned[k] = planned_meter(self.me, state.clearing)
        self.interval_s = charter_interval_s(state.charter.interval_ms)
        from hardware.meter import SimulatedMeter

        if not isinstance(self.meter, SimulatedMeter) and (k - 1) not in self.ordered - self.read:
            self._feed_meter(k)  # no reading of k-1 to come that would set k's load
        log.info("settled interval %d: %d trade(s), book of %d order(s)", k,
                 len(payload["trades"]), len(state.book))

    def _feed_meter(self, k: int) -> None:
        """A simulated meter is told interval k's agreed flows (a real sensor measures them)."""
        from hardware.meter import feed_simulation

        imported, exported = self.planned.pop(k, (0, 0))
        soc = None
        if self.me.role == "storage":
            soc = max(0, min(self.me.capacity_wh, self.expected_soc_before(k) + imported
                             - exported))
        try:
            feed_simulation(self.meter, imported, exported,
                            interval_s=getattr(self, "interval_s", 1), soc_wh=soc)
        except TypeError:
            pass  # real hardware
        except ValueError as exc:
            log.warning("simulated meter refused interval %d's flows: %s", k, exc)

    def expected_soc_before(self, k: int) -> int:
        soc = self.soc_wh + sum(n for j, n in self.net_wh.items() if self.soc_interval < j < k)
        return max(0, min(self.me.capacity_wh, soc))

    async def sign_reading(self, k: int) -> None:
        from hardware.meter import SimulatedMeter
        from node.devices.hardware import read_meter

        self.read.add(k)
        simulated = isinstance(self.meter, SimulatedMeter)
        if simulated:  # told its flows at the end of the interval it reports
            self._feed_meter(k)
        # The last sample and the close run on the meter's own thread: a real sensor takes about
        # a second for its 10 reads; trouble is reported as MEASURING, never fatal.
        reading = await read_meter(self.node, self.meter, k)
        if not simulated and (k + 1) in self.planned:  # a simulated chip carries k+1's load
            self._feed_meter(k + 1)
        if reading.get("soc_wh") is not None:
            self.soc_wh, self.soc_interval = reading["soc_wh"], k
        await self.node.append("reading", reading)
        self.node.metrics["readings_signed"] += 1


def charter_interval_s(interval_ms: int) -> int:
    return max(1, interval_ms // 1000)

