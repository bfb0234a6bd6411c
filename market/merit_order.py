"""`merit-order`, the PicoGrid rule (DESIGN "Settlement"): local energy first, the grid last.

Order prices are ignored; a trade's price is the tariff: `household_price` between agents of one
household, `community_price` otherwise. The steps, each trading what the earlier ones left:

1. In each household (by name), its generation serves its own consumers, its surplus charges its
   own storage, and its storage covers what demand is left.
2. Remaining household surplus and community generation serve remaining demand of every
   household (and of community consumers).
3. Community storage covers the demand still left, or absorbs the surplus still left.
4. What is left is imported from (consumer bids) or exported to (generator offers) the utility
   grid; the clearing records it, no trade does.

Within a step, when supply and demand differ, the short side is shared pro rata: each order on
the long side gets `left * total // side_total` Wh, and the Wh lost to rounding go one each to
the largest remainders (ties: lowest order hash). Sellers and buyers are then paired in hash order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.charter import GridRules
from market.participants import COMMUNITY
from market.trades import Open, Trade, fill


def allot(opens: list[Open], total: int) -> list[int]:
    """Share `total` Wh over `opens` in proportion to what each has left (largest remainder)."""
    have = sum(o.left for o in opens)
    if total >= have:
        return [o.left for o in opens]
    shares = [o.left * total // have for o in opens]
    rest = total - sum(shares)
    by_remainder = sorted(
        range(len(opens)), key=lambda i: (-(opens[i].left * total % have), opens[i].hash)
    )
    for i in by_remainder[:rest]:
        shares[i] += 1
    return shares


def share(sellers: list[Open], buyers: list[Open], price: int) -> list[Trade]:
    """Trade as much as both sides allow, the short side shared pro rata, at `price`."""
    sellers = sorted((o for o in sellers if o.left > 0), key=lambda o: o.hash)
    buyers = sorted((o for o in buyers if o.left > 0), key=lambda o: o.hash)
    total = min(sum(o.left for o in sellers), sum(o.left for o in buyers))
    if total == 0:
        return []
    give, take = allot(sellers, total), allot(buyers, total)
    trades: list[Trade] = []
    i = j = 0
    while i < len(sellers) and j < len(buyers):
        energy = min(give[i], take[j])
        if energy:
            trades.append(fill(sellers[i], buyers[j], energy, price))
            give[i] -= energy
            take[j] -= energy
        if give[i] == 0:
            i += 1
        if take[j] == 0:
            j += 1
    return trades


@dataclass(slots=True)
class _Group:
    """The open orders of one household (working state)."""

    generation: list[Open] = field(default_factory=list)
    demand: list[Open] = field(default_factory=list)
    charge: list[Open] = field(default_factory=list)  # storage bids
    discharge: list[Open] = field(default_factory=list)  # storage offers


def _group(opens: list[Open]) -> dict[str, _Group]:
    groups: dict[str, _Group] = {}
    for o in opens:
        g = groups.setdefault(o.who.household, _Group())
        if o.who.role == "consumer":
            g.demand.append(o)
        elif o.who.role == "generator":
            g.generation.append(o)
        elif o.side == "bid":
            g.charge.append(o)
        else:
            g.discharge.append(o)
    return groups


def merit_order(opens: list[Open], rules: GridRules) -> list[Trade]:
    """Clear usable orders (consumer bids, generator offers, storage bids and offers)."""
    groups = _group(opens)
    community = groups.get(COMMUNITY, _Group())
    trades: list[Trade] = []
    for name in sorted(groups):
        if name == COMMUNITY:
            continue
        g = groups[name]
        trades += share(g.generation, g.demand, rules.household_price)
        trades += share(g.generation, g.charge, rules.household_price)
        trades += share(g.discharge, g.demand, rules.household_price)
    supply = [o for g in groups.values() for o in g.generation]
    demand = [o for g in groups.values() for o in g.demand]
    trades += share(supply, demand, rules.community_price)
    trades += share(community.discharge, demand, rules.community_price)
    trades += share(supply, community.charge, rules.community_price)
    return trades
