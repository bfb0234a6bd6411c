"""Views (protocol 2): a settler's signed list of the order hashes it holds for an interval.

A view is one or more `view` entries (pages), each listing up to `VIEW_PAGE_MAX` order hashes in
ascending byte order; page `i` of `pages` holds the `i`-th slice of the settler's sorted list.
This module holds the schema check, the pager, and the two compact ways a settlement names the
views it used: the digest of the grid's settlers (the universe) and a bitmap over them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from ledger import codec
from ledger.errors import BAD_PAYLOAD, Invalid

VIEW_PAGE_MAX = 400  # 400 hashes of 34 encoded bytes: a page stays well under 16 KiB
VIEW_KEYS = frozenset(("interval", "page", "pages", "orders"))


def check_view(payload: dict[str, Any]) -> None:
    """Raise `Invalid(bad-payload)` unless the page numbers and the hash list are well formed."""
    page, pages, orders = payload["page"], payload["pages"], payload["orders"]
    if not page < pages:
        raise Invalid(BAD_PAYLOAD, "view: page must be below pages")
    if len(orders) > VIEW_PAGE_MAX:
        raise Invalid(BAD_PAYLOAD, f"view: more than {VIEW_PAGE_MAX} hashes on one page")
    if any(a >= b for a, b in zip(orders, orders[1:], strict=False)):
        raise Invalid(BAD_PAYLOAD, "view: order hashes must be strictly ascending")


def view_payloads(interval: int, hashes: Iterable[bytes]) -> list[dict[str, Any]]:
    """The pages of a view of `hashes` for `interval`, ready to sign in this order."""
    ordered = sorted(set(hashes))
    chunks = [ordered[i : i + VIEW_PAGE_MAX] for i in range(0, len(ordered), VIEW_PAGE_MAX)]
    chunks = chunks or [[]]
    return [
        {"interval": interval, "page": i, "pages": len(chunks), "orders": chunk}
        for i, chunk in enumerate(chunks)
    ]


def settlers_digest(settlers: Iterable[bytes]) -> bytes:
    """BLAKE2b-256 of the concatenated sorted agent ids of a grid's settlers."""
    h = hashlib.blake2b(digest_size=32)
    for agent in sorted(settlers):
        h.update(agent)
    return h.digest()


def views_bitmap(settlers: Sequence[bytes], used: Iterable[bytes]) -> bytes:
    """Bit `i` (byte `i // 8`, mask `0x80 >> i % 8`) set when sorted settler `i`'s view was used."""
    order = sorted(settlers)
    out = bytearray((len(order) + 7) // 8)
    index = {agent: i for i, agent in enumerate(order)}
    for agent in used:
        i = index[agent]
        out[i // 8] |= 0x80 >> (i % 8)
    return bytes(out)


def bitmap_authors(settlers: Sequence[bytes], bitmap: bytes) -> list[bytes] | None:
    """The settlers a bitmap names, in id order; None when its length does not fit the settlers."""
    order = sorted(settlers)
    if len(bitmap) != (len(order) + 7) // 8:
        return None
    named = [a for i, a in enumerate(order) if bitmap[i // 8] & (0x80 >> (i % 8))]
    spare = len(bitmap) * 8 - len(order)
    if spare and bitmap[-1] & ((1 << spare) - 1):
        return None  # bits beyond the last settler: not a bitmap over these settlers
    return named


def trades_digest(trades: list) -> bytes:
    """BLAKE2b-256 of the canonical encoding of a settlement's full trade list."""
    return hashlib.blake2b(codec.encode(trades), digest_size=32).digest()
