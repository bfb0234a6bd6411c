"""Write `requests.json`: signed requests (protocol 2, "Signed requests") and what a node decides.

    python tests/vectors/make_request_vectors.py   # rewrites tests/vectors/requests.json

Deterministic (fixed seeds, fixed clock); the suite checks that this script reproduces the file
byte for byte and that every vector gets its verdict. The format is in README.md here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ledger import codec  # noqa: E402
from ledger.keys import Identity  # noqa: E402
from ledger.requestauth import (  # noqa: E402
    HEADER_SIGNATURE,
    HEADER_TIME,
    body_digest,
    request_bytes,
    sign_request,
)

OUT = Path(__file__).with_name("requests.json")
COMMUNITY = "vectors"
NOW = 1_700_000_000_000_000  # the receiving node's clock


def ident(name: str) -> Identity:
    """Seed = the ASCII name, zero-padded to 32 bytes (as in actions.json)."""
    return Identity.from_seed(name.encode().ljust(32, b"\0"))


ALICE = ident("alice")


def vector(name: str, method: str, path: str, time_us: int, body: bytes, verdict: str,
           note: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
    """One request as sent: what its signature covers, its headers, and the verdict."""
    signed = request_bytes(COMMUNITY, method, path, time_us, body)
    return {
        "name": name,
        "note": note,
        "community": COMMUNITY,
        "now_us": NOW,
        "method": method,
        "path": path,
        "body_hex": body.hex(),
        "body_digest_hex": body_digest(body).hex(),
        "request_bytes_hex": signed.hex(),
        "headers": headers if headers is not None else
        sign_request(ALICE, COMMUNITY, method, path, time_us, body),
        "verdict": verdict,
    }


def build() -> list[dict[str, Any]]:
    """Every vector, in a fixed order."""
    chain = f"/v1/gossip/chain/{ALICE.agent_hex}?from=0&limit=1000"
    batch = codec.encode([])  # an empty batch of actions, as msgpack
    good = sign_request(ALICE, COMMUNITY, "GET", "/v1/gossip/heads", NOW)
    return [
        vector("heads", "GET", "/v1/gossip/heads", NOW, b"", "accepted",
               "a GET signs the empty body's digest"),
        vector("chain page with query", "GET", chain, NOW - 5_000_000, b"", "accepted",
               "the query is signed as sent, after the path"),
        vector("post actions", "POST", "/v1/gossip/actions", NOW + 1_000_000, batch, "accepted",
               "the body digest is BLAKE2b-256 of the body bytes as sent"),
        vector("signature of another path", "GET", "/v1/trades", NOW, b"", "bad-signature",
               "the headers sign GET /v1/gossip/heads, the request asks for /v1/trades",
               headers=good),
        vector("time changed after signing", "GET", "/v1/gossip/heads", NOW, b"",
               "bad-signature", "PicoGrid-Time is covered by the signature",
               headers={**good, HEADER_TIME: str(NOW + 1)}),
        vector("too old", "GET", "/v1/gossip/heads", NOW - 121_000_000, b"", "stale",
               "121 s before the receiver's clock: outside the 120 s window"),
        vector("too far ahead", "GET", "/v1/gossip/heads", NOW + 121_000_000, b"", "stale",
               "121 s after the receiver's clock"),
        vector("unsigned", "GET", "/v1/gossip/heads", NOW, b"", "unsigned",
               "no headers at all", headers={}),
        vector("upper-case hex", "GET", "/v1/gossip/heads", NOW, b"", "malformed",
               "hex in headers is lowercase", headers={**good, HEADER_SIGNATURE:
                                                        good[HEADER_SIGNATURE].upper()}),
    ]


def render() -> str:
    """The file's exact text."""
    return json.dumps(build(), indent=1) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
