"""Read what the protocol-2 judge needs from a store: settlers, views, and the audit context.

A thin reader: every rule lives in `market.book` and `market.judge`; this module only turns
stored actions into their inputs, so the audit, the agent and the API build them the same way.
"""

from __future__ import annotations

from ledger.charter import Charter
from ledger.store import Store
from market.book import ViewPage, complete_views, deadlines, settlers_at
from market.judge import Context
from node.trading.interval_view import IntervalState, energy_window_ms


def grid_settlers(store: Store, grid: str, gate_us: int) -> list[bytes]:
    """The grid's settlers for an interval whose gate closes at `gate_us`."""
    genesis_ts = {}
    for row in store.agents():
        if row["grid"] == grid:
            genesis = store.get_by_seq(row["author"], 0)
            if genesis is not None:
                genesis_ts[row["author"]] = genesis.ts
    return settlers_at(genesis_ts, gate_us)


def view_pages(store: Store, grid: str, k: int) -> list[ViewPage]:
    """Every `view` entry held for `k` in `grid`, decoded."""
    return [
        ViewPage(
            a.author,
            a.seq,
            a.ts,
            k,
            a.payload["page"],
            a.payload["pages"],
            tuple(a.payload["orders"]),
        )
        for a in store.by_interval(grid, k, ("view",))
    ]


def judge_context(store: Store, charters: list[Charter], state: IntervalState) -> Context:
    """The judge's context for one interval of one grid, from the store alone."""
    d = deadlines(charters, state.interval)
    pages = view_pages(store, state.grid, state.interval)
    assert state.rules is not None
    return Context(
        interval=state.interval,
        settlers=grid_settlers(store, state.grid, d.gate_us),
        views=complete_views(pages, gate_us=d.gate_us, view_us=d.view_us),
        orders=state.orders,
        participants=state.participants,
        rules=state.rules,
        gate_us=d.gate_us,
        interval_ms=energy_window_ms(state.charter),
        forked=frozenset(store.forked_authors()),
    )
