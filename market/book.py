"""The book of an interval as the grid saw it (protocol 2): built from the settlers' views.

An order's own `ts` is chosen by its author, so it cannot decide alone whether the order counts.
Shortly after gate closure every settler signs a view (`ledger.view`): the hashes of the orders
for the interval it holds. The book of interval `k` is the set of orders whose hash is in the
on-time views of a strict majority of the grid's settlers, and whose `ts` is at or before the
gate. An order published after the honest settlers signed their views is in none of them, so it
never counts, whatever `ts` it claims; a liar's own view is one vote of many and cannot put an
order in. Of an author's counted orders per side, the highest `seq` wins; ties go by hash order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ledger.charter import Charter, GridRules
from ledger.limits import order_within
from market.intervals import Charters, charter_in_force, gate_closure_us
from market.orders import Order


@dataclass(frozen=True, slots=True)
class Deadlines:
    """The instants (µs) that govern interval `k`: gate, view deadline, final settlement."""

    gate_us: int
    view_from_us: int  # gate + grace: when settlers sign their views (after syncing)
    view_us: int  # a view stamped after this is late and does not count
    final_us: int  # the last settlement an agent stamped at or before this counts


def deadlines(charters: Charters, k: int) -> Deadlines:
    """Gate closure, view deadline and final deadline of interval `k` from the charter."""
    charter: Charter = charter_in_force(charters, k)
    gate = gate_closure_us(charters, k)
    view, final = charter.view_deadline_ms(), charter.final_deadline_ms()
    grace = gate + charter.grace_ms * 1000
    return Deadlines(gate, grace, gate + view * 1000, gate + final * 1000)


@dataclass(frozen=True, slots=True)
class ViewPage:
    """One signed `view` entry, decoded: who signed it, where in its chain, and what it lists."""

    author: bytes
    seq: int
    ts: int
    interval: int
    page: int
    pages: int
    orders: tuple[bytes, ...]


def complete_views(
    pages: Iterable[ViewPage], *, gate_us: int, view_us: int
) -> dict[bytes, frozenset[bytes]]:
    """Each author's on-time, complete view: author -> the order hashes it lists.

    On time: `gate_us < ts <= view_us`. Per author, its first on-time page (lowest `seq`) fixes
    the page count; for each page number the lowest `seq` page with that count is taken. An author
    missing a page has no view yet. Lowest `seq` makes a later, second view of the same interval
    change nothing, and a node that holds a page holds every earlier one (chains are contiguous).
    """
    by_author: dict[bytes, list[ViewPage]] = {}
    for p in pages:
        if gate_us < p.ts <= view_us:
            by_author.setdefault(p.author, []).append(p)
    views: dict[bytes, frozenset[bytes]] = {}
    for author, own in by_author.items():
        own.sort(key=lambda p: p.seq)
        count = own[0].pages
        chosen: dict[int, ViewPage] = {}
        for p in own:
            if p.pages == count and p.page not in chosen:
                chosen[p.page] = p
        if len(chosen) == count:
            views[author] = frozenset(h for p in chosen.values() for h in p.orders)
    return views


def majority(settlers: Iterable[bytes]) -> int:
    """Views needed for an order to count: a strict majority of the settlers."""
    return len(set(settlers)) // 2 + 1


@dataclass(frozen=True, slots=True)
class Book:
    """The book of one interval, and what a node needs to know whether it may settle on it."""

    orders: tuple[Order, ...]  # sorted by hash: what clears
    used: tuple[bytes, ...]  # authors of the views counted, sorted
    missing: tuple[bytes, ...]  # hashes a majority holds but this node lacks, sorted
    quorum: bool  # at least a majority of the settlers' views were counted


def book_from_views(
    orders: Iterable[Order],
    views: Mapping[bytes, frozenset[bytes]],
    settlers: Iterable[bytes],
    *,
    gate_us: int,
    forked: Iterable[bytes] = (),
    excluded: Iterable[bytes] = (),
    rules: GridRules | None = None,
) -> Book:
    """The book of an interval from the settlers' views (see the module docstring).

    Only views of `settlers` count. Orders of `forked` or `excluded` authors, of non-settlers,
    stamped after `gate_us`, or beyond the charter `rules`' limits never count. Pure and
    deterministic: the same views and orders give the same book on every node.
    """
    members = set(settlers)
    used = sorted(a for a in views if a in members)
    need = majority(members)
    votes: dict[bytes, int] = {}
    for author in used:
        for h in views[author]:
            votes[h] = votes.get(h, 0) + 1
    counted = {h for h, n in votes.items() if n >= need}
    held = {o.hash: o for o in orders if o.hash in counted}
    barred = set(forked) | set(excluded)
    latest: dict[tuple[bytes, str, int], Order] = {}
    for o in held.values():
        if o.ts > gate_us or o.author not in members or o.author in barred:
            continue
        if rules is not None and not order_within(rules, o.energy_wh, o.price):
            continue
        key = (o.author, o.side, o.interval)
        kept = latest.get(key)
        if kept is None or (o.seq, o.hash) > (kept.seq, kept.hash):
            latest[key] = o
    book = tuple(sorted(latest.values(), key=lambda o: o.hash))
    missing = tuple(sorted(counted - held.keys()))
    return Book(book, tuple(used), missing, len(used) >= need)


def settlers_at(genesis_ts: Mapping[bytes, int], gate_us: int) -> list[bytes]:
    """The grid's settlers for an interval: members whose genesis is stamped before its gate."""
    return sorted(a for a, ts in genesis_ts.items() if ts <= gate_us)
