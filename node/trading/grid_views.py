"""Protocol 2 read from a store: settlers, views, the majority book, expanded settlements.

A thin reader over the pure rules of `market.book`, `market.judge` and `market.disputes`: it
turns stored actions into their inputs, so the agent loop, the API, the bills and the audit
build the same book and read the same trades. A settlement that carries only its trades'
digest is expanded here: settlements that name the same views share one clearing, so a grid of
1,000 agents costs one clearing per view set, not one per agent.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.actions import Action
from ledger.charter import Charter
from ledger.store import Store
from ledger.view import bitmap_authors, settlers_digest, view_payloads
from market.book import (
    Book,
    Deadlines,
    ViewPage,
    book_from_views,
    complete_views,
    deadlines,
    settlers_at,
)
from market.clearing import clear
from market.disputes import Signed, defaulters, excluded_from, exclusion_lag
from market.intervals import charter_in_force
from market.judge import Context, Verdict, judge_settlement, matches_clearing
from market.orders import Order
from market.participants import Participant
from market.settle import expand_trades, is_v2, listed_trades
from market.trades import Clearing

DEMO_PACE_MS = 60_000
HOUR_MS = 3_600_000


def energy_window_ms(charter: Charter) -> int:
    """The time an interval's energy stands for, for battery power limits.

    A charter with intervals shorter than a minute runs a sped-up day (the demo, tests): each
    interval stands for an hour of the kit's day. Every node and auditor derives this from the
    charter alone, so clearing stays the same everywhere.
    """
    return HOUR_MS if charter.interval_ms < DEMO_PACE_MS else charter.interval_ms


def order_of(a: Action) -> Order:
    """A signed offer or bid as a market order."""
    p = a.payload
    return Order(a.hash, a.author, a.seq, a.type, p["interval"], p["energy_wh"], p["price"], a.ts)


def participants_of(store: Store, grid: str) -> dict[bytes, Participant]:
    """Every agent of `grid`, from its genesis."""
    return {
        r["author"]: Participant(
            r["author"], r["name"], r["role"], r["household"], r["capacity_wh"], r["max_power_w"]
        )
        for r in store.agents()
        if r["grid"] == grid
    }


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


def has_views(store: Store, grid: str, k: int) -> bool:
    """True when some settler's view of `k` is held (the interval runs protocol 2)."""
    return bool(store.by_interval(grid, k, ("view",)))


def evidence_orders(store: Store, grid: str, k: int, forked: frozenset[bytes]) -> list[Order]:
    """The orders for `k` of `grid` that this node holds as fork evidence.

    A forked author's chain holds one branch of the fork; the other branch is held only as
    evidence. When a majority of views counted the branch this chain lacks, that order can never
    be fetched (every node keeps the first branch it got), yet it is held: its author is barred
    from the book anyway, so it must not be reported missing (the node would abstain)."""
    out = []
    for author in sorted(forked):
        head = store.head(author)
        if head is None or head.grid != grid:
            continue
        for a in store.fork_evidence(author):
            if a.type in ("offer", "bid") and a.payload["interval"] == k:
                out.append(order_of(a))
    return out


def views_context(
    store: Store,
    charters: list[Charter],
    grid: str,
    k: int,
    orders: list[Order],
    participants: dict[bytes, Participant],
) -> Context | None:
    """The judge's context for interval `k` of `grid` (None: the grid has no market in `k`).
    Its orders are `orders` and the orders for `k` held as fork evidence (`evidence_orders`)."""
    charter = charter_in_force(charters, k)
    rules = charter.grids.get(grid)
    if rules is None:
        return None
    d = deadlines(charters, k)
    forked = frozenset(store.forked_authors())
    held = {o.hash for o in orders}
    evidence = [o for o in evidence_orders(store, grid, k, forked) if o.hash not in held]
    return Context(
        interval=k,
        settlers=grid_settlers(store, grid, d.gate_us),
        views=complete_views(view_pages(store, grid, k), gate_us=d.gate_us, view_us=d.view_us),
        orders=[*orders, *evidence],
        participants=participants,
        rules=rules,
        gate_us=d.gate_us,
        interval_ms=energy_window_ms(charter),
        forked=forked,
        excluded=frozenset(excluded_for(store, charters, grid, k)),
    )


def book_of(ctx: Context, views: dict[bytes, frozenset[bytes]] | None = None) -> Book:
    """The book the views of `ctx` (or only `views`) give."""
    return book_from_views(
        ctx.orders,
        ctx.views if views is None else views,
        ctx.settlers,
        gate_us=ctx.gate_us,
        forked=ctx.forked,
        excluded=ctx.excluded,
        rules=ctx.rules,
    )


@dataclass(frozen=True, slots=True)
class IntervalBook:
    """What the agent needs to decide and sign for one interval."""

    deadlines: Deadlines
    context: Context
    book: Book


def interval_book(store: Store, charters: list[Charter], grid: str, k: int) -> IntervalBook | None:
    """Interval `k`'s deadlines, context and the book its views give on this node."""
    actions = store.by_interval(grid, k, ("offer", "bid"))
    ctx = views_context(
        store, charters, grid, k, [order_of(a) for a in actions], participants_of(store, grid)
    )
    if ctx is None:
        return None
    return IntervalBook(deadlines(charters, k), ctx, book_of(ctx))


def cleared_views(
    ctx: Context, payload: dict, cache: dict[tuple, tuple | None]
) -> tuple[Book, Clearing] | None:
    """The book and clearing of the views a v2 settlement names (None when this node cannot
    rebuild them); cached by (settlers, views), which every settler of one book shares."""
    key = (bytes(payload["settlers"]), bytes(payload["views"]))
    if key not in cache:
        cache[key] = None
        named = bitmap_authors(ctx.settlers, payload["views"])
        if (
            payload["settlers"] == settlers_digest(ctx.settlers)
            and named is not None
            and all(a in ctx.views for a in named)
        ):
            book = book_of(ctx, {a: ctx.views[a] for a in named})
            if not book.missing:
                clearing = clear(
                    list(book.orders),
                    dict(ctx.participants),
                    ctx.rules,
                    interval_ms=ctx.interval_ms,
                )
                cache[key] = (book, clearing)
    return cache[key]


def judge_cached(
    agent: bytes, payload: dict, ctx: Context, cache: dict[tuple, tuple | None]
) -> Verdict:
    """`market.judge.judge_settlement`, with the clearing shared by the settlements that name
    the same views (a grid of 1,000 settlers is judged with one clearing, not 1,000)."""
    cleared = (
        cleared_views(ctx, payload, cache) if payload["mechanism"] == ctx.rules.mechanism else None
    )
    if cleared is not None:
        verdict = matches_clearing(agent, payload, ctx, *cleared)
        if verdict is not None:
            return verdict
    return judge_settlement(agent, payload, ctx)  # the full judge says why (or tries forks)


def expanded(
    author: bytes, payload: dict, ctx: Context | None, cache: dict[tuple, tuple | None]
) -> list | None:
    """A settlement's trades: listed, or recomputed from the views it names; None if unknown."""
    trades = listed_trades(payload)
    if trades is not None or ctx is None or not is_v2(payload):
        return trades
    cleared = cleared_views(ctx, payload, cache)
    if cleared is not None:
        trades = expand_trades(payload, [t.to_wire() for t in cleared[1].trades_of(author)])
    if trades is None:  # e.g. the settler did not know of a fork yet: the full judge
        trades = judge_settlement(author, payload, ctx).trades
    return None if trades is None else list(trades)


def settlement_history(
    store: Store, grid: str, k: int, context: Context | None = None
) -> dict[bytes, list[Signed]]:
    """Every agent's settlements of `k`, oldest first, with their trades (None: a digest that
    could not be expanded, or no `context` to expand it with)."""
    out: dict[bytes, list[Signed]] = {}
    cache: dict[tuple, tuple | None] = {}
    for a in store.by_interval(grid, k, ("settlement",)):
        trades = expanded(a.author, a.payload, context, cache)
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
