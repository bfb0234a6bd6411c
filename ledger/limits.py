"""Charter limits on what an entry may claim (protocol 2): the `over-limit` reason code.

An offer or bid may not name more energy than its grid's `max_order_wh` nor a price above
`max_price`; a genesis may not declare more storage than `max_capacity_wh` nor more power than
`max_power_w`. The market applies the same limits when it builds a book, so an order a node
accepted before it knew the charter still never counts.
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.actions import Action
from ledger.charter import Charter, GridRules, charter_for_interval
from ledger.errors import OVER_LIMIT, Invalid

# (grid, interval or None for a genesis) -> the grid's rules in force, or None when unknown
RulesFor = Callable[[str, int | None], GridRules | None]


def order_within(rules: GridRules, energy_wh: int, price: int) -> bool:
    """True when an order of `energy_wh` at `price` respects the grid's limits."""
    return energy_wh <= rules.max_order_wh and price <= rules.max_price


def check_limits(action: Action, grid: str, rules_for: RulesFor) -> None:
    """Raise `Invalid(over-limit)` when an order or genesis claims more than its grid allows."""
    p = action.payload
    if action.type in ("offer", "bid"):
        rules = rules_for(grid, p["interval"])
        if rules is not None and not order_within(rules, p["energy_wh"], p["price"]):
            raise Invalid(
                OVER_LIMIT,
                f"order of {p['energy_wh']} Wh at {p['price']}: the charter allows at most "
                f"{rules.max_order_wh} Wh at {rules.max_price}",
            )
    elif action.type == "genesis":
        rules = rules_for(grid, None)
        if rules is None:
            return
        if p["capacity_wh"] > rules.max_capacity_wh or p["max_power_w"] > rules.max_power_w:
            raise Invalid(
                OVER_LIMIT,
                f"genesis declares {p['capacity_wh']} Wh / {p['max_power_w']} W: the charter "
                f"allows at most {rules.max_capacity_wh} Wh / {rules.max_power_w} W",
            )


def rules_from(charters: Callable[[], list[Charter]]) -> RulesFor:
    """A `RulesFor` over the charters a node holds now: the version in force for an order's
    interval, the newest version for a genesis; None when no charter names the grid."""

    def lookup(grid: str, interval: int | None) -> GridRules | None:
        held = charters()
        if not held:
            return None
        if interval is None:
            charter = max(held, key=lambda c: c.version)
        else:
            charter = charter_for_interval(held, interval) or min(
                held, key=lambda c: (c.effective_from, -c.version)
            )
        return charter.grids.get(grid)

    return lookup
