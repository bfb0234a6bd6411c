"""The signed-request rule (ledger.requestauth): what a signature covers, the time window, the
replay cache, and the shared vectors in tests/vectors/requests.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.keys import Identity
from ledger.requestauth import (
    HEADER_AGENT,
    HEADER_SIGNATURE,
    HEADER_TIME,
    WINDOW_US,
    AuthError,
    ReplayCache,
    check_signature,
    check_time,
    parse_claim,
    request_bytes,
    sign_request,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
ALICE = Identity.from_seed(b"alice".ljust(32, b"\0"))
T = 1_700_000_000_000_000


def claim_of(headers: dict[str, str]):
    return parse_claim(headers.get(HEADER_AGENT), headers.get(HEADER_TIME),
                       headers.get(HEADER_SIGNATURE))


def verdict(community: str, method: str, path: str, body: bytes, headers: dict[str, str],
            now: int) -> str:
    """What a receiver decides, as the vectors name it."""
    try:
        claim = claim_of(headers)
        check_time(claim, now)
        check_signature(claim, community, method, path, body)
    except AuthError as exc:
        assert exc.status == 401
        return exc.code
    return "accepted"


requests = st.tuples(
    st.sampled_from(["GET", "POST", "HEAD"]),
    st.text(min_size=1, max_size=60).map(lambda s: "/" + s),
    st.integers(T - WINDOW_US + 10, T + WINDOW_US - 10),
    st.binary(max_size=200),
    st.text(min_size=1, max_size=20),
)


@given(requests)
def test_a_signed_request_verifies_as_sent(req):
    method, path, time_us, body, community = req
    headers = sign_request(ALICE, community, method, path, time_us, body)
    assert verdict(community, method, path, body, headers, T) == "accepted"


@given(requests, st.sampled_from(["method", "path", "time", "body", "community"]))
def test_changing_anything_signed_breaks_the_signature(req, part):
    method, path, time_us, body, community = req
    headers = sign_request(ALICE, community, method, path, time_us, body)
    if part == "method":
        method = "PUT"
    elif part == "path":
        path += "?x=1"
    elif part == "time":
        headers = {**headers, HEADER_TIME: str(time_us + 1)}
    elif part == "body":
        body += b"\0"
    else:
        community += "x"
    assert verdict(community, method, path, body, headers, T) == "bad-signature"


def test_the_signed_bytes_are_domain_separated_canonical_msgpack():
    signed = request_bytes("c", "get", "/v1/x?a=1", 5, b"")
    assert signed.startswith(bytes([0x96, 0xB0]) + b"picogrid-request")
    assert b"GET" in signed and b"/v1/x?a=1" in signed


def test_time_outside_the_window_is_stale_either_way():
    for off in (WINDOW_US + 1, -WINDOW_US - 1):
        headers = sign_request(ALICE, "c", "GET", "/", T + off)
        assert verdict("c", "GET", "/", b"", headers, T) == "stale"
    headers = sign_request(ALICE, "c", "GET", "/", T + WINDOW_US)
    assert verdict("c", "GET", "/", b"", headers, T) == "accepted"


@pytest.mark.parametrize("headers, code", [
    ({}, "unsigned"),
    ({HEADER_AGENT: "00" * 32}, "unsigned"),
    ({HEADER_AGENT: "zz" * 32, HEADER_TIME: "1", HEADER_SIGNATURE: "00" * 64}, "malformed"),
    ({HEADER_AGENT: "00" * 32, HEADER_TIME: "-1", HEADER_SIGNATURE: "00" * 64}, "malformed"),
    ({HEADER_AGENT: "00" * 32, HEADER_TIME: "9" * 20, HEADER_SIGNATURE: "00" * 64},
     "malformed"),
    ({HEADER_AGENT: "00" * 31, HEADER_TIME: "1", HEADER_SIGNATURE: "00" * 64}, "malformed"),
])
def test_missing_or_malformed_headers_are_named(headers, code):
    with pytest.raises(AuthError) as info:
        claim_of(headers)
    assert (info.value.status, info.value.code) == (401, code)


def test_the_replay_cache_takes_each_request_once_and_forgets_it_after_the_window():
    cache = ReplayCache(capacity=3, window_us=10)
    assert cache.take(b"a", 100, 100)
    assert not cache.take(b"a", 100, 105)  # a replay within the window
    assert cache.take(b"b", 101, 105) and cache.take(b"c", 102, 105)
    with pytest.raises(AuthError) as full:  # full of live entries: refuse, never forget one
        cache.take(b"d", 105, 105)
    assert (full.value.status, full.value.code) == (503, "busy")
    assert not cache.take(b"a", 100, 108)
    assert cache.take(b"d", 120, 120)  # a, b and c left the window: room again
    assert len(cache.seen) == 1


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=2), st.integers(0, 50)), max_size=200))
def test_the_replay_cache_never_takes_a_live_request_twice_and_stays_bounded(events):
    cache = ReplayCache(capacity=16, window_us=20)
    taken: dict[bytes, int] = {}
    now = 0
    for digest, step in events:
        now += step % 7
        try:
            fresh = cache.take(digest, now, now)
        except AuthError:
            assert len(cache.seen) == 16
            continue
        if digest in taken and taken[digest] >= now - 20:
            assert not fresh
        if fresh:
            taken[digest] = now
        assert len(cache.seen) <= 16


def _generator():
    spec = importlib.util.spec_from_file_location("make_request_vectors",
                                                  VECTORS / "make_request_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_request_vectors_are_what_the_script_makes():
    assert (VECTORS / "requests.json").read_text() == _generator().render()


def test_every_request_vector_gets_its_verdict():
    vectors = json.loads((VECTORS / "requests.json").read_text())
    assert {v["verdict"] for v in vectors} == {"accepted", "bad-signature", "stale", "unsigned",
                                               "malformed"}
    for v in vectors:
        body = bytes.fromhex(v["body_hex"])
        assert request_bytes(v["community"], v["method"], v["path"],
                             int(v["headers"].get(HEADER_TIME, "0") or 0), body).hex() \
            == v["request_bytes_hex"] or v["verdict"] != "accepted", v["name"]
        got = verdict(v["community"], v["method"], v["path"], body, v["headers"], v["now_us"])
        assert got == v["verdict"], v["name"]
