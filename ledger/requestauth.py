"""Signed requests (protocol 2, "Signed requests"): who is asking, checked without a session.

A closed community's node answers its reads and takes gossip only from its members (and, for
reads, from the auditors the charter lists). A client proves who it is by signing each request:

    request_bytes = canonical msgpack of
        ["picogrid-request", community, METHOD, path_with_query, time_us, BLAKE2b-256(body)]

and sending three headers: `PicoGrid-Agent` (its key, hex), `PicoGrid-Time` (`time_us`, decimal)
and `PicoGrid-Signature` (Ed25519 over `request_bytes`, hex). A receiver accepts a time within
`WINDOW_US` of its clock and each signed request once (`ReplayCache`). Pure: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from ledger import codec
from ledger.keys import Identity, verify

DOMAIN = "picogrid-request"
HEADER_AGENT = "PicoGrid-Agent"
HEADER_TIME = "PicoGrid-Time"
HEADER_SIGNATURE = "PicoGrid-Signature"
WINDOW_US = 120_000_000  # a request's time may be this far from the receiver's clock, either way
REPLAY_CAPACITY = 65_536  # signed requests remembered (each only while its time is in the window)
MAX_PATH = 4096  # characters of path and query a signed request may name


def body_digest(body: bytes) -> bytes:
    """BLAKE2b-256 of the request body as sent (empty for a GET)."""
    return hashlib.blake2b(body, digest_size=32).digest()


def request_bytes(community: str, method: str, path: str, time_us: int, body: bytes) -> bytes:
    """The canonical bytes a request signature covers; `path` includes the query as sent."""
    return codec.encode([DOMAIN, community, method.upper(), path, time_us, body_digest(body)])


def sign_request(
    identity: Identity, community: str, method: str, path: str, time_us: int, body: bytes = b""
) -> dict[str, str]:
    """The three headers that sign one request with `identity`."""
    signature = identity.sign(request_bytes(community, method, path, time_us, body))
    return {
        HEADER_AGENT: identity.agent_hex,
        HEADER_TIME: str(time_us),
        HEADER_SIGNATURE: signature.hex(),
    }


@dataclass(frozen=True, slots=True)
class Claim:
    """Who a request says signed it, and when, before the signature is checked."""

    agent: bytes
    time_us: int
    signature: bytes


class AuthError(Exception):
    """A request that does not prove who sent it: `status` 401 (unsigned, malformed, stale,
    bad-signature, replayed) or 403 (not-member, read-only: signed by a key that may not do
    this), 503 (busy); `code` is the word in brackets."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def parse_claim(agent: str | None, time_us: str | None, signature: str | None) -> Claim:
    """The three header values as a `Claim`; AuthError 401 when any is missing or malformed."""
    if agent is None and time_us is None and signature is None:
        raise AuthError(
            401,
            "unsigned",
            "this community is closed: sign the request with a member's key "
            f"({HEADER_AGENT}, {HEADER_TIME}, {HEADER_SIGNATURE})",
        )
    if agent is None or time_us is None or signature is None:
        raise AuthError(
            401,
            "unsigned",
            f"a signed request needs all of {HEADER_AGENT}, {HEADER_TIME} and {HEADER_SIGNATURE}",
        )
    key, sig = _hex(agent, 32, HEADER_AGENT), _hex(signature, 64, HEADER_SIGNATURE)
    if not time_us.isdigit() or len(time_us) > 19:
        raise AuthError(
            401, "malformed", f"{HEADER_TIME} must be microseconds since the epoch, in decimal"
        )
    return Claim(key, int(time_us), sig)


def _hex(text: str, size: int, name: str) -> bytes:
    if len(text) != 2 * size or text != text.lower():
        raise AuthError(401, "malformed", f"{name} must be {2 * size} lowercase hex digits")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise AuthError(
            401, "malformed", f"{name} must be {2 * size} lowercase hex digits"
        ) from None


def check_time(claim: Claim, now_us: int, window_us: int = WINDOW_US) -> None:
    """AuthError 401 when the request's time is further than `window_us` from `now_us`."""
    off = claim.time_us - now_us
    if abs(off) > window_us:
        raise AuthError(
            401,
            "stale",
            f"{HEADER_TIME} is {off / 1e6:+.0f} s from this node's clock "
            f"(at most {window_us // 1_000_000} s either way): check the clock",
        )


def check_signature(claim: Claim, community: str, method: str, path: str, body: bytes) -> bytes:
    """The digest that names this signed request; AuthError 401 when the signature is wrong."""
    if len(path) > MAX_PATH:
        raise AuthError(
            401, "malformed", f"a signed request's path is at most {MAX_PATH} characters"
        )
    message = request_bytes(community, method, path, claim.time_us, body)
    if not verify(claim.agent, message, claim.signature):
        raise AuthError(
            401,
            "bad-signature",
            f"{HEADER_SIGNATURE} does not verify: it must sign method, path "
            "with query, time and body digest of this request",
        )
    return hashlib.blake2b(claim.agent + message, digest_size=32).digest()


class ReplayCache:
    """Signed requests seen while their time is in the window: each is taken once.

    Bounded: entries leave once their time is out of the window (then the time check refuses a
    replay), and when `capacity` are held within it a new one is refused (503 for the caller)
    rather than forgetting one that could then be replayed.
    """

    def __init__(self, capacity: int = REPLAY_CAPACITY, window_us: int = WINDOW_US) -> None:
        self.capacity, self.window_us = capacity, window_us
        self.seen: OrderedDict[bytes, int] = OrderedDict()  # digest -> its time, insertion order
        self.swept_us = 0

    def take(self, digest: bytes, time_us: int, now_us: int) -> bool:
        """Remember `digest`; False when it was seen already (a replay). AuthError when full."""
        horizon = now_us - self.window_us
        while self.seen and next(iter(self.seen.values())) < horizon:
            self.seen.popitem(last=False)  # the oldest first; times arrive nearly in order
        if digest in self.seen:
            return False
        if len(self.seen) >= self.capacity and now_us - self.swept_us > 1_000_000:
            self.swept_us = now_us  # a full sweep at most once a second
            for stale in [d for d, t in self.seen.items() if t < horizon]:
                del self.seen[stale]
        if len(self.seen) >= self.capacity:
            raise AuthError(
                503, "busy", "too many signed requests in the last minutes; retry shortly"
            )
        self.seen[digest] = time_us
        return True
