"""Request limits without I/O: address blocks, bounded buckets, the ceiling, the members' lane,
and the log throttle."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from node.http.connections import LogThrottle
from node.http.limits import LANE_DENIED_S, Buckets, RequestLimits, address_block


def test_address_blocks_are_slash_24_and_slash_64():
    assert address_block("127.0.0.2") == address_block("127.0.0.17") == "127.0.0.0/24"
    assert address_block("127.0.1.2") != address_block("127.0.0.2")
    assert address_block("2001:db8:1:2:aaaa::1") == address_block("2001:db8:1:2:bbbb::9")
    assert address_block("2001:db8:1:3::1") != address_block("2001:db8:1:2::1")
    assert address_block("::ffff:10.1.2.3") == "10.1.2.0/24"
    assert address_block(None) == "?" and address_block("not an address") == "not an address"


@given(keys=st.lists(st.integers(0, 50), min_size=1, max_size=300))
def test_buckets_hold_at_most_max_keys_and_forget_the_least_recently_used(keys):
    buckets = Buckets(rate=1.0, burst=2.0, max_keys=8)
    for key in keys:
        buckets.take(str(key), now=0.0)
    assert len(buckets.buckets) == min(8, len(set(keys)))
    assert str(keys[-1]) in buckets.buckets  # the newest is never the one forgotten


def test_a_block_gets_its_burst_then_waits_and_many_blocks_never_clear_it():
    limits = RequestLimits(rate=10, burst=20, ceiling=10_000.0)
    waits = [limits.admit("10.0.0.0/24", "/v1/agents", now=0.0) for _ in range(25)]
    assert waits[:20] == [0.0] * 20 and all(w > 0 for w in waits[20:])
    for n in range(1, 9_990):  # 10,000 blocks held: none is cleared
        limits.admit(f"11.{n // 256}.{n % 256}.0/24", "/v1/agents", now=0.0)
    assert len(limits.blocks.buckets) == 9_990
    assert limits.admit("10.0.0.0/24", "/v1/agents", now=0.0) > 0.0
    for n in range(20_000):  # beyond the bound, the least recently used go first
        limits.admit(f"12.{n // 256}.{n % 256}.0/24", "/v1/agents", now=0.0)
    assert len(limits.blocks.buckets) == 10_000


def test_the_global_ceiling_spares_info():
    limits = RequestLimits(rate=10, burst=20, ceiling=2.0)
    for n in range(40):
        assert limits.admit(f"10.0.{n}.0/24", "/v1/agents", now=0.0) == 0.0
    assert limits.admit("10.9.9.0/24", "/v1/agents", now=0.0) > 0.0
    assert limits.admit("10.9.9.0/24", "/v1/info", now=0.0) == 0.0


def test_the_members_lane_is_per_author_and_lost_by_a_block_that_forges():
    limits = RequestLimits(rate=400, burst=800)  # authors: 100/s, bursts of 200
    alice, bob = b"a" * 32, b"b" * 32
    assert [limits.lane("10.0.0.0/24", {alice}, now=0.0) for _ in range(201)] == \
        [True] * 200 + [False]
    slow = RequestLimits(rate=5, burst=10)  # a member's lane never drops below 20/s, 40 burst
    assert sum(slow.lane("10.0.0.0/24", {alice}, now=0.0) for _ in range(50)) == 40
    assert limits.lane("10.0.0.0/24", {bob}, now=0.0)  # another author has its own bucket
    assert not limits.lane("10.0.0.0/24", set(), now=0.0)  # nothing fresh: no lane
    limits.deny_lane("10.0.0.0/24", now=0.0)
    assert not limits.lane("10.0.0.0/24", {bob}, now=1.0)
    assert limits.lane("10.0.0.0/24", {bob}, now=LANE_DENIED_S + 1)


def test_warnings_are_logged_once_a_minute_per_kind_with_a_count():
    throttle = LogThrottle(window_s=60.0)
    def record(msg: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("x", level, __file__, 1, msg, None, None)
    assert throttle.filter(record("accept failed"))
    assert not any(throttle.filter(record("accept failed")) for _ in range(500))
    assert throttle.filter(record("another kind"))
    assert all(throttle.filter(record("settled", logging.INFO)) for _ in range(5))
    since, held = throttle.kinds[("x", logging.WARNING, "accept failed")]
    throttle.kinds[("x", logging.WARNING, "accept failed")] = (since - 61.0, held)
    later = record("accept failed")
    assert throttle.filter(later) and "500 more like this" in later.getMessage()
