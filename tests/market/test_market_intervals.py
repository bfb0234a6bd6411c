"""Interval timing from the charter (PROTOCOL section 6), short intervals included."""

import pytest

from ledger.charter import Charter
from market.intervals import (
    charter_in_force,
    gate_closure_us,
    interval_at,
    interval_start_us,
    next_open_interval,
    settle_at_us,
)

EPOCH = 1_700_000_000_000_000
# A demo charter: 10 s intervals, gate 2 s before the start, settlement 1 s after the gate.
DEMO = Charter(
    community="test",
    admin=b"\x01" * 32,
    epoch_us=EPOCH,
    interval_ms=10_000,
    lead_ms=2_000,
    grace_ms=1_000,
)


def test_times_of_an_interval():
    assert interval_start_us(DEMO, 0) == EPOCH
    assert interval_start_us(DEMO, 3) == EPOCH + 30_000_000
    assert gate_closure_us(DEMO, 3) == EPOCH + 28_000_000
    assert settle_at_us(DEMO, 3) == EPOCH + 29_000_000


def test_interval_at_boundaries_and_before_the_epoch():
    assert interval_at(DEMO, EPOCH) == 0
    assert interval_at(DEMO, EPOCH + 9_999_999) == 0
    assert interval_at(DEMO, EPOCH + 10_000_000) == 1
    assert interval_at(DEMO, EPOCH - 1) == -1


def test_next_open_interval_is_the_first_whose_gate_has_not_closed():
    # During interval 0, the gate of 1 closes at 8 s: until then 1 is open, afterwards 2.
    assert next_open_interval(DEMO, EPOCH + 1_000_000) == 1
    assert next_open_interval(DEMO, EPOCH + 8_000_000) == 1  # an order stamped at the gate counts
    assert next_open_interval(DEMO, EPOCH + 8_000_001) == 2
    assert next_open_interval(DEMO, EPOCH - 5_000_000) == 0


def test_millisecond_intervals_for_tests():
    fast = Charter(
        community="t", admin=b"\x01" * 32, epoch_us=0, interval_ms=3, lead_ms=2, grace_ms=1
    )
    assert [gate_closure_us(fast, k) for k in range(3)] == [-2000, 1000, 4000]
    assert interval_at(fast, 5999) == 1
    assert next_open_interval(fast, 1000) == 1
    assert next_open_interval(fast, 1001) == 2


def test_a_later_version_governs_from_its_effective_interval():
    # Version 2 halves the interval from interval 100 on; its epoch keeps interval 100's start.
    start_100 = EPOCH + 100 * 10_000_000
    v2 = Charter(
        community="test", admin=b"\x01" * 32, version=2, effective_from=100,
        epoch_us=start_100 - 100 * 5_000_000, interval_ms=5_000, lead_ms=1_000, grace_ms=500,
    )  # fmt: skip
    versions = [v2, DEMO]
    assert charter_in_force(versions, 99) is DEMO
    assert charter_in_force(versions, 100) is v2
    assert interval_start_us(versions, 99) == start_100 - 10_000_000
    assert interval_start_us(versions, 100) == start_100
    assert interval_start_us(versions, 101) == start_100 + 5_000_000
    assert gate_closure_us(versions, 101) == start_100 + 4_000_000
    assert settle_at_us(versions, 101) == start_100 + 4_500_000
    assert interval_at(versions, start_100 - 1) == 99
    assert interval_at(versions, start_100) == 100
    assert interval_at(versions, start_100 + 7_000_000) == 101
    assert next_open_interval(versions, start_100 - 3_000_000) == 100
    assert next_open_interval(versions, start_100 - 500_000) == 101
    assert interval_at(versions, EPOCH) == 0  # under version 1's timing


def test_no_version_at_all_is_an_error():
    with pytest.raises(ValueError):
        interval_at([], EPOCH)
