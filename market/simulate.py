"""`picogrid simulate`: run a scenario's market alone, offline, deterministically.

Every interval, each agent's strategy turns its forecast (the scenario's expected demand or
generation) and its battery state into orders; the book is cleared with the mechanism; the
meters are assumed to read the forecast (a home consumes its expected demand, a generator
produces its expected output, a battery moves what it traded), so a strategy that bids less or
offers more than its forecast shows up as imbalance in the bills.

Simulated agent ids are BLAKE2b-256 of the names; order hashes are BLAKE2b-256 of the canonical
encoding of the order's fields (`market.orders.make_order`). Nothing else varies: the same
scenario gives the same result, byte for byte.
"""

from __future__ import annotations

from dataclasses import replace

from ledger.charter import MECHANISMS
from market.battery import battery_limits
from market.clearing import clear
from market.orders import SIDES, Order, make_order, select_book
from market.participants import Participant
from market.report import format_report
from market.results import Bill, baseline_net, interval_figures, kpis, next_socs, reconcile
from market.savings import SavingsBook
from market.scenario import ENERGY_INTERVAL_MS, AgentSpec, Scenario
from market.strategies import (
    OrderIntent,
    Strategy,
    StrategyContext,
    StrategyError,
    default_strategy,
    load_strategy,
)

__all__ = ["format_report", "simulate"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked(intent: object, ctx: StrategyContext) -> OrderIntent | None:
    """A strategy's order as the simulator lets it through: well-formed, and for a battery no
    more than it can physically discharge or absorb. None for an empty order."""
    who = ctx.participant
    if (
        not isinstance(intent, OrderIntent)
        or intent.side not in SIDES
        or not _is_int(intent.energy_wh)
        or not _is_int(intent.price)
        or intent.energy_wh < 0
        or intent.price < 0
    ):
        raise StrategyError(f"the strategy of {who.name!r} returned a bad order: {intent!r}")
    energy = intent.energy_wh
    if who.role == "storage":
        discharge, charge = battery_limits(who, ctx.soc_wh, ctx.interval_ms)
        energy = min(energy, discharge if intent.side == "offer" else charge)
    return replace(intent, energy_wh=energy) if energy > 0 else None


def _orders(
    k: int,
    agents: list[tuple[Participant, AgentSpec, Strategy]],
    socs: dict[bytes, int],
    seqs: dict[bytes, int],
    rules,
) -> list[Order]:
    orders = []
    for who, spec, strategy in agents:
        demand, generation = spec.expected(k)
        ctx = StrategyContext(
            who, k, demand, generation, socs.get(who.agent, 0), rules, ENERGY_INTERVAL_MS
        )
        for intent in strategy.orders(ctx):
            checked = _checked(intent, ctx)
            if checked is None:
                continue
            seqs[who.agent] += 1
            orders.append(
                make_order(
                    who.agent, seqs[who.agent], checked.side, k, checked.energy_wh, checked.price
                )
            )
    return orders


def _interval_count(scenario: Scenario, intervals: int | None, mechanism: str | None) -> int:
    """The number of intervals to run, once both arguments are checked (ValueError)."""
    if mechanism is not None and mechanism not in MECHANISMS:
        raise ValueError(
            f"unknown mechanism {mechanism!r}: expected one of {', '.join(MECHANISMS)}"
        )
    count = scenario.intervals if intervals is None else intervals
    if count < 0:
        raise ValueError("the number of intervals must be >= 0")
    return count


def _metered(k: int, agents: list) -> dict[bytes, tuple[int, int]]:
    """What the meters of consumers and generators read in `k`: their forecast, exactly."""
    metered = {}
    for who, spec, _ in agents:
        demand, generation = spec.expected(k)
        if who.role != "storage":
            metered[who.agent] = (demand, generation)
    return metered


def _trade_rows(clearing, names: dict[bytes, str]) -> list[dict]:
    """The interval's trades, by the names of both sides."""
    return [
        {"seller": names[t.seller], "buyer": names[t.buyer], "energy_wh": t.energy_wh,
         "price": t.price}
        for t in clearing.trades
    ]


def simulate(
    scenario: Scenario, intervals: int | None = None, mechanism: str | None = None
) -> dict:
    """Run `intervals` intervals (default: the scenario's) with `mechanism` (default: the
    scenario's) and return the `picogrid simulate --json` object."""
    count = _interval_count(scenario, intervals, mechanism)
    rules = replace(scenario.rules, mechanism=mechanism) if mechanism else scenario.rules
    participants = scenario.participants()
    agents = [
        (who, spec, load_strategy(spec.strategy) if spec.strategy else default_strategy(spec.role))
        for who, spec in zip(participants.values(), scenario.agents, strict=True)
    ]
    socs = {who.agent: 0 for who in participants.values() if who.role == "storage"}
    seqs = {who.agent: 0 for who in participants.values()}  # seq 0 is each agent's genesis
    bills = {who.name: Bill() for who in participants.values()}
    baselines = {who.name: 0 for who in participants.values()}
    names = {who.agent: who.name for who in participants.values()}
    rows, all_figures = [], []
    book_of_savings = SavingsBook()
    for k in range(count):
        book = select_book(
            _orders(k, agents, socs, seqs, rules),
            gate_us=0,
            members=set(participants),
            forked=set(),
        )
        clearing = clear(book, participants, rules, interval_ms=ENERGY_INTERVAL_MS)
        metered = _metered(k, agents)
        figures = interval_figures(participants, clearing, socs, metered)
        book_of_savings.add(participants, rules, clearing.trades, socs)
        socs = next_socs(participants, clearing, socs)
        grid_in = grid_out = 0
        for who in participants.values():
            imported, exported = metered.get(who.agent) or (
                figures[who.name]["charged_wh"],
                figures[who.name]["discharged_wh"],
            )
            reading = {"import_wh": imported, "export_wh": exported}
            bill = reconcile(who.agent, clearing.trades_of(who.agent), reading, rules)
            bills[who.name] += bill
            baselines[who.name] += baseline_net(who, reading, rules)
            grid_in += bill.imbalance_import_wh
            grid_out += bill.imbalance_export_wh
        all_figures.append(figures)
        rows.append({"interval": k, "agents": figures, "trades": _trade_rows(clearing, names),
                     "grid_import_wh": grid_in, "grid_export_wh": grid_out})
    return {
        "scenario": scenario.name,
        "mechanism": rules.mechanism,
        "agents": [
            {"name": s.name, "role": s.role, "household": s.household, "capacity_wh": s.capacity_wh}
            for s in scenario.agents
        ],
        "intervals": rows,
        "kpis": kpis(participants, all_figures, bills, baselines,
                     {names[a]: c for a, c in book_of_savings.credits.items()}),
    }
