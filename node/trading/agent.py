"""The agent loop: every interval, sign orders, settle, and sign the meter reading.

For interval `k` (docs/protocol.md sections 6 and 8, from the charter version in force):
- once `k - 1` is settled (or its view deadline passed) and until `k`'s gate closes, sign this
  agent's offers/bids for `k` from its strategy (forecast from the scenario; a battery's state
  of charge from its last reading plus what it contracted since, so its orders never overrun
  capacity);
- from gate closure + grace, protocol 2 (`node.trading.settler`): sync with the live peers,
  sign the view, settle over the majority book, revise until the final deadline, or abstain;
- when `k` has ended, sign the meter `reading` for `k`.
Each step is signed once; after a restart the loop picks up from what its own chain holds, and
it first completes a gossip round with every live peer (it catches up) before it signs anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from hardware.meter import make_meter
from hardware.status import StatusReporter
from ledger.actions import Action
from ledger.chain import now_us
from ledger.charter import Charter
from ledger.paging import chain_pages
from ledger.store import Store
from market.book import deadlines
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
from node.config import NodeConfig
from node.devices.hardware import HardwareGlue, read_meter
from node.errors import NotSigned, UserError
from node.trading.interval_view import contracted_net, energy_window_ms, settled_trades
from node.trading.settler import Settler, Signed, Sync

log = logging.getLogger(__name__)
Append = Callable[[str, dict], Awaitable[Action]]
MAX_SLEEP_S = 1.0
SETTLING_SLEEP_S = 0.1  # between the gate's grace and the view deadline: views come quickly
CATCH_UP_MAX_S = 60.0  # a restarted node waits at most this long for its first rounds


class AgentLoop:
    """This agent's part in the market: it signs through `append`, reads `store`; `glue` and
    `status` (optional) are the hardware's meter thread and error reporter."""

    def __init__(self, cfg: NodeConfig, agent: bytes, store: Store, charters: list[Charter],
                 append: Append, metrics: Counter[str], glue: HardwareGlue | None = None,
                 status: StatusReporter | None = None, sync: Sync | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.charters = charters
        self.append = append
        self.metrics = metrics
        self.glue = glue
        self.status = status
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
        self.me = Participant(agent, cfg.name, cfg.role, cfg.household,
                              cfg.capacity_wh, cfg.max_power_w)
        self.meter = self._make_meter()
        self.ordered: set[int] = set()
        self.settled: set[int] = set()
        self.read: set[int] = set()
        self.unsigned_readings: dict[int, dict] = {}  # closed on the meter, not yet signed
        self.soc_wh = 0  # from the latest reading ...
        self.soc_interval = -(2**62)  # ... which was of this interval
        self.net_wh: dict[int, int] = {}  # per settled interval: bought - sold (contracted)
        self.planned: dict[int, tuple[int, int]] = {}  # per interval: (import, export) agreed
        self.interval_s = 1
        self.fed_through = -(2**62)  # the latest interval whose flows the meter was told
        self._known_name = self._in_scenario()
        self.settler = Settler(agent, cfg.grid, store, charters, append, metrics, sync, status)
        self.sync = self.settler.sync
        self.started_us = now_us()
        self.caught_up = False
        self._recover()
        self.last_settled: int | None = max(self.settled) if self.settled else None

    def _in_scenario(self) -> bool:
        try:
            self.scenario.agent(self.me.name)
            return True
        except KeyError:
            # Normal for any agent outside the kit (a real community): said once, not a fault.
            log.info("agent %r has no profile in scenario %r: it forecasts nothing (no demand, "
                     "no generation)", self.me.name, self.scenario.name)
            return False

    def _make_meter(self) -> Any:
        sensor_cfg = dict(self.cfg.extra.get("meter", {}))
        sensor_cfg.setdefault("capacity_wh", self.me.capacity_wh)
        return make_meter(self.me.role, sensor_cfg, sim=not self.cfg.hardware)

    def _recover(self) -> None:
        """What our own chain says we already did (a restart must not sign anything twice)."""
        me = self.me.agent
        for batch in chain_pages(self.store.chain, me):
            for a in batch:
                k = a.payload.get("interval") if a.type != "genesis" else None
                if a.type in ("offer", "bid"):
                    self.ordered.add(k)
                elif a.type == "view":
                    self.settler.recover(a)
                elif a.type == "settlement":
                    self.settled.add(k)
                    self.settler.recover(a)
                    trades = settled_trades(self.store, self.charters, self.cfg.grid, k, me,
                                            a.payload)
                    self.net_wh[k] = contracted_net(me, trades)
                elif a.type == "reading":
                    self.read.add(k)
                    if a.payload["soc_wh"] is not None:
                        self.soc_wh, self.soc_interval = a.payload["soc_wh"], k

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Step through the intervals until cancelled; a failed step is logged and retried."""
        while True:
            try:
                delay = await self.step()
            except asyncio.CancelledError:
                raise
            except NotSigned:  # a full disk or a clock set off: named and logged where it is seen
                delay = MAX_SLEEP_S
            except Exception:  # one bad interval must not stop the agent
                log.exception("agent step failed")
                delay = MAX_SLEEP_S
            await asyncio.sleep(delay)

    async def step(self) -> float:
        """Do what is due now; return how long to sleep until something may be due."""
        charters = self.charters
        if not charters:
            return MAX_SLEEP_S
        now = now_us()
        k = next_open_interval(charters, now)
        busy = not self._catch_up()  # nothing is viewed or settled over what we held at start
        for j in [] if busy else self._settling(k, now):
            for signed in await self.settler.advance(j, settles=j in self.ordered):
                self._settled(signed)
            busy = busy or j not in self.settler.finished
        for j in sorted(self.ordered - self.read):
            if interval_start_us(charters, j + 1) <= now:
                await self.sign_reading(j)
        # Orders for k wait for k-1's settlement: a battery must know what it already agreed.
        ready_at = settle_at_us(charters, k - 1)
        if k not in self.ordered and self._may_order(k, now_us()):
            await self.sign_orders(k)
        upcoming = [ready_at if now < ready_at else gate_closure_us(charters, k)]
        upcoming += [interval_start_us(charters, j + 1) for j in self.ordered - self.read]
        wait = (min(upcoming) - now_us()) / 1e6
        return min(SETTLING_SLEEP_S if busy else MAX_SLEEP_S, max(0.01, wait))

    def _catch_up(self) -> bool:
        """After a start or restart: True once a round with every live peer has completed (or
        `CATCH_UP_MAX_S` passed); until then no view or settlement is signed over what we hold
        (orders and readings are our own: they need no one else's actions)."""
        if self.caught_up:
            return True
        if self.sync.synced_since(self.started_us):
            log.info("caught up with the live peers; settling from now on")
        elif now_us() - self.started_us < CATCH_UP_MAX_S * 1e6:
            self.sync.sync_now(self.started_us)
            return False
        else:
            log.warning("could not sync with every live peer in %.0f s; going on",
                        CATCH_UP_MAX_S)
        self.caught_up = True
        return True

    def _settling(self, k: int, now: int) -> list[int]:
        """Intervals before `k` with protocol-2 steps due: their grace is over and they are not
        finished (still before their final deadline, or ordered and not yet settled)."""
        charters = self.charters
        c = charter_in_force(charters, k)
        back = -(-c.final_deadline_ms() // c.interval_ms) + 1
        due = {j for j in range(k - back, k) if deadlines(charters, j).view_from_us <= now}
        due |= {j for j in self.ordered - self.settled if j < k}
        return sorted(due - self.settler.finished)

    def _may_order(self, k: int, now: int) -> bool:
        """Whether to sign orders for `k` now: after `k - 1` is settled (or, at the latest,
        halfway from its settling time to `k`'s gate: a loaded node must not miss the gate) and
        before `k`'s gate."""
        ready_at, gate = settle_at_us(self.charters, k - 1), gate_closure_us(self.charters, k)
        if not ready_at <= now < gate:
            return False
        prev = k - 1
        resolved = prev not in self.ordered or prev in self.settled \
            or prev in self.settler.finished
        return resolved or now >= gate - (gate - ready_at) // 2

    def expected_soc(self) -> int:
        """The battery's charge once what it contracted after its latest reading is done."""
        soc = self.soc_wh + sum(n for j, n in self.net_wh.items() if j > self.soc_interval)
        return max(0, min(self.me.capacity_wh, soc))

    def forecast(self, k: int) -> tuple[int, int]:
        """(demand, generation) the scenario expects of this agent in interval `k`."""
        return self.scenario.expected(self.me.name, k) if self._known_name else (0, 0)

    async def sign_orders(self, k: int) -> None:
        """Sign this agent's offers or bids for interval `k`, from its strategy."""
        charter = charter_in_force(self.charters, k)
        rules = charter.grids.get(self.cfg.grid)
        self.ordered.add(k)
        if rules is None:
            return  # our grid has no market in this charter version
        demand, generation = self.forecast(k)
        ctx = StrategyContext(self.me, k, demand, generation, self.expected_soc(), rules,
                              energy_window_ms(charter))
        for intent in self.strategy.orders(ctx):
            if intent.energy_wh <= 0:
                continue
            await self.append(intent.side, {"interval": k, "energy_wh": intent.energy_wh,
                                                 "price": intent.price})
        self.metrics["orders_signed"] += 1

    def _settled(self, signed: Signed) -> None:
        """Book a settlement the settler signed: contracted energy, the meter's plan."""
        k = signed.interval
        first = k not in self.settled
        self.settled.add(k)
        self.last_settled = k if self.last_settled is None else max(self.last_settled, k)
        trades = [t.to_wire() for t in signed.clearing.trades_of(self.me.agent)]
        self.net_wh[k] = contracted_net(self.me.agent, trades)
        # What the meter will read in k if everyone delivers what was agreed.
        if k > self.fed_through:
            self.planned[k] = planned_meter(self.me, signed.clearing)
        self.interval_s = charter_interval_s(charter_in_force(self.charters, k).interval_ms)
        closing = (k - 1) in self.ordered - self.read and (k - 1) not in self.unsigned_readings
        if first and not closing:
            self._feed_meter(k)  # no close of k-1 on the meter to come, after which k is fed

    def _feed_meter(self, k: int) -> None:
        """The meter is told interval k's agreed flows (a real sensor ignores them)."""
        imported, exported = self.planned.pop(k, (0, 0))
        self.fed_through = max(self.fed_through, k)
        soc = None
        if self.me.role == "storage":
            soc = max(0, min(self.me.capacity_wh, self.expected_soc_before(k) + imported
                             - exported))
        try:
            self.meter.feed(k, imported, exported, interval_s=self.interval_s, soc_wh=soc)
        except ValueError as exc:
            log.warning("meter refused interval %d's flows: %s", k, exc)

    def expected_soc_before(self, k: int) -> int:
        """The battery's charge at the start of `k`, by its latest reading and contracts since."""
        soc = self.soc_wh + sum(n for j, n in self.net_wh.items() if self.soc_interval < j < k)
        return max(0, min(self.me.capacity_wh, soc))

    async def sign_reading(self, k: int) -> None:
        """Close interval `k` on the meter and sign its reading. The meter is closed once; a
        reading that could not be signed (a full disk, a clock set off) is kept and signed on a
        later step, so it is never lost."""
        reading = self.unsigned_readings.get(k)
        if reading is None:
            if self.fed_through < k:  # k's flows unknown (no market in k, or settled before a
                self._feed_meter(k)  # restart): the meter is told none
            # The last sample and the close run on the meter's own thread: a real sensor takes
            # about a second for its 10 reads; trouble is reported as MEASURING, never fatal.
            reading = await read_meter(self.meter, k, glue=self.glue, status=self.status)
            if (k + 1) in self.planned:  # from now on the meter measures k+1
                self._feed_meter(k + 1)
            self.unsigned_readings[k] = reading
        if reading.get("soc_wh") is not None:
            self.soc_wh, self.soc_interval = reading["soc_wh"], k
        await self.append("reading", reading)  # NotSigned: kept, and tried again next step
        del self.unsigned_readings[k]
        self.read.add(k)
        self.metrics["readings_signed"] += 1

def charter_interval_s(interval_ms: int) -> int:
    """A charter's interval in whole seconds (at least 1)."""
    return max(1, interval_ms // 1000)

