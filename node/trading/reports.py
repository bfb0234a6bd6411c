"""Reports over a range of intervals, shared by the HTTP API and `picogrid export`: trades as
rows, and each agent's bills summed with its grid-only baseline."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ledger.charter import Charter
from ledger.store import Store
from market.results import Bill
from market.settlement import TradeStatus
from node.trading.interval_view import bills_of, interval_state

K = TypeVar("K", bound=Hashable)
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
class BillTotals(Generic[K]):
    """Bills summed per key (an agent id, or a name) over the intervals added."""

    rows: dict[K, list[dict]] = field(default_factory=dict)
    totals: dict[K, Bill] = field(default_factory=dict)
    baselines: dict[K, int] = field(default_factory=dict)

    def add(self, key: K, k: int, bill: Bill, baseline: int) -> None:
        """Count interval `k`'s bill and baseline for `key`."""
        self.rows.setdefault(key, []).append({"interval": k, **bill.to_dict()})
        self.totals[key] = self.totals[key] + bill if key in self.totals else bill
        self.baselines[key] = self.baselines.get(key, 0) + baseline

    def bill_json(self, key: K, agent: bytes, grid: str, frm: int, to: int) -> dict:
        """The bill of `key` over `frm`..`to`: per interval, the total, what it saved."""
        total = self.totals.get(key)
        baseline = self.baselines.get(key, 0)
        return {"agent": agent.hex(), "grid": grid, "from": frm, "to": to,
                "intervals": self.rows.get(key, []),
                "total": total.to_dict() if total else None, "baseline": baseline,
                "saved": baseline - total.net if total else 0,
                "units": UNITS}


def bill_json(store: Store, charters: list[Charter], agent: bytes, grid: str, frm: int,
              to: int) -> dict:
    """`agent`'s bills over intervals `frm`..`to`, summed, with its grid-only baseline."""
    sums: BillTotals[bytes] = BillTotals()
    for k in range(frm, to + 1):
        bills, baselines = bills_of(interval_state(store, charters, grid, k))
        if agent in bills:
            sums.add(agent, k, bills[agent], baselines[agent])
    return sums.bill_json(agent, agent, grid, frm, to)
