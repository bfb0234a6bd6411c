"""Orders and the order book of one interval (PROTOCOL section 3, DESIGN "Settlement" step 2).

An `Order` is a decoded `offer` or `bid` action: the node builds it from the action and its hash,
the simulator builds it with `make_order`. `select_book` picks, from everything a node holds, the
orders that take part in an interval's clearing; `book_digest` names that book in a settlement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ledger import codec

SIDES = ("offer", "bid")


@dataclass(frozen=True, slots=True)
class Order:
    """One offer (energy the author delivers) or bid (energy the author takes) for an interval."""

    hash: bytes  # 32 bytes: the hash of the order action
    author: bytes  # 32 bytes: the agent id
    seq: int  # the action's place in the author's chain
    side: str  # "offer" | "bid"
    interval: int
    energy_wh: int
    price: int  # limit price, milli-cents per kWh
    ts: int  # the action's timestamp, microseconds since the Unix epoch


def blake2b_256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def make_order(
    author: bytes, seq: int, side: str, interval: int, energy_wh: int, price: int, ts: int = 0
) -> Order:
    """An order outside any chain (simulation, tests): its hash is BLAKE2b-256 of the canonical
    encoding of `[author, seq, side, interval, energy_wh, price, ts]`."""
    if side not in SIDES:
        raise ValueError(f"order side must be 'offer' or 'bid', not {side!r}")
    fields = [author, seq, side, interval, energy_wh, price, ts]
    return Order(
        blake2b_256(codec.encode(fields)), author, seq, side, interval, energy_wh, price, ts
    )


def select_book(
    orders: Iterable[Order], *, gate_us: int, members: set[bytes], forked: set[bytes]
) -> list[Order]:
    """The orders a node clears: on time, from the grid's members, from no forked author.

    An order counts when `ts <= gate_us`, its author is in `members` and not in `forked`. Of an
    author's counted orders for one (side, interval), only the one with the highest `seq` is kept:
    a later order replaces earlier ones, but a replacement that missed the gate replaces nothing.
    The result is sorted by order hash, the order every node uses.
    """
    latest: dict[tuple[bytes, str, int], Order] = {}
    for order in orders:
        if order.ts > gate_us or order.author not in members or order.author in forked:
            continue
        key = (order.author, order.side, order.interval)
        held = latest.get(key)
        if held is None or order.seq > held.seq:
            latest[key] = order
    return sorted(latest.values(), key=lambda o: o.hash)


def book_digest(orders: Iterable[Order]) -> bytes:
    """BLAKE2b-256 of the concatenation of the sorted hashes of every order in the book."""
    return digest_of_hashes(sorted(o.hash for o in orders))


def digest_of_hashes(sorted_hashes: Iterable[bytes]) -> bytes:
    """The book digest of order hashes that are already sorted."""
    h = hashlib.blake2b(digest_size=32)
    for order_hash in sorted_hashes:
        h.update(order_hash)
    return h.digest()
