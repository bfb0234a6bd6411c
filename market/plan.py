"""What a settler does next for an interval (protocol 2): a pure decision the agent loop follows.

The node calls `next_step` on every tick for each interval between its gate and its final
deadline, with what it knows; it performs the step and calls again. The rules:

1. Nothing before `G_k + grace_ms`. Then sign the view once synced with the live peers, or at
   the latest when half the view window is gone (a late sync must not cost the vote); never
   after the view deadline.
2. Settle once every settler's view is held, or at the view deadline with a majority, and only
   when every counted order is held (a book with `missing` orders is not complete).
3. Revise when the book the views now give differs from the one last settled, until `F_k`.
4. Abstain, and say why, when `F_k` passes without a quorum or with counted orders missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from market.book import Book, Deadlines, majority
from market.orders import book_digest

STEPS = ("wait", "sign-view", "settle", "revise", "abstain", "done")


@dataclass(frozen=True, slots=True)
class Step:
    """`action` is one of STEPS; `reason` says why, for the log, /v1/info and the status LED."""

    action: str
    reason: str = ""


def view_step(now_us: int, d: Deadlines, *, synced: bool, signed_view: bool) -> Step | None:
    """Whether to sign our view now; None when the view is signed or can no longer count."""
    if signed_view or now_us > d.view_us:
        return None
    if now_us < d.view_from_us:
        return Step("wait", "gate closed; views are signed after the grace period")
    halfway = d.view_from_us + (d.view_us - d.view_from_us) // 2
    if synced or now_us >= halfway:
        return Step(
            "sign-view", "synced" if synced else "sync incomplete; signing before the deadline"
        )
    return Step("wait", "syncing with live peers before signing the view")


def next_step(
    now_us: int,
    d: Deadlines,
    *,
    synced: bool,
    signed_view: bool,
    settlers: list[bytes],
    book: Book,
    settled_book: bytes | None,
) -> Step:
    """The next thing to do for one interval. `book` is `book_from_views` over the views held;
    `settled_book` the `book` digest of our last settlement of the interval (None: none yet)."""
    if now_us < d.view_from_us:
        return Step("wait", "gate not closed, or within the grace period")
    step = view_step(now_us, d, synced=synced, signed_view=signed_view)
    if step is not None:
        return step
    if now_us > d.final_us:
        if settled_book is not None:
            return Step("done", "final deadline passed")
        why = "no majority of views" if not book.quorum else f"{len(book.missing)} orders missing"
        return Step("abstain", f"final deadline passed: {why}")
    if not book.quorum:
        return Step("wait", f"{len(book.used)} of {majority(settlers)} views needed")
    if book.missing:
        return Step("wait", f"fetching {len(book.missing)} counted orders")
    everyone = len(book.used) == len(set(settlers))
    if settled_book is None:
        if everyone or now_us >= d.view_us:
            return Step("settle", "every view held" if everyone else "view deadline passed")
        return Step("wait", f"{len(book.used)} of {len(set(settlers))} views held")
    if book_digest(book.orders) != settled_book:
        return Step("revise", "views that arrived late changed the book")
    return Step("done" if everyone else "wait", "settled")
