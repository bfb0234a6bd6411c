"""Protocol 2: when a settler signs its view, settles, revises or abstains (market.plan)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from market.book import Book, Deadlines
from market.orders import book_digest, make_order
from market.plan import next_step, view_step

D = Deadlines(gate_us=1_000, view_from_us=3_000, view_us=7_000, final_us=20_000)
IDS = [bytes([i]) * 32 for i in range(5)]
ORDER = make_order(IDS[0], 1, "bid", 1, 10, 1, 0)


def book(used: int, missing: int = 0, orders=(ORDER,)) -> Book:
    return Book(
        tuple(orders), tuple(IDS[:used]), tuple(bytes([9]) * 32 for _ in range(missing)), used >= 3
    )


def step(now, b, settled=None, *, synced=True, signed_view=True):
    return next_step(
        now, D, synced=synced, signed_view=signed_view, settlers=IDS, book=b, settled_book=settled
    ).action


def test_the_view_waits_for_grace_and_sync_but_never_misses_its_deadline():
    assert view_step(2_000, D, synced=True, signed_view=False).action == "wait"
    assert view_step(3_000, D, synced=True, signed_view=False).action == "sign-view"
    assert view_step(4_000, D, synced=False, signed_view=False).action == "wait"
    assert view_step(5_000, D, synced=False, signed_view=False).action == "sign-view"
    assert view_step(7_001, D, synced=False, signed_view=False) is None  # too late to count
    assert view_step(4_000, D, synced=True, signed_view=True) is None


def test_settle_with_every_view_or_a_majority_at_the_deadline_never_with_orders_missing():
    assert step(4_000, book(5)) == "settle"
    assert step(4_000, book(3)) == "wait"  # more views may come before the deadline
    assert step(7_000, book(3)) == "settle"
    assert step(8_000, book(2)) == "wait"  # no quorum yet
    assert step(8_000, book(5, missing=1)) == "wait"
    assert step(20_001, book(2)) == "abstain"
    assert step(20_001, book(5, missing=2)) == "abstain"


def test_revise_when_late_views_change_the_book_until_the_final_deadline():
    old = book_digest([])
    assert step(9_000, book(5), old) == "revise"
    assert step(9_000, book(5), book_digest([ORDER])) == "done"
    assert step(9_000, book(4), book_digest([ORDER])) == "wait"
    assert step(20_001, book(5), old) == "done"  # after F_k a revision would not count


@given(
    st.integers(0, 30_000),
    st.integers(0, 5),
    st.integers(0, 2),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_never_settle_outside_the_window_or_on_an_incomplete_book(
    now, used, missing, synced, signed, settled
):
    b = book(used, missing)
    action = step(now, b, book_digest([]) if settled else None, synced=synced, signed_view=signed)
    if action in ("settle", "revise"):
        assert D.view_from_us <= now <= D.final_us and b.quorum and not b.missing
    if action == "sign-view":
        assert D.view_from_us <= now <= D.view_us
