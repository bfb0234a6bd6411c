"""Reports over a range of intervals, shared by the HTTP API and `picogrid export`: trades as
rows, and each agent's bills summed with its grid-only baseline."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.charter import Charter
from ledger.store import Store
from market.results import Bill
from market.savings import SavingsBook
from market.settlement import TradeStatus
from node.trading.interval_view import (
    IntervalState,
    bills_of,
    confirmed_trades,
    interval_state,
    socs_before,
)

UNITS = "energy in Wh, money in milli-cents"


def trade_json(status: TradeStatus, names: dict[bytes, str], k: int) -> dict:
    """One trade of interval `k` as a JSON row (names of both sides, its status)."""
    t = status.trade
    return {
        "interval": k,
        "seller": t.seller.hex(), "buyer": t.buyer.hex(),
        "seller_name": names.get(t.seller), "buyer_name": names.get(t.buyer),
        "energy_wh": t.energy_wh, "price": t.price,
        "offer": t.offer.hex(), "bid": t.bid.hex(),
        "status": status.status,
        "missing": {a.hex(): [h.hex() for h in hs] for a, hs in status.missing.items()},
    }


def trades_in(store: Store, charters: list[Charter], grid: str, frm: int, to: int,
              agent: bytes | None) -> list[dict]:
    """Every trade of intervals `frm`..`to` (only `agent`'s when given), as JSON rows."""
    rows = []
    for k in range(frm, to + 1):
        state = interval_state(store, charters, grid, k)
        names = {a: p.name for a, p in state.participants.items()}
        for s in state.statuses:
            if agent is None or agent in (s.trade.seller, s.trade.buyer):
                rows.append(trade_json(s, names, k))
    return rows


@dataclass(slots=True)
class BillTotals:
    """Bills summed per agent over the intervals added, with the savings credits of
    `market.savings` (stored energy valued at its cost, gifts inside a household at feed-in)."""

    rows: dict[bytes, list[dict]] = field(default_factory=dict)
    totals: dict[bytes, Bill] = field(default_factory=dict)
    baselines: dict[bytes, int] = field(default_factory=dict)
    savings: SavingsBook = field(default_factory=SavingsBook)

    def add(self, key: bytes, k: int, bill: Bill, baseline: int) -> None:
        """Count interval `k`'s bill and baseline for `key`."""
        self.rows.setdefault(key, []).append({"interval": k, **bill.to_dict()})
        self.totals[key] = self.totals[key] + bill if key in self.totals else bill
        self.baselines[key] = self.baselines.get(key, 0) + baseline

    def add_interval(self, store: Store, grid: str, k: int, state: IntervalState,
                     only: bytes | None = None) -> None:
        """Count interval `k`: the savings credits of all, the bills of all (or of `only`)."""
        if state.settlements and state.rules is not None:
            socs = socs_before(store, grid, k, state.participants, charters=[state.charter])
            self.savings.add(state.participants, state.rules, confirmed_trades(state), socs)
        bills, baselines = bills_of(state)
        for a, b in bills.items():
            if only is None or a == only:
                self.add(a, k, b, baselines[a])

    def bill_json(self, agent: bytes, grid: str, frm: int, to: int) -> dict:
        """The bill of `agent` over `frm`..`to`: per interval, the total, what it saved."""
        total = self.totals.get(agent)
        baseline = self.baselines.get(agent, 0)
        credit = self.savings.credits.get(agent, 0)
        return {"agent": agent.hex(), "grid": grid, "from": frm, "to": to,
                "intervals": self.rows.get(agent, []),
                "total": total.to_dict() if total else None, "baseline": baseline,
                "credit": credit,
                "saved": baseline - total.net + credit if total else 0,
                "units": UNITS}


def bill_json(store: Store, charters: list[Charter], agent: bytes, grid: str, frm: int,
              to: int) -> dict:
    """`agent`'s bills over intervals `frm`..`to`, summed, with its grid-only baseline."""
    sums = BillTotals()
    for k in range(frm, to + 1):
        sums.add_interval(store, grid, k, interval_state(store, charters, grid, k), only=agent)
    return sums.bill_json(agent, grid, frm, to)
