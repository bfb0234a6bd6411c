"""Interval index <-> time, gate closure and settlement time (PROTOCOL section 6).

Every function takes either one `Charter` (the version already chosen for the interval, e.g. with
`ledger.charter.charter_for_interval`) or a sequence of charter versions, in which case the version
in force for each interval is chosen here: the newest whose `effective_from <= k`. Intervals before
every version's `effective_from` follow the earliest version's timing.

Within a version, interval `k` starts at `epoch_us + k * interval_ms * 1000`; its gate closes
`lead_ms` before it starts and it is settled `grace_ms` after gate closure. Times are integer
microseconds; intervals may be as short as a demo or a test needs (one millisecond upward).
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.charter import Charter, charter_for_interval

Charters = Charter | Sequence[Charter]


def _versions(charters: Charters) -> list[Charter]:
    if isinstance(charters, Charter):
        return [charters]
    versions = list(charters)
    if not versions:
        raise ValueError("no charter version given")
    return versions


def charter_in_force(charters: Charters, k: int) -> Charter:
    """The charter version that governs interval `k`."""
    if isinstance(charters, Charter):
        return charters
    versions = _versions(charters)
    chosen = charter_for_interval(versions, k)
    if chosen is None:  # before every version: the earliest one's timing
        chosen = min(versions, key=lambda c: (c.effective_from, -c.version))
    return chosen


def interval_start_us(charters: Charters, k: int) -> int:
    c = charter_in_force(charters, k)
    return c.epoch_us + k * c.interval_ms * 1000


def gate_closure_us(charters: Charters, k: int) -> int:
    """Orders for `k` count when their `ts` is at or before this instant."""
    return interval_start_us(charters, k) - charter_in_force(charters, k).lead_ms * 1000


def settle_at_us(charters: Charters, k: int) -> int:
    """When every node clears and settles interval `k`."""
    return gate_closure_us(charters, k) + charter_in_force(charters, k).grace_ms * 1000


def interval_at(charters: Charters, ts_us: int) -> int:
    """The interval in progress at `ts_us` (start <= ts_us < next start)."""
    versions = _versions(charters)
    candidates = []
    for c in versions:
        k = (ts_us - c.epoch_us) // (c.interval_ms * 1000)
        if charter_in_force(versions, k) is c:
            candidates.append(k)
    if candidates:
        return max(candidates)
    first = charter_in_force(versions, -(2**62))
    return (ts_us - first.epoch_us) // (first.interval_ms * 1000)


def next_open_interval(charters: Charters, now_us: int) -> int:
    """The first interval whose gate has not closed at `now_us` (gate closure >= now_us)."""
    k = interval_at(charters, now_us)
    while gate_closure_us(charters, k) < now_us:
        k += 1
    return k
