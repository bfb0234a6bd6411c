"""Reading a whole chain page by page, so a long chain is never one huge query."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
PAGE = 1000


def chain_pages(fetch: Callable[[bytes, int, int], list[T]], author: bytes, start: int = 0,
                size: int = PAGE) -> Iterator[list[T]]:
    """Successive pages of `author`'s chain from seq `start`, as `fetch(author, start, limit)`
    returns them (`Store.chain` or `Store.chain_range`); ends after an empty or short page."""
    while batch := fetch(author, start, size):
        yield batch
        if len(batch) < size:
            return
        start += len(batch)
