"""Savings a treasurer would sign: what trading saved against buying everything from the utility.

The grid-only baseline (`results.baseline_net`) has every home buy its consumption at retail,
every generator sell its output at feed-in, batteries idle. Against it, two things in the actual
bills are not money gained or lost and are accounted for here:

- **Energy in a battery is an asset, not a cost.** Stored energy is valued at its purchase cost
  (weighted average of what the battery paid; energy it already held when the period began at the
  feed-in tariff, what it would have fetched otherwise). A battery's savings are then what its
  sales earned above the cost of the energy it sold: charging alone saves exactly 0.
- **Energy given inside a household is valued at what it displaces.** A trade between two agents
  of one household below the feed-in tariff (the `household_price`, 0 by default) is accounted at
  the feed-in tariff the seller gave up: the seller is credited the difference and the buyer
  charged it. A home solar feeding its own home thus saves 0, not minus its feed-in, and the
  home saves retail minus feed-in per Wh. The credits cancel inside the household, so household
  and community totals are exactly the bills' totals against the baseline.

`SavingsBook` walks the intervals in order and returns each agent's credit (milli-cents to take
off its net bill); `kpis(..., credits=...)` reports savings with them. Integers throughout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ledger.charter import GridRules
from market.participants import Participant
from market.results import money
from market.trades import Trade


def household_trade(seller: Participant | None, buyer: Participant | None) -> bool:
    """Both sides in one real household (the community's own assets never count as one)."""
    return (seller is not None and buyer is not None and seller.household == buyer.household
            and seller.household != "community")


class SavingsBook:
    """Working state over consecutive intervals: per-agent credits and battery inventories."""

    def __init__(self) -> None:
        self.credits: dict[bytes, int] = {}
        self._stock: dict[bytes, list[int]] = {}  # battery -> [Wh held, its value in mc]

    def add(self, participants: Mapping[bytes, Participant], rules: GridRules,
            trades: Iterable[Trade], socs_before: Mapping[bytes, int]) -> None:
        """Account one interval's trades (the confirmed ones a bill is built from)."""
        for agent, who in participants.items():
            if who.role == "storage" and agent not in self._stock:
                held = max(0, socs_before.get(agent, 0))
                self._stock[agent] = [held, money(held, rules.feed_in)]
        bought: dict[bytes, list[int]] = {}
        sold: dict[bytes, int] = {}
        for t in trades:
            seller, buyer = participants.get(t.seller), participants.get(t.buyer)
            paid = money(t.energy_wh, t.price)
            if household_trade(seller, buyer) and t.price < rules.feed_in:
                shift = money(t.energy_wh, rules.feed_in) - paid
                self._credit(t.seller, shift)
                self._credit(t.buyer, -shift)
                paid += shift
            if t.buyer in self._stock:
                acc = bought.setdefault(t.buyer, [0, 0])
                acc[0] += t.energy_wh
                acc[1] += paid
            if t.seller in self._stock:
                sold[t.seller] = sold.get(t.seller, 0) + t.energy_wh
        for agent, stock in self._stock.items():
            before = stock[1]
            wh_in, value_in = bought.get(agent, (0, 0))
            stock[0] += wh_in
            stock[1] += value_in
            out = min(sold.get(agent, 0), stock[0])
            if out:
                taken = stock[1] * out // stock[0]
                stock[0] -= out
                stock[1] -= taken
            self._credit(agent, stock[1] - before)

    def _credit(self, agent: bytes, amount: int) -> None:
        self.credits[agent] = self.credits.get(agent, 0) + amount

    def stored_value(self) -> int:
        """What the energy held in the batteries is worth now (milli-cents)."""
        return sum(v for _, v in self._stock.values())
