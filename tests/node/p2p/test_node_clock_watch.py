"""The clock watch without processes: samples, the majority rule, the guard, the counts."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.status import ErrorLevel, StatusReporter
from node.errors import NotSigned, UserError
from node.p2p.clock import ClockWatch, peer_time_us
from node.p2p.peers import PeerTable

T = 1_800_000_000_000_000  # some wall-clock time, microseconds
S = 1_000_000


class Mono:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def watch(n_peers: int, tolerance_s: float = 30.0) -> tuple[ClockWatch, list[str], Mono]:
    peers = PeerTable(own_url="http://me", own_agent=b"\0" * 32)
    urls = [f"http://p{i}" for i in range(n_peers)]
    for url in urls:
        peers.add_url(url)
    mono = Mono()
    return ClockWatch(peers, Counter(), tolerance_s, mono), urls, mono


def answer(w: ClockWatch, url: str, peer_minus_ours_s: float, rtt_us: int = 20_000) -> None:
    """A heads answer from `url`, whose clock reads `peer_minus_ours_s` ahead of ours."""
    remote = T + rtt_us // 2 + int(peer_minus_ours_s * S)
    w.sample(url, T, T + rtt_us, {"PicoGrid-Time": str(remote)})


def test_the_offset_is_the_round_trip_midpoint_against_the_peer_time():
    w, urls, _ = watch(1)
    answer(w, urls[0], -600)  # the peer is 10 min behind us: we are ahead
    assert w.offset_us() == 600 * S and w.state() == "ahead"
    assert w.peers.by_url[urls[0]].clock_state() == "behind"
    assert w.peers.by_url[urls[0]].to_json(0)["clock_offset_s"] == -600


def test_one_wrong_or_lying_peer_cannot_make_a_right_clock_look_off():
    w, urls, _ = watch(3)
    answer(w, urls[0], +600)
    assert w.state() == "unknown"  # one of three compared: too early to tell
    answer(w, urls[1], 0.2)
    assert w.state() == "ok"
    answer(w, urls[2], -0.1)
    assert w.state() == "ok" and abs(w.offset_us()) < S
    w.check_sign("bid")  # no refusal


def test_beyond_the_tolerance_orders_are_refused_and_counted_other_actions_are_not():
    w, urls, _ = watch(3)
    for url in urls:
        answer(w, url, +45)  # every peer is 45 s ahead: we are behind
    assert w.state() == "behind"
    with pytest.raises(NotSigned) as refused:
        w.check_sign("offer")
    assert refused.value.reason == "clock-off"
    w.check_sign("settlement")
    w.check_sign("reading")
    assert w.metrics["not_signed:clock-off"] == 1
    assert w.to_json()["signing_orders"] is False


def test_old_samples_and_slow_round_trips_do_not_count():
    w, urls, mono = watch(1)
    answer(w, urls[0], 600, rtt_us=3 * S)
    assert w.offset_us() is None
    answer(w, urls[0], 600)
    mono.t += 301
    assert w.offset_us() is None and w.state() == "unknown"


def test_the_date_header_serves_when_the_peer_sends_no_time_of_its_own():
    got = peer_time_us({"Date": "Sat, 28 Nov 2026 23:00:00 GMT"})
    assert got is not None
    assert got[1] == 500_000 and got[0] % S == 500_000
    assert peer_time_us({"PicoGrid-Time": "nonsense"}) is None
    assert peer_time_us({"Date": "not a date"}) is None
    assert peer_time_us({}) is None


def test_the_clock_is_reported_once_a_minute_on_the_led_level():
    w, urls, mono = watch(1)
    w.status = StatusReporter()
    for _ in range(50):
        answer(w, urls[0], -90)
        with pytest.raises(NotSigned):
            w.check_sign("bid")
    assert w.status.counts()[ErrorLevel.CLOCK.value] == 1
    mono.t += 61
    answer(w, urls[0], -90)
    assert w.status.counts()[ErrorLevel.CLOCK.value] == 2


def test_bad_time_authors_are_named_and_bounded():
    w, _, _ = watch(0)
    for i in range(100):
        w.peer_bad_time(bytes([i]) * 32)
    w.peer_bad_time(bytes([99]) * 32)
    named = w.to_json()["bad_time_by_author"]
    assert len(named) == 64 and named[(bytes([99]) * 32).hex()] == 2


def test_the_tolerance_comes_from_the_config_and_is_checked():
    assert ClockWatch.tolerance_from({}) == 30.0
    assert ClockWatch.tolerance_from({"node": {"clock_tolerance_s": 5}}) == 5.0
    for bad in (0, -1, 120, "30", True):
        with pytest.raises(UserError):
            ClockWatch.tolerance_from({"node": {"clock_tolerance_s": bad}})


@given(st.lists(st.integers(-10**10, 10**10), min_size=1, max_size=9))
def test_a_minority_of_peers_never_decides_the_state(lies):
    """Whatever a minority reports (in microseconds), a right clock stays "ok"."""
    w, urls, _ = watch(2 * len(lies) + 1)
    honest = [0] * (len(lies) + 1)
    for url, off in zip(urls, honest + lies, strict=True):
        answer(w, url, off / S)
    assert w.state() == "ok"
    assert abs(w.offset_us()) <= max(abs(x) for x in lies)
