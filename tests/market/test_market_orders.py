"""Order books: what takes part in an interval's clearing, and the book digest."""

import hashlib

from ledger import codec
from market.orders import Order, book_digest, make_order, select_book

A, B, C = (bytes([i]) * 32 for i in (1, 2, 3))
GATE = 1_000_000


def order(author, seq, side="bid", interval=5, energy=100, price=10, ts=GATE - 10):
    return make_order(author, seq, side, interval, energy, price, ts)


def test_make_order_hash_is_blake2b_of_the_canonical_fields():
    o = make_order(A, 3, "offer", 7, 250, 15000, 42)
    fields = [A, 3, "offer", 7, 250, 15000, 42]
    assert o.hash == hashlib.blake2b(codec.encode(fields), digest_size=32).digest()
    assert o == Order(o.hash, A, 3, "offer", 7, 250, 15000, 42)
    assert make_order(A, 3, "offer", 7, 250, 15001, 42).hash != o.hash


def test_order_at_the_gate_counts_and_a_late_one_does_not():
    on_time = order(A, 1, ts=GATE)
    late = order(B, 1, ts=GATE + 1)
    book = select_book([on_time, late], gate_us=GATE, members={A, B}, forked=set())
    assert book == [on_time]


def test_forked_and_foreign_authors_are_left_out():
    mine, forked, stranger = order(A, 1), order(B, 1), order(C, 1)
    book = select_book([mine, forked, stranger], gate_us=GATE, members={A, B}, forked={B})
    assert book == [mine]


def test_latest_order_per_side_and_interval_replaces_earlier_ones():
    first = order(A, 1, energy=100)
    second = order(A, 2, energy=200)
    offer = order(A, 3, side="offer")
    other_interval = order(A, 4, interval=6)
    # Given out of order: seq decides, not the position in the input.
    book = select_book(
        [second, offer, first, other_interval], gate_us=GATE, members={A}, forked=set()
    )
    assert sorted(book, key=lambda o: o.seq) == [second, offer, other_interval]


def test_a_late_replacement_replaces_nothing():
    on_time = order(A, 1, energy=100)
    late_replacement = order(A, 2, energy=900, ts=GATE + 5)
    assert select_book([on_time, late_replacement], gate_us=GATE, members={A}, forked=set()) == [
        on_time
    ]


def test_book_is_sorted_by_hash():
    orders = [order(a, s) for a in (A, B, C) for s in (1,)] + [order(B, 2, side="offer")]
    book = select_book(orders, gate_us=GATE, members={A, B, C}, forked=set())
    assert [o.hash for o in book] == sorted(o.hash for o in orders)


def test_book_digest_covers_every_order_in_any_order():
    orders = [order(A, 1), order(B, 1), order(C, 1, side="offer")]
    expected = hashlib.blake2b(b"".join(sorted(o.hash for o in orders)), digest_size=32).digest()
    assert book_digest(orders) == expected
    assert book_digest(list(reversed(orders))) == expected
    assert book_digest(orders[:2]) != expected
    assert book_digest([]) == hashlib.blake2b(b"", digest_size=32).digest()
