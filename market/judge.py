"""The audit of a protocol-2 settlement: judged against the book its settler could have had.

The auditor never clears the orders that happen to be in its own store. It takes the views the
settlement names (bitmap over the grid's settlers), builds the book from exactly those with
`market.book.book_from_views`, clears it with the charter's mechanism and compares. An honest
settler ran the same pure functions on the same signed views, so it always matches; when the
auditor cannot rebuild that book (it lacks a named view or a counted order, or knows other
settlers), the verdict is `unverifiable`, never an accusation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger.charter import GridRules
from ledger.view import bitmap_authors, settlers_digest
from market.book import Book, book_from_views
from market.clearing import clear
from market.orders import Order
from market.participants import Participant
from market.settle import settlement_payload_v2
from market.trades import Clearing

VERDICTS = ("matches", "differs", "unverifiable")
COMPARED = (
    "mechanism",
    "book",
    "trade_count",
    "trades_digest",
    "grid_import_wh",
    "grid_export_wh",
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """`status` is one of VERDICTS; `detail` says why, for people."""

    status: str
    detail: str = ""
    trades: tuple[tuple, ...] | None = None  # "matches": the settler's full trade list


@dataclass(frozen=True, slots=True)
class Context:
    """What the auditor knows of one grid's interval, from the chains alone."""

    interval: int
    settlers: Sequence[bytes]
    views: Mapping[bytes, frozenset[bytes]]  # market.book.complete_views over every view held
    orders: Sequence[Order]  # every order held for the interval
    participants: Mapping[bytes, Participant]
    rules: GridRules
    gate_us: int
    interval_ms: int | None = None
    forked: frozenset[bytes] = frozenset()
    excluded: frozenset[bytes] = frozenset()


def judge_settlement(agent: bytes, payload: dict, ctx: Context) -> Verdict:
    """Judge `agent`'s protocol-2 settlement `payload` against the views it names."""
    if payload["mechanism"] != ctx.rules.mechanism:
        return Verdict(
            "differs",
            f"mechanism {payload['mechanism']!r}, the charter says {ctx.rules.mechanism!r}",
        )
    if payload["settlers"] != settlers_digest(ctx.settlers):
        return Verdict("unverifiable", "it knew other settlers than the auditor")
    named = bitmap_authors(ctx.settlers, payload["views"])
    if named is None:
        return Verdict("differs", "its view bitmap does not fit the grid's settlers")
    absent = [a for a in named if a not in ctx.views]
    if absent:
        return Verdict("unverifiable", f"the auditor lacks {len(absent)} view(s) it names")
    views = {a: ctx.views[a] for a in named}
    for forked in _fork_knowledge(ctx.forked):
        book = book_from_views(
            ctx.orders,
            views,
            ctx.settlers,
            gate_us=ctx.gate_us,
            forked=forked,
            excluded=ctx.excluded,
            rules=ctx.rules,
        )
        if book.missing:
            return Verdict(
                "unverifiable", f"the auditor lacks {len(book.missing)} counted order(s)"
            )
        clearing = clear(
            list(book.orders), dict(ctx.participants), ctx.rules, interval_ms=ctx.interval_ms
        )
        verdict = matches_clearing(agent, payload, ctx, book, clearing)
        if verdict is not None:
            return verdict
    return Verdict(
        "differs", "its settlement differs from the recomputation over the views it names"
    )


def matches_clearing(
    agent: bytes, payload: dict, ctx: Context, book: Book, clearing: Clearing
) -> Verdict | None:
    """`matches` (with its trades) when the settlement is the one `agent` signs for this book
    and clearing; None when it differs."""
    expected = settlement_payload_v2(
        agent,
        ctx.interval,
        ctx.rules.mechanism,
        book,
        clearing,
        ctx.settlers,
        inline_max=len(clearing.trades),
    )
    if all(payload[k] == expected[k] for k in COMPARED):
        return Verdict("matches", trades=tuple(tuple(t) for t in expected["trades"]))
    return None


def _fork_knowledge(forked: frozenset[bytes]) -> list[frozenset[bytes]]:
    """The settler may not have known of every fork yet: try ours, then none."""
    return [forked, frozenset()] if forked else [forked]
