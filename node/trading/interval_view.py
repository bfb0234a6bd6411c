"""The market as a node sees it: books, clearings, settlements and readings read from the store.

Everything here is computed from signed actions in the store and the charter, with the pure
functions of `market/`; the agent loop, the HTTP API and the auditor all use it, so they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.actions import Action
from ledger.charter import Charter, GridRules
from ledger.store import Store
from market.clearing import clear
from market.intervals import charter_in_force, gate_closure_us
from market.orders import Order, select_book
from market.participants import Participant
from market.results import Bill, baseline_net, interval_figures, kpis, reconcile, traded
from market.savings import SavingsBook
from market.settlement import TradeStatus, classify, settlement_payload
from market.trades import Clearing, Trade

DEMO_PACE_MS = 60_000
HOUR_MS = 3_600_000


def energy_window_ms(charter: Charter) -> int:
    """The time an interval's energy stands for, for battery power limits.

    A charter with intervals shorter than a minute runs a sped-up day (the demo, tests): each
    interval stands for an hour of the kit's day. Every node and auditor derives this from the
    charter alone, so clearing stays the same everywhere.
    """
    return HOUR_MS if charter.interval_ms < DEMO_PACE_MS else charter.interval_ms


def order_of(a: Action) -> Order:
    """A signed offer or bid as a market order."""
    p = a.payload
    return Order(a.hash, a.author, a.seq, a.type, p["interval"], p["energy_wh"], p["price"], a.ts)


def participants_of(store: Store, grid: str) -> dict[bytes, Participant]:
    """Every agent of `grid`, from its genesis."""
    return {
        r["author"]: Participant(r["author"], r["name"], r["role"], r["household"],
                                 r["capacity_wh"], r["max_power_w"])
        for r in store.agents() if r["grid"] == grid
    }


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
    clearing = None
    if rules is not None:
        try:
            clearing = clear(book, participants, rules, interval_ms=energy_window_ms(charter))
        except ValueError:  # a mechanism this version does not know: no market here
            clearing = None
    state = IntervalState(grid, k, charter, rules, participants, orders, book, clearing)
    for a in actions:  # ordered by author, seq: the latest action of each kind wins
        if a.author in forked:
            continue
        if a.type == "settlement":
            state.settlements[a.author] = a.payload
        elif a.type == "reading":
            state.readings[a.author] = a.payload
    state.statuses = classify(state.settlements, book)
    return state


def contracted_net(agent: bytes, settlement: dict) -> int:
    """What `agent` bought minus what it sold (Wh) by the trades of a signed settlement."""
    bought, sold = traded(agent, (Trade(*t) for t in settlement["trades"]))
    return bought - sold


def socs_before(store: Store, grid: str, k: int, participants: dict[bytes, Participant],
                lookback: int = 48) -> dict[bytes, int]:
    """Each battery's state of charge at the start of `k`: its latest reading's `soc_wh` (the
    charge at the END of the interval it reports, that interval's trades included) plus what it
    contracted in the settled intervals after that reading (readings of an interval are signed
    after the next one is already settled)."""
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
        for a in actions:
            if a.type == "settlement" and a.author not in socs:
                net[a.author] += contracted_net(a.author, a.payload)
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
