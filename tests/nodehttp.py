"""Synchronous HTTP helpers (stdlib only) for tests and benchmarks that talk to real nodes.

Part of the `nodeproc` toolkit (which re-exports everything here): any status is returned, never
raised; msgpack bodies are decoded with bin as bytes.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgpack

from ledger.actions import Action
from ledger.chain import now_us
from ledger.keys import Identity
from ledger.requestauth import sign_request

# -- HTTP (synchronous, stdlib) ------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def msgpack(self) -> Any:
        return msgpack.unpackb(self.body, raw=False, strict_map_key=False)


def request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Response:
    """One HTTP request; any status is returned, never raised. Connection errors are raised."""
    parts = urlsplit(url)
    # https:// is verified against the system's authorities (SSL_CERT_FILE names another)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        chunked = (headers or {}).get("Transfer-Encoding") == "chunked"
        conn.request(method, path or "/", body=body, headers=headers or {}, encode_chunked=chunked)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def signed_request(identity: Identity, community: str, method: str, url: str,
                   body: bytes = b"", headers: dict[str, str] | None = None,
                   timeout: float = 5.0, time_us: int | None = None) -> Response:
    """One request signed with `identity` for `community` (docs/protocol.md, "Signed requests")."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    when = now_us() if time_us is None else time_us
    signature = sign_request(identity, community, method, path or "/", when, body)
    return request(method, url, body or None, {**(headers or {}), **signature}, timeout)


def owner_headers(directory: Path) -> dict[str, str]:
    """The node owner's dashboard token (`DIR/dashboard.token`) as a request header."""
    token = (Path(directory) / "dashboard.token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def get_json(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> Any:
    """GET a JSON document; AssertionError unless the answer is 200."""
    resp = request("GET", url, headers=headers, timeout=timeout)
    if resp.status != 200:
        raise AssertionError(f"GET {url}: HTTP {resp.status} {resp.body[:300]!r}")
    return resp.json()


def get_msgpack(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> Any:
    resp = request("GET", url, headers=headers, timeout=timeout)
    if resp.status != 200:
        raise AssertionError(f"GET {url}: HTTP {resp.status} {resp.body[:300]!r}")
    return resp.msgpack()


def post_msgpack(url: str, value: Any, timeout: float = 10.0) -> Response:
    body = value if isinstance(value, bytes) else msgpack.packb(value, use_bin_type=True)
    return request("POST", url, body, {"Content-Type": "application/msgpack"}, timeout)


def post_actions(url: str, actions: Iterable[Action | tuple[bytes, bytes]],
                 signed_by: Identity | None = None, community: str = "c1") -> dict:
    """POST signed actions to a node's gossip endpoint; its answer (accepted, rejected ...).

    `signed_by` signs the request itself (a closed community's node takes no unsigned post)."""
    items = [a.wire() if isinstance(a, Action) else list(a) for a in actions]
    if signed_by is None:
        resp = post_msgpack(f"{url}/v1/gossip/actions", items)
    else:
        body = msgpack.packb(items, use_bin_type=True)
        resp = signed_request(signed_by, community, "POST", f"{url}/v1/gossip/actions", body,
                              {"Content-Type": "application/msgpack"}, timeout=10.0)
    if resp.status != 200:
        raise AssertionError(f"POST actions to {url}: HTTP {resp.status} {resp.body[:300]!r}")
    return resp.msgpack()


def heads(url: str, headers: dict[str, str] | None = None) -> dict[bytes, list]:
    """The node's gossip heads: author -> [seq, hash]."""
    return get_msgpack(f"{url}/v1/gossip/heads", headers=headers)


def head_seq(url: str, author: bytes, headers: dict[str, str] | None = None) -> int:
    """The seq of the author's head at that node, -1 when it holds no such chain."""
    return heads(url, headers).get(author, [-1])[0]


def stored(url: str) -> int:
    """How many valid actions the node holds."""
    return get_json(f"{url}/v1/info")["actions_stored"]


def agents(url: str) -> dict[str, dict]:
    """The node's `/v1/agents`, by agent id."""
    return {a["id"]: a for a in get_json(f"{url}/v1/agents")}
