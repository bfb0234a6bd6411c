"""The market as a node sees it: books, clearings, settlements and readings read from the store.

Everything here is computed from signed actions in the store and the charter, with the pure
functions of `market/`; the agent loop, the HTTP API and the auditor all use it, so they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.chain import now_us
from ledger.charter import Charter, GridRules
from ledger.store import Store
from market.book import Book, deadlines
from market.clearing import clear
from market.disputes import TradeOutcome, first_and_counting, outcomes
from market.intervals import charter_in_force, gate_closure_us
from market.orders import Order, select_book
from market.participants import Participant
from market.results import Bill, baseline_net, interval_figures, kpis, reconcile, traded
from market.savings import SavingsBook
from market.settle import is_v2, listed_trades
from market.settlement import TradeStatus, classify, settlement_payload
from market.trades import Clearing, Trade
from node.trading.grid_views import (
    book_of,
    defaults_of,
    energy_window_ms,
    expanded,
    has_views,
    order_of,
    participants_of,
    settlement_history,
    views_context,
)

__all__ = ["IntervalState", "bills_of", "confirmed_trades", "contracted_net", "energy_window_ms",
           "figures_of", "interval_state", "kpis_of", "order_of", "participants_of",
           "settled_trades", "socs_before"]


@dataclass
class IntervalState:
    """One grid's interval `k`: the book, how it clears, and what the agents signed."""

    grid: str
    interval: int
    charter: Charter
    rules: GridRules | None
    participants: dict[bytes, Participant]
    orders: list[Order]  # every order held for k, before the gate and fork filters
    book: list[Order]
    clearing: Clearing | None
    settlements: dict[bytes, dict] = field(default_factory=dict)
    readings: dict[bytes, dict] = field(default_factory=dict)
    statuses: list[TradeStatus] = field(default_factory=list)
    # Protocol 2 (the interval has views or version-2 settlements):
    views_book: Book | None = None  # the book the views held give (None: version 1)
    outcomes: list[TradeOutcome] = field(default_factory=list)
    trades_of: dict[bytes, list] = field(default_factory=dict)  # counting settlements' trades
    defaulters: list[bytes] = field(default_factory=list)  # agents that never settled `k`
    excluded: list[bytes] = field(default_factory=list)  # recent defaulters kept out of `k`

    def payload_for(self, agent: bytes) -> dict | None:
        """The settlement `agent` signs for this interval (None without a clearing)."""
        if self.clearing is None or self.rules is None:
            return None
        return settlement_payload(agent, self.interval, self.rules.mechanism, self.book,
                                  self.clearing)


def interval_state(store: Store, charters: list[Charter], grid: str, k: int) -> IntervalState:
    """Interval `k` of `grid` read from the store and cleared."""
    charter = charter_in_force(charters, k)
    rules = charter.grids.get(grid)
    participants = participants_of(store, grid)
    forked = store.forked_authors()
    actions = store.by_interval(grid, k, ("offer", "bid", "settlement", "reading"))
    orders = [order_of(a) for a in actions if a.type in ("offer", "bid")]
    book = select_book(orders, gate_us=gate_closure_us(charters, k),
                       members=set(participants), forked=forked)
    state = IntervalState(grid, k, charter, rules, participants, orders, book, None)
    for a in actions:  # ordered by author, seq: the latest action of each kind wins
        if a.author in forked:
            continue
        if a.type == "settlement":
            state.settlements[a.author] = a.payload
        elif a.type == "reading":
            state.readings[a.author] = a.payload
    protocol2 = any(is_v2(p) for p in state.settlements.values()) or has_views(store, grid, k)
    if rules is not None and protocol2:
        _over_views(store, charters, state)
        return state
    state.clearing = _cleared(state, book)
    state.statuses = classify(state.settlements, book)
    state.trades_of = {a: list(p["trades"]) for a, p in state.settlements.items()}
    return state


def _cleared(state: IntervalState, book: list[Order]) -> Clearing | None:
    if state.rules is None:
        return None
    try:
        return clear(book, state.participants, state.rules,
                     interval_ms=energy_window_ms(state.charter))
    except ValueError:  # a mechanism this version does not know: no market here
        return None


def _over_views(store: Store, charters: list[Charter], state: IntervalState) -> None:
    """Protocol 2: the book of the views, each trade's outcome, the defaulters."""
    k, grid = state.interval, state.grid
    ctx = views_context(store, charters, grid, k, state.orders, state.participants)
    assert ctx is not None
    state.views_book = book_of(ctx)
    state.book = list(state.views_book.orders)
    state.clearing = _cleared(state, state.book)
    history = settlement_history(store, grid, k, ctx)
    final_us = deadlines(charters, k).final_us
    state.outcomes = outcomes(history, final_us=final_us, now_us=now_us())
    state.statuses = [TradeStatus(o.trade, o.status) for o in state.outcomes]
    for agent, signed in history.items():
        counting = first_and_counting(signed, final_us)[1]
        if counting is not None and counting.trades is not None:
            state.trades_of[agent] = [list(t) for t in counting.trades]
    state.defaulters = sorted(defaults_of(store, charters, grid, k)) if now_us() > final_us \
        else []
    state.excluded = sorted(ctx.excluded)


def contracted_net(agent: bytes, trades: list) -> int:
    """What `agent` bought minus what it sold (Wh) by a settlement's trades (wire form)."""
    bought, sold = traded(agent, (Trade(*t) for t in trades))
    return bought - sold


def settled_trades(store: Store, charters: list[Charter] | None, grid: str, k: int,
                   author: bytes, payload: dict) -> list:
    """A signed settlement's trades: listed, or expanded from the views it names ([] when it
    cannot be expanded here)."""
    trades = listed_trades(payload)
    if trades is not None or not charters:
        return trades or []
    orders = [order_of(a) for a in store.by_interval(grid, k, ("offer", "bid"))]
    ctx = views_context(store, charters, grid, k, orders, participants_of(store, grid))
    return expanded(author, payload, ctx, {}) or []


def socs_before(store: Store, grid: str, k: int, participants: dict[bytes, Participant],
                lookback: int = 48, charters: list[Charter] | None = None) -> dict[bytes, int]:
    """Each battery's state of charge at the start of `k`: its latest reading's `soc_wh` (the
    charge at the END of the interval it reports, that interval's trades included) plus what it
    contracted in the settled intervals after that reading (readings of an interval are signed
    after the next one is already settled). Only an agent's latest settlement of an interval
    counts (a revision replaces the first); with `charters`, a settlement that carries only a
    digest is expanded."""
    storage = {a: p for a, p in participants.items() if p.role == "storage"}
    net: dict[bytes, int] = dict.fromkeys(storage, 0)
    socs: dict[bytes, int] = {}
    for j in range(k - 1, k - 1 - lookback, -1):
        if len(socs) == len(storage):
            break
        actions = [a for a in store.by_interval(grid, j, ("reading", "settlement"))
                   if a.author in storage and a.author not in socs]
        # A reading of j already holds j's own settlement: only later intervals are added.
        for a in actions:
            if a.type == "reading" and a.payload["soc_wh"] is not None:
                socs[a.author] = a.payload["soc_wh"] + net[a.author]
        latest = {a.author: a for a in actions if a.type == "settlement"}  # by seq: the last
        for author, a in latest.items():
            if author not in socs:
                trades = settled_trades(store, charters, grid, j, author, a.payload)
                net[author] += contracted_net(author, trades)
    for agent, who in storage.items():
        socs[agent] = max(0, min(who.capacity_wh, socs.get(agent, net[agent])))
    return socs


def figures_of(state: IntervalState, socs: dict[bytes, int], by_id: bool = False
               ) -> dict[str, dict]:
    """Per agent (name, or id in hex with `by_id`), the interval's figures (metered where read)."""
    if state.clearing is None:
        return {}
    metered = {a: (r["import_wh"], r["export_wh"]) for a, r in state.readings.items()}
    return interval_figures(state.participants, state.clearing, socs, metered, by_id=by_id)


def kpis_of(states: list[tuple[IntervalState, dict[bytes, int]]], by_id: bool = False,
            need_bills: bool = True) -> dict | None:
    """KPIs over settled intervals (each with its batteries' charge before it), savings valued
    as `market.savings` says; keyed by name or (`by_id`) by agent id hex. None: no bills yet
    (with `need_bills`)."""
    book = SavingsBook()
    bills: dict[bytes, Bill] = {}
    baselines: dict[bytes, int] = {}
    figures, participants = [], {}
    for state, socs in states:
        participants = {**participants, **state.participants}
        figures.append(figures_of(state, socs, by_id))
        if state.rules is not None:
            book.add(state.participants, state.rules, confirmed_trades(state), socs)
        ib, ibase = bills_of(state)
        for a, b in ib.items():
            bills[a] = bills[a] + b if a in bills else b
            baselines[a] = baselines.get(a, 0) + ibase[a]
    if need_bills and not bills:
        return None

    def key(a: bytes) -> str:
        return a.hex() if by_id else participants[a].name

    known = [a for a in bills if a in participants]
    return kpis(participants, figures, {key(a): bills[a] for a in known},
                {key(a): baselines[a] for a in known},
                {key(a): c for a, c in book.credits.items() if a in participants}, by_id=by_id)


def confirmed_trades(state: IntervalState) -> list[Trade]:
    """The trades both sides settled."""
    return [s.trade for s in state.statuses if s.status == "confirmed"]


def bills_of(state: IntervalState) -> tuple[dict[bytes, Bill], dict[bytes, int]]:
    """Per agent with a reading: the interval's bill and its grid-only baseline."""
    bills, baselines = {}, {}
    if state.rules is None:
        return bills, baselines
    trades = confirmed_trades(state)
    for agent, reading in state.readings.items():
        who = state.participants.get(agent)
        if who is None:
            continue
        bills[agent] = reconcile(agent, trades, reading, state.rules)
        baselines[agent] = baseline_net(who, reading, state.rules)
    return bills, baselines
