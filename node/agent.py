"""The agent loop: every interval, sign orders, settle, and sign the meter reading.

For interval `k` (PROTOCOL section 6 timing, from the charter version in force):
- while `k` is the next interval whose gate is open, sign this agent's offers/bids for `k`
  from its strategy (forecast from the scenario, battery state from its last reading);
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
from market.scenario import Scenario, ScenarioError, default_scenario, load_scenario
from market.strategies import StrategyContext, StrategyError, default_strategy, load_strategy
from node.errors import UserError
from node.market_view import energy_window_ms, interval_state

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
                                       else default_scenario())
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
        self.soc_wh = 0
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
                elif a.type == "reading":
                    self.read.add(k)
                    if a.payload["soc_wh"] is not None:
                        self.soc_wh = a.payload["soc_wh"]
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
        k = next_open_interval(charters, now)
        if k not in self.ordered and now < gate_closure_us(charters, k):
            await self.sign_orders(k)
        for j in sorted(self.ordered - self.settled):
            if settle_at_us(charters, j) <= now:
                await self.settle(j)
        for j in sorted(self.ordered - self.read):
            if interval_start_us(charters, j + 1) <= now:
                await self.sign_reading(j)
        upcoming = [gate_closure_us(charters, k)]
        upcoming += [settle_at_us(charters, j) for j in self.ordered - self.settled]
        upcoming += [interval_start_us(charters, j + 1) for j in self.ordered - self.read]
        wait = (min(upcoming) - now_us()) / 1e6
        return min(MAX_SLEEP_S, max(0.01, wait))

    def forecast(self, k: int) -> tuple[int, int]:
        return self.scenario.expected(self.me.name, k) if self._known_name else (0, 0)

    async def sign_orders(self, k: int) -> None:
        charter = charter_in_force(self.node.charters, k)
        rules = charter.grids.get(self.node.cfg.grid)
        self.ordered.add(k)
        if rules is None:
            return  # our grid has no market in this charter version
        demand, generation = self.forecast(k)
        ctx = StrategyContext(self.me, k, demand, generation, self.soc_wh, rules,
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
        # What the meter will read if everyone delivers what was agreed.
        imported, exported = planned_meter(self.me, state.clearing)
        self._feed_meter(imported, exported, charter_interval_s(state.charter.interval_ms))
        log.info("settled interval %d: %d trade(s), book of %d order(s)", k,
                 len(payload["trades"]), len(state.book))

    def _feed_meter(self, imported: int, exported: int, interval_s: int) -> None:
        from hardware.meter import feed_simulation

        try:
            soc = None
            if self.me.role == "storage":
                soc = max(0, min(self.me.capacity_wh, self.soc_wh + imported - exported))
            feed_simulation(self.meter, imported, exported, interval_s=interval_s, soc_wh=soc)
        except TypeError:
            pass  # a real sensor measures what really happens

    async def sign_reading(self, k: int) -> None:
        from hardware.ina219 import MeasurementError

        self.read.add(k)
        loop = asyncio.get_running_loop()
        try:  # a real sensor takes about a second for its 10 reads: off the event loop
            await loop.run_in_executor(None, self.meter.sample)
        except MeasurementError as exc:
            self.report_meter_error(exc)
        reading = await loop.run_in_executor(None, self.meter.close_interval, k)
        if reading.get("soc_wh") is not None:
            self.soc_wh = reading["soc_wh"]
        await self.node.append("reading", reading)
        self.node.metrics["readings_signed"] += 1


    def report_meter_error(self, exc: Exception) -> None:
        """Meter trouble never stops the agent: it is logged, counted and shown on the LED."""
        self.node.metrics["meter_errors:measuring"] += 1
        status = getattr(self.node, "status", None)
        if status is not None:
            status.report("measuring", str(exc))
        else:
            log.warning("meter: %s", exc)


def charter_interval_s(interval_ms: int) -> int:
    return max(1, interval_ms // 1000)

