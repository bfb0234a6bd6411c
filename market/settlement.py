"""Settlement payloads and the check that confirms or disputes each trade (PROTOCOL section 3).

Every agent clears the book it holds and signs a `settlement` with its own trades and the digest
of that book. A trade is confirmed when seller and buyer list it with identical fields, disputed
when one of them lists it and the other's settlement does not, and pending while the
counterparty's settlement has not been seen. For a dispute, an auditor that knows the full book
can name the orders each side lacked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from market.orders import Order, digest_of_hashes
from market.orders import book_digest as _book_digest
from market.trades import Clearing, Trade

STATUSES = ("confirmed", "disputed", "pending")


def settlement_payload(
    agent: bytes, interval: int, mechanism: str, book: list[Order], clearing: Clearing
) -> dict:
    """The `settlement` map `agent` signs for `interval` (PROTOCOL section 3)."""
    return {
        "interval": interval,
        "mechanism": mechanism,
        "book": _book_digest(book),
        "trades": [t.to_wire() for t in clearing.trades_of(agent)],
        "grid_import_wh": clearing.grid_import_wh.get(agent, 0),
        "grid_export_wh": clearing.grid_export_wh.get(agent, 0),
    }


@dataclass(frozen=True, slots=True)
class TradeStatus:
    """One trade as listed by at least one side, and what the other side said.

    `missing` (disputes only, when the auditor knows the book) maps a side to the hashes of the
    orders its book lacked; a side whose book is complete, or whose gap could not be explained
    by one order or by all orders of one author, has no entry.
    """

    trade: Trade
    status: str  # "confirmed" | "disputed" | "pending"
    missing: dict[bytes, list[bytes]] = field(default_factory=dict)


def _key(item: list | tuple) -> tuple:
    seller, buyer, energy_wh, price, offer, bid = item
    return (bytes(seller), bytes(buyer), energy_wh, price, bytes(offer), bytes(bid))


def gaps(orders: Iterable[Order]) -> dict[bytes, list[bytes]]:
    """Book digests one order or one author short of the full book -> the hashes left out.

    The full book's own digest maps to []. That is 1 + n + authors digests, each over the
    concatenated hashes: cheap for books of an interval.
    """
    book = sorted(orders, key=lambda o: o.hash)
    hashes = [o.hash for o in book]
    joined = b"".join(hashes)
    table: dict[bytes, list[bytes]] = {digest_of_hashes([joined]): []}
    prefix = hashlib.blake2b(digest_size=32)  # state after the hashes before the one left out
    end = 0
    for h in hashes:
        end += len(h)
        without = prefix.copy()
        without.update(joined[end:])
        table.setdefault(without.digest(), [h])
        prefix.update(h)
    authors = sorted({o.author for o in book})
    for author in authors:
        left_out = [o.hash for o in book if o.author == author]
        if len(left_out) > 1:
            rest = [o.hash for o in book if o.author != author]
            table.setdefault(digest_of_hashes(rest), left_out)
    return table


def classify(
    settlements: dict[bytes, dict], orders: list[Order] | None = None
) -> list[TradeStatus]:
    """Classify every trade listed in the settlements of one interval (agent -> payload).

    Trades are reported once each, in the order first met walking agents by id and each agent's
    trades in its mechanism order. A trade listed by an agent that is neither its seller nor its
    buyer is ignored: nobody may settle for others.
    """
    listed: dict[bytes, set[tuple]] = {}
    seen: dict[tuple, None] = {}
    for agent in sorted(settlements):
        mine = set()
        for item in settlements[agent].get("trades", []):
            key = _key(item)
            if agent not in (key[0], key[1]):
                continue
            mine.add(key)
            seen.setdefault(key, None)
        listed[agent] = mine
    table = gaps(orders) if orders is not None else None
    statuses = []
    for key in seen:
        seller, buyer = key[0], key[1]
        if all(side in listed and key in listed[side] for side in (seller, buyer)):
            statuses.append(TradeStatus(Trade(*key), "confirmed"))
        elif not all(side in settlements for side in (seller, buyer)):
            statuses.append(TradeStatus(Trade(*key), "pending"))
        else:
            missing = {}
            if table is not None:
                for side in dict.fromkeys((seller, buyer)):
                    lacked = table.get(bytes(settlements[side].get("book", b"")))
                    if lacked:
                        missing[side] = list(lacked)
            statuses.append(TradeStatus(Trade(*key), "disputed", missing))
    return statuses
