"""Read what the protocol-2 judge needs from a store: settlers, views, and the audit context.

A thin reader: every rule lives in `market.book` and `market.judge`; this module only turns
stored actions into their inputs, so the audit, the agent and the API build them the same way.
"""

from __future__ import annotations

from ledger.charter import Charter
from ledger.store import Store
from ledger.view import view_payloads
from market.book import Book, ViewPage, book_from_views, complete_views, deadlines, settlers_at
from market.disputes import Signed, defaulters, excluded_from, exclusion_lag
from market.intervals import charter_in_force
from market.judge import Context, judge_settlement
from market.settle import is_v2, listed_trades
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
        excluded=frozenset(excluded_for(store, charters, state.grid, state.interval)),
    )


def settlement_history(
    store: Store, grid: str, k: int, context: Context | None = None
) -> dict[bytes, list[Signed]]:
    """Every agent's settlements of `k`, oldest first, with their trades.

    A settlement that carries only a digest is expanded with `context` (the judge recomputes it
    from the views it names); without a context, or when it does not match, its trades are None.
    """
    out: dict[bytes, list[Signed]] = {}
    for a in store.by_interval(grid, k, ("settlement",)):
        trades = listed_trades(a.payload)
        if trades is None and context is not None and is_v2(a.payload):
            trades = judge_settlement(a.author, a.payload, context).trades
        listed = None if trades is None else tuple(tuple(t) for t in trades)
        out.setdefault(a.author, []).append(Signed(a.seq, a.ts, listed))
    return out


def defaults_of(store: Store, charters: list[Charter], grid: str, j: int) -> set[bytes]:
    """The defaulters of interval `j` (market.disputes.defaulters over its listed trades)."""
    history = settlement_history(store, grid, j)  # listed trades only: no expansion
    return defaulters(history, final_us=deadlines(charters, j).final_us)


def excluded_for(store: Store, charters: list[Charter], grid: str, k: int) -> set[bytes]:
    """Agents whose orders leave the book of `k`: recent defaulters (market.disputes)."""
    c = charter_in_force(charters, k)
    lag = exclusion_lag(c.interval_ms, c.final_deadline_ms())
    n = c.exclude_intervals
    defaults = {
        j: defaults_of(store, charters, grid, j) for j in range(k - lag - n + 1, k - lag + 1)
    }
    return excluded_from(defaults, k, lag=lag, n=n)


def view_to_sign(store: Store, grid: str, k: int, gate_us: int) -> list[dict]:
    """The view pages this node signs for `k`: every order of the grid for `k` it holds, stamped
    at or before the gate (sign them in order with `type="view"`, after `Deadlines.view_from_us`)."""
    hashes = [a.hash for a in store.by_interval(grid, k, ("offer", "bid")) if a.ts <= gate_us]
    return view_payloads(k, hashes)


def interval_book(
    store: Store, charters: list[Charter], state: IntervalState
) -> tuple[list[bytes], Book]:
    """The grid's settlers for `state`'s interval and the book its views give on this node."""
    ctx = judge_context(store, charters, state)
    book = book_from_views(
        ctx.orders,
        ctx.views,
        ctx.settlers,
        gate_us=ctx.gate_us,
        forked=ctx.forked,
        excluded=ctx.excluded,
        rules=ctx.rules,
    )
    return list(ctx.settlers), book
