"""Clearing one interval's order book with the grid's mechanism (DESIGN "Settlement").

`clear` is a pure function: the same book, participants and rules give the same trades, bit for
bit, on every node. Before any mechanism runs, the book is reduced to the orders that make sense:

- orders of agents that are not participants of the grid are ignored;
- a consumer only bids, a generator only offers, storage does both: other orders are ignored;
- a storage order is capped at the battery's capacity and, when `interval_ms` is given, at what
  its `max_power_w` moves in that time (whole Wh, rounded down).

Afterwards a consumer's unmatched bid energy is imported from the utility grid and a generator's
unmatched offer energy exported to it; storage never trades with the utility grid.
"""

from __future__ import annotations

from ledger.charter import MECHANISMS, GridRules
from market.auctions import pay_as_bid, pay_as_clear
from market.merit_order import merit_order
from market.orders import Order
from market.participants import Participant
from market.trades import Clearing, Open, Trade

__all__ = ["Clearing", "Trade", "clear", "usable_orders"]

_SIDE_OF_ROLE = {"consumer": ("bid",), "generator": ("offer",), "storage": ("bid", "offer")}


def usable_orders(
    book: list[Order], participants: dict[bytes, Participant], interval_ms: int | None = None
) -> list[Open]:
    """The book's orders that take part, capped as above, in order-hash order."""
    opens = []
    for order in sorted(book, key=lambda o: o.hash):
        who = participants.get(order.author)
        if who is None or order.side not in _SIDE_OF_ROLE.get(who.role, ()):
            continue
        energy = order.energy_wh
        if who.role == "storage":
            energy = min(energy, who.capacity_wh)
            if interval_ms is not None:
                energy = min(energy, who.power_cap_wh(interval_ms))
        if energy > 0:
            opens.append(Open(order, who, energy))
    return opens


def clear(
    book: list[Order],
    participants: dict[bytes, Participant],
    rules: GridRules,
    *,
    interval_ms: int | None = None,
) -> Clearing:
    """Clear the orders of one interval with `rules.mechanism` (ValueError if unknown)."""
    mechanism = rules.mechanism
    if mechanism not in MECHANISMS:
        raise ValueError(
            f"unknown mechanism {mechanism!r}: expected one of {', '.join(MECHANISMS)}"
        )
    if len({o.interval for o in book}) > 1:
        raise ValueError("a book holds the orders of one interval only")
    opens = usable_orders(book, participants, interval_ms)
    price = None
    if mechanism == "merit-order":
        trades = merit_order(opens, rules)
    else:
        bids = [o for o in opens if o.order.side == "bid"]
        offers = [o for o in opens if o.order.side == "offer"]
        if mechanism == "pay-as-bid":
            trades = pay_as_bid(bids, offers)
        else:
            trades, price = pay_as_clear(bids, offers)
    imports: dict[bytes, int] = {}
    exports: dict[bytes, int] = {}
    for o in opens:
        if o.who.role == "consumer":
            imports[o.author] = imports.get(o.author, 0) + o.left
        elif o.who.role == "generator":
            exports[o.author] = exports.get(o.author, 0) + o.left
    return Clearing(mechanism, tuple(trades), imports, exports, price)
