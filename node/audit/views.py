"""Read what the protocol-2 judge needs from a store, for one interval's state.

The readers live in `node.trading.grid_views` (the agent, the API and the bills use them too);
this module adapts them to an `IntervalState`, so the audit builds its inputs the same way.
"""

from __future__ import annotations

from ledger.charter import Charter
from ledger.store import Store
from market.book import Book
from market.judge import Context
from node.trading.grid_views import (
    book_of,
    defaults_of,
    excluded_for,
    grid_settlers,
    settlement_history,
    view_pages,
    view_to_sign,
    views_context,
)
from node.trading.interval_view import IntervalState

__all__ = ["defaults_of", "excluded_for", "grid_settlers", "interval_book", "judge_context",
           "settlement_history", "view_pages", "view_to_sign"]


def judge_context(store: Store, charters: list[Charter], state: IntervalState) -> Context:
    """The judge's context for one interval of one grid, from the store alone."""
    ctx = views_context(store, charters, state.grid, state.interval, state.orders,
                        state.participants)
    assert ctx is not None, "judge_context needs a grid with a market in the interval"
    return ctx


def interval_book(
    store: Store, charters: list[Charter], state: IntervalState
) -> tuple[list[bytes], Book]:
    """The grid's settlers for `state`'s interval and the book its views give on this node."""
    ctx = judge_context(store, charters, state)
    return list(ctx.settlers), book_of(ctx)
