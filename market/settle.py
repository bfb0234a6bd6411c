"""Protocol-2 settlement payloads: name the views used, carry the trades or their digest.

A settlement of interval `k` names the grid's settlers (their digest) and, as a bitmap over them,
whose views it cleared; `book` is the digest of the book those views gave. Its trades are listed
when they fit (`INLINE_TRADES_MAX`) and are otherwise left out: `trade_count` and `trades_digest`
still fix them, and every node recomputes the list from the same views, so a settlement of 1,000
trades stays a few hundred bytes. `revision` counts the settlements the agent signed for `k`
before this one (0 for the first).
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.view import bitmap_authors, settlers_digest, trades_digest, views_bitmap
from market.book import Book
from market.orders import book_digest
from market.trades import Clearing

INLINE_TRADES_MAX = 100  # 100 trades of ~140 bytes: well under the 16 KiB action limit


def settlement_payload_v2(
    agent: bytes,
    interval: int,
    mechanism: str,
    book: Book,
    clearing: Clearing,
    settlers: Sequence[bytes],
    *,
    revision: int = 0,
    inline_max: int = INLINE_TRADES_MAX,
) -> dict:
    """The protocol-2 `settlement` map `agent` signs for `interval` over `book`."""
    trades = [t.to_wire() for t in clearing.trades_of(agent)]
    return {
        "interval": interval,
        "mechanism": mechanism,
        "book": book_digest(book.orders),
        "settlers": settlers_digest(settlers),
        "views": views_bitmap(settlers, book.used),
        "revision": revision,
        "trades": trades if len(trades) <= inline_max else [],
        "trade_count": len(trades),
        "trades_digest": trades_digest(trades),
        "grid_import_wh": clearing.grid_import_wh.get(agent, 0),
        "grid_export_wh": clearing.grid_export_wh.get(agent, 0),
    }


def is_v2(payload: dict) -> bool:
    """True for a protocol-2 settlement (it names its views)."""
    return "views" in payload


def listed_trades(payload: dict) -> list | None:
    """The settlement's trades when it lists them (or has none); None when only the digest."""
    if payload["trades"] or not is_v2(payload) or payload["trade_count"] == 0:
        return list(payload["trades"])
    return None


def expand_trades(payload: dict, recomputed: list) -> list | None:
    """The settlement's trades: listed ones, or `recomputed` when it matches count and digest."""
    listed = listed_trades(payload)
    if listed is not None:
        return listed
    if len(recomputed) == payload["trade_count"] and (
        trades_digest(recomputed) == payload["trades_digest"]
    ):
        return list(recomputed)
    return None


def named_views(payload: dict, settlers: Sequence[bytes]) -> list[bytes] | None:
    """The authors whose views the settlement says it used; None if its settlers are not ours."""
    if payload["settlers"] != settlers_digest(settlers):
        return None
    return bitmap_authors(settlers, payload["views"])
