"""The two double auctions: `pay-as-bid` and `pay-as-clear` (uniform price).

Both walk the book in merit order: bids by price high to low, offers by price low to high, ties
broken by order hash (lowest first). Sorting is the only super-linear step, so clearing n orders
costs O(n log n).

No agent trades with itself. An agent that both bids and offers (a battery) and whose bid pays at
least what its own offer asks would, in effect, only buy from itself: those crossing parts
cancel out before the auction (`cancel_own_crossing`), so the battery neither charges nor
discharges that energy. After that an agent's own orders never cross; the matching still skips
its own offers, defensively.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

from market.trades import Open, Trade, fill

_price = attrgetter("price")


def _sorted_sides(bids: list[Open], offers: list[Open]) -> tuple[list[Open], list[Open]]:
    """Bids by price high to low, offers low to high, ties by order hash.

    Both lists come in hash order (`usable_orders`) and Python's sort is stable, also in
    reverse, so sorting by price alone keeps equal prices in hash order: one integer key.
    """
    return sorted(bids, key=_price, reverse=True), sorted(offers, key=_price)


def cancel_own_crossing(bids: list[Open], offers: list[Open]) -> None:
    """Take from each agent's bids and offers the energy where its bid price >= its offer price.

    Only storage both bids and offers (`usable_orders` drops the rest), so only storage is looked at.
    """
    own_offers: dict[bytes, list[Open]] = {}
    for o in offers:
        if o.role == "storage":
            own_offers.setdefault(o.author, []).append(o)
    own_bids: dict[bytes, list[Open]] = {}
    for b in bids:
        if b.author in own_offers:
            own_bids.setdefault(b.author, []).append(b)
    for author in sorted(own_bids):
        mine_bids, mine_offers = _sorted_sides(own_bids[author], own_offers[author])
        i = j = 0
        while i < len(mine_bids) and j < len(mine_offers):
            bid, offer = mine_bids[i], mine_offers[j]
            if bid.price < offer.price:
                break
            energy = min(bid.left, offer.left)
            bid.left -= energy
            offer.left -= energy
            if bid.left == 0:
                i += 1
            if offer.left == 0:
                j += 1


def _prepared(bids: list[Open], offers: list[Open]) -> tuple[list[Open], list[Open]]:
    cancel_own_crossing(bids, offers)
    return _sorted_sides([b for b in bids if b.left > 0], [o for o in offers if o.left > 0])


def _match(
    bids: list[Open], offers: list[Open], price_of: Callable[[Open, Open], int]
) -> list[Trade]:
    """Greedy matching of sorted bids against sorted offers, skipping self-trades.

    Each bid, best first, takes the cheapest offers it can afford from other authors. The walk
    stops when the cheapest offer left costs more than the best bid left will pay.
    """
    trades: list[Trade] = []
    n = len(offers)
    j = 0  # every offer before j is used up
    for bid in bids:
        while j < n and offers[j].left == 0:
            j += 1
        if j == n or offers[j].price > bid.price:
            break
        k = j
        while bid.left > 0 and k < n:
            offer = offers[k]
            if offer.price > bid.price:
                break
            if offer.left == 0 or offer.author == bid.author:
                k += 1
                continue
            trades.append(fill(offer, bid, min(offer.left, bid.left), price_of(bid, offer)))
    return trades


def _bid_price(bid: Open, offer: Open) -> int:
    return bid.price


def pay_as_bid(bids: list[Open], offers: list[Open]) -> list[Trade]:
    """Offers and bids matched in price order; each trade at the bid's price."""
    bids, offers = _prepared(bids, offers)
    return _match(bids, offers, _bid_price)


def clearing_price(bids: list[Open], offers: list[Open]) -> int | None:
    """Where the supply and demand curves of sorted `bids` and `offers` cross.

    Walk both curves, matching volume while the next bid pays at least the next offer asks.
    The last matched bid and offer, and the first bid and offer left wanting (which may be the
    partly filled marginal orders themselves), bound the prices at which supply equals demand:
    lo = max(last offer, next bid), hi = min(last bid, next offer). The price is the midpoint of
    [lo, hi], rounded down. None when no bid meets any offer.
    """
    bid_left = [b.left for b in bids]
    offer_left = [o.left for o in offers]
    i = j = 0
    last: tuple[int, int] | None = None
    while i < len(bids) and j < len(offers) and bids[i].price >= offers[j].price:
        energy = min(bid_left[i], offer_left[j])
        bid_left[i] -= energy
        offer_left[j] -= energy
        last = (i, j)
        if bid_left[i] == 0:
            i += 1
        if offer_left[j] == 0:
            j += 1
    if last is None:
        return None
    lo, hi = offers[last[1]].price, bids[last[0]].price
    if i < len(bids):
        lo = max(lo, bids[i].price)
    if j < len(offers):
        hi = min(hi, offers[j].price)
    return (lo + hi) // 2


def pay_as_clear(bids: list[Open], offers: list[Open]) -> tuple[list[Trade], int | None]:
    """Uniform-price double auction: one price for every trade, where supply and demand cross.

    Only bids at or above the price and offers at or below it take part, so nobody trades
    against its own limit price; they are matched in merit order at that price.
    """
    bids, offers = _prepared(bids, offers)
    price = clearing_price(bids, offers)
    if price is None:
        return [], None
    in_bids = [b for b in bids if b.price >= price]
    in_offers = [o for o in offers if o.price <= price]
    trades = _match(in_bids, in_offers, lambda bid, offer: price)
    return trades, (price if trades else None)
