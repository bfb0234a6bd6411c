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

from operator import attrgetter

from ledger.charter import MECHANISMS, GridRules
from market.auctions import pay_as_bid, pay_as_clear
from market.merit_order import merit_order
from market.orders import Order
from market.participants import Participant, within_charter
from market.trades import Clearing, Open, Trade

__all__ = ["Clearing", "Trade", "clear", "usable_orders"]

_hash = attrgetter("hash")
_SIDE_OF_ROLE = {"consumer": ("bid",), "generator": ("offer",), "storage": ("bid", "offer")}


def usable_orders(
    book: list[Order], participants: dict[bytes, Participant], interval_ms: int | None = None
) -> list[Open]:
    """The book's orders that take part, capped as above, in order-hash order.

    One pass over the book (it normally comes sorted by hash from `select_book`; any other
    order is sorted here). ValueError if the book mixes intervals.
    """
    opens = []
    get = participants.get
    interval = book[0].interval if book else None
    previous = b""
    in_order = True
    for order in book:
        if order.interval != interval:
            raise ValueError("a book holds the orders of one interval only")
        if order.hash < previous:
            in_order = False
        previous = order.hash
        who = get(order.author)
        if who is None or order.side not in _SIDE_OF_ROLE.get(who.role, ()):
            continue
        energy = order.energy_wh
        if who.role == "storage":
            energy = min(energy, who.capacity_wh)
            if interval_ms is not None:
                energy = min(energy, who.power_cap_wh(interval_ms))
        if energy > 0:
            opens.append(Open(order, who, energy))
    if not in_order:
        opens.sort(key=_hash)
    return opens


def _grid_flows(opens: list[Open], role: str) -> dict[bytes, int]:
    """What is left of the orders of agents of `role`, per agent."""
    mine = [o for o in opens if o.role == role]
    flows = {o.author: o.left for o in mine}
    if len(flows) < len(mine):  # an agent with several orders: add them up
        flows = dict.fromkeys(flows, 0)
        for o in mine:
            flows[o.author] += o.left
    return flows


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
    participants = within_charter(participants, rules.max_capacity_wh, rules.max_power_w)
    opens = usable_orders(book, participants, interval_ms)
    price = None
    if mechanism == "merit-order":
        trades = merit_order(opens, rules)
    else:
        bids = [o for o in opens if o.side == "bid"]
        offers = [o for o in opens if o.side == "offer"]
        if mechanism == "pay-as-bid":
            trades = pay_as_bid(bids, offers)
        else:
            trades, price = pay_as_clear(bids, offers)
    return Clearing(
        mechanism,
        tuple(trades),
        _grid_flows(opens, "consumer"),
        _grid_flows(opens, "generator"),
        price,
    )
