"""What a clearing produces (trades, grid flows) and the working state the mechanisms share."""

from __future__ import annotations

from dataclasses import dataclass, field

from market.orders import Order
from market.participants import Participant


@dataclass(frozen=True, slots=True)
class Trade:
    """`energy_wh` delivered by `seller` to `buyer` at `price` (milli-cents per kWh)."""

    seller: bytes
    buyer: bytes
    energy_wh: int
    price: int
    offer: bytes  # hash of the seller's matched order
    bid: bytes  # hash of the buyer's matched order

    def to_wire(self) -> list:
        """The settlement form (PROTOCOL section 3)."""
        return [self.seller, self.buyer, self.energy_wh, self.price, self.offer, self.bid]

    @classmethod
    def from_wire(cls, item: list | tuple) -> Trade:
        seller, buyer, energy_wh, price, offer, bid = item
        return cls(bytes(seller), bytes(buyer), energy_wh, price, bytes(offer), bytes(bid))


@dataclass(frozen=True, slots=True)
class Clearing:
    """The outcome of clearing one interval's book.

    `trades` are in the order the mechanism produced them. `grid_import_wh` / `grid_export_wh`
    map each consumer / generator with an order in the book to the energy its unmatched bid
    imports from / unmatched offer exports to the utility grid (0 when fully matched). Storage
    never trades with the utility grid. `clearing_price` is the uniform price of `pay-as-clear`
    (None for the other mechanisms, or when nothing was matched).
    """

    mechanism: str
    trades: tuple[Trade, ...]
    grid_import_wh: dict[bytes, int] = field(default_factory=dict)
    grid_export_wh: dict[bytes, int] = field(default_factory=dict)
    clearing_price: int | None = None

    def trades_of(self, agent: bytes) -> list[Trade]:
        """The trades in which `agent` is seller or buyer, in mechanism order."""
        return [t for t in self.trades if agent in (t.seller, t.buyer)]


class Open:
    """An order being filled: how much of it is left. Working state, never a value.

    The order's fields the mechanisms read in their loops are copied into slots: cheap to read.
    """

    __slots__ = ("order", "who", "left", "author", "price", "hash", "side", "role")

    def __init__(self, order: Order, who: Participant, energy_wh: int) -> None:
        self.order = order
        self.who = who
        self.left = energy_wh
        self.author = order.author
        self.price = order.price
        self.hash = order.hash
        self.side = order.side
        self.role = who.role


def fill(offer: Open, bid: Open, energy_wh: int, price: int) -> Trade:
    """Take `energy_wh` from both orders and record the trade."""
    offer.left -= energy_wh
    bid.left -= energy_wh
    return Trade(offer.author, bid.author, energy_wh, price, offer.hash, bid.hash)
