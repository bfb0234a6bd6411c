"""The OpenAPI 3.1 document of a node's HTTP API, served at `GET /v1/openapi.json`.

One entry per route in `ROUTES`: `(METHOD, path) -> op(...)`, the path exactly as the app
registers it (`{name}` for path parameters, which are described from the path). When you add a
route, add its entry here: `tests/node/http/test_node_openapi.py` compares this table with the
app's router both ways, and checks real answers against the response schemas, so the document
stays true.

Gossip bodies are msgpack (PROTOCOL section 4); their schemas describe the decoded value, with
`bin` values marked `"contentEncoding": "binary"`.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from node.http.openapi_schema import (
    ACTION,
    AGENT,
    ANY_OBJ,
    AUDIT,
    BIN,
    BOOL,
    CHARTER,
    COMMUNITY,
    FROM_TO,
    GRID_Q,
    HEX,
    HEX32,
    INFO,
    INT,
    INTERVAL,
    JSON,
    MSGPACK,
    SIGNED,
    STR,
    TRADE,
    arr,
    enum,
    mapping,
    null,
    obj,
    op,
    pair,
    query,
)
from node.version import VERSION

# -- the routes -----------------------------------------------------------------------------------

ROUTES: dict[tuple[str, str], dict] = {
    # gossip (PROTOCOL section 4), msgpack
    ("GET", "/v1/gossip/heads"): op(
        "Heads of every chain held, genesis included",
        mapping(pair(INT, BIN)),
        content=MSGPACK,
        description="map author (bin 32) -> [seq, hash (bin 32)]; the header "
        "PicoGrid-Charter-Version announces the newest charter version held",
    ),
    ("GET", "/v1/gossip/chain/{author_hex}"): op(
        "Signed actions of one chain, ascending seq, contiguous",
        arr(SIGNED),
        content=MSGPACK,
        params=(
            query("from", {**INT, "minimum": 0}, "first seq (default 0)"),
            query("limit", {**INT, "minimum": 1, "maximum": 1000}, "at most (default 1000)"),
        ),
    ),
    ("POST", "/v1/gossip/actions"): op(
        "Offer signed actions (at most 1000, body at most 4 MiB)",
        obj(
            {
                "accepted": INT,
                "duplicate": INT,
                "pending": INT,
                "rejected": arr(pair(INT, STR), description="[index in the batch, reason code]"),
            }
        ),
        content=MSGPACK,
        body=arr(SIGNED, maxItems=1000),
        errors=(400, 413, 429, 503),
    ),
    ("POST", "/v1/gossip/reconcile"): op(
        "One step of range-based set reconciliation of heads (docs/protocol.md)",
        arr({}, maxItems=1024, description="[lower, upper, fingerprint or items]; ranges whose "
            "fingerprint equals ours are left out"),
        content=MSGPACK,
        body=arr({}, maxItems=64),
        errors=(400, 413, 429),
    ),
    ("POST", "/v1/gossip/reconcile/infos"): op(
        "One step of range-based set reconciliation of the agent infos held (docs/protocol.md)",
        arr({}, maxItems=1024, description="[lower, upper, fingerprint or items]; items are "
            "[agent, created_us, hash of the signed info]"),
        content=MSGPACK,
        body=arr({}, maxItems=64),
        errors=(400, 413, 429),
    ),
    ("POST", "/v1/gossip/reconcile/forks"): op(
        "One step of range-based set reconciliation of the authors known to have forked",
        arr({}, maxItems=1024, description="[lower, upper, fingerprint or items]; items are "
            "[author, 0, BLAKE2b-256('picogrid-forked' || author)]"),
        content=MSGPACK,
        body=arr({}, maxItems=64),
        errors=(400, 413, 429),
    ),
    ("GET", "/v1/gossip/forks/{author_hex}"): op(
        "Evidence that an author forked: two of its signed actions at one seq (empty if none)",
        arr(SIGNED, maxItems=2),
        content=MSGPACK,
    ),
    ("POST", "/v1/gossip/infos"): op(
        "Signed agent infos of the agents asked for (those held and shared)",
        arr(pair(BIN, BIN)),
        content=MSGPACK,
        body=arr(BIN, maxItems=1000),
        errors=(400, 413, 429),
    ),
    ("GET", "/v1/gossip/peers"): op(
        "Signed agent infos: this node's first, then every unexpired one it knows",
        arr(pair(BIN, BIN)),
        content=MSGPACK,
    ),
    ("GET", "/v1/gossip/proof"): op(
        "This node's proof that it holds its agent's key (docs/protocol.md, Peer proofs)",
        {"type": "array", "prefixItems": [BIN, STR, BIN], "minItems": 3, "maxItems": 3},
        content=MSGPACK,
        params=(query("nonce", HEX32, "the challenger's 32 random bytes, 64 hex digits"),),
        description="[agent (bin 32), url, signature (bin 64)] over the challenge; public even "
        "in a closed community",
    ),
    ("POST", "/v1/gossip/peers"): op(
        "Offer signed agent infos",
        obj({"accepted": INT, "rejected": INT}),
        content=MSGPACK,
        body=arr(pair(BIN, BIN), maxItems=1000),
        errors=(400, 413, 429),
    ),
    # charter (PROTOCOL section 6)
    ("GET", "/v1/community/charter"): op(
        "The newest signed charter held: msgpack [charter_bytes, signature], or decoded JSON "
        "with Accept: application/json",
        pair(BIN, BIN),
        content=MSGPACK,
        alternatives={JSON: CHARTER},
        errors=(404,),
    ),
    ("POST", "/v1/community/charter"): op(
        "Offer a newer charter version signed by the pinned admin key",
        obj({"accepted": BOOL, "version": INT}),
        body=pair(BIN, BIN),
        errors=(400, 413, 429),
    ),
    ("GET", "/v1/community/charters"): op(
        "Every charter version held, oldest first",
        arr(obj({"version": INT, "effective_from": INT, "signed": HEX})),
    ),
    # audit API, JSON
    ("GET", "/v1/info"): op(
        "This node: agent, community, grid, role, version, peers and lag", INFO
    ),
    ("GET", "/v1/agents"): op("Every agent whose chain this node holds", arr(AGENT)),
    ("GET", "/v1/agents/{id}"): op("One agent", AGENT, errors=(400, 404)),
    ("GET", "/v1/agents/{id}/chain"): op(
        "One agent's chain, decoded, a page at a time",
        obj(
            {
                "agent": HEX32,
                "from": INT,
                "actions": arr(ACTION),
                "next": null({**INT, "description": "`from` of the next page; null at the end"}),
            }
        ),
        params=(
            query("from", {**INT, "minimum": 0}, "first seq (default 0)"),
            query("limit", {**INT, "minimum": 1, "maximum": 1000}, "at most (default 100)"),
        ),
        errors=(400, 404, 503),
    ),
    ("GET", "/v1/agents/{id}/audit"): op(
        "Re-verify one chain now", AUDIT, errors=(400, 404, 503)
    ),
    ("GET", "/v1/actions/{hash}"): op("One action by its hash", ACTION, errors=(400, 404)),
    ("GET", "/v1/community"): op("The community: charter, grids, their agents and URLs", COMMUNITY),
    ("GET", "/v1/openapi.json"): op("This document", ANY_OBJ, errors=()),
    # market, JSON
    ("GET", "/v1/intervals/{k}"): op(
        "One interval of a grid: book, trades, settlements, readings, figures",
        INTERVAL,
        params=(GRID_Q,),
        errors=(400, 404, 503),
    ),
    ("GET", "/v1/trades"): op(
        "Trades of a range of intervals, with their status",
        obj({"from": INT, "to": INT, "grid": STR, "trades": arr(TRADE)}),
        params=(
            *FROM_TO,
            GRID_Q,
            query("agent", HEX32, "only this agent's trades"),
            query("format", enum("json", "csv"), "json (default) or csv"),
        ),
        alternatives={"text/csv": STR},
        errors=(400, 404, 503),
    ),
    ("GET", "/v1/agents/{id}/bill"): op(
        "One agent's bill over a range of intervals (energy in Wh, money in milli-cents)",
        obj(
            {
                "agent": HEX32,
                "grid": STR,
                "from": INT,
                "to": INT,
                "intervals": arr(ANY_OBJ),
                "total": null(ANY_OBJ),
                "baseline": INT,
                "credit": INT,
                "saved": INT,
                "units": STR,
            }
        ),
        params=FROM_TO,
        errors=(400, 404, 503),
    ),
    ("GET", "/v1/summary"): op(
        "A range of intervals at a glance: series and KPIs",
        obj(
            {
                "grid": STR,
                "from": INT,
                "to": INT,
                "current": INT,
                "names": mapping(STR),
                "series": arr(ANY_OBJ),
                "kpis": null(ANY_OBJ),
            }
        ),
        params=(*FROM_TO, GRID_Q),
        errors=(400, 404, 503),
    ),
    ("GET", "/metrics"): op("Prometheus metrics", STR, content="text/plain", errors=()),
    ("GET", "/"): op("The dashboard", STR, content="text/html", errors=()),
    ("GET", "/static/{name}"): op(
        "Dashboard assets", STR, content="application/octet-stream", errors=(404,)
    ),
}

ERROR = obj({"error": STR})
# 503 to a push: the node cannot store now (error "disk-full"); nothing of the batch was judged.
UNAVAILABLE = obj({"error": enum("disk-full"), "message": STR, "retry_after_s": INT})
# 503 to a read of another grid (replicate = "grid"): its chains could not be fetched now.
GRID_UNAVAILABLE = obj({"error": STR, "grid": STR,
                        "reason": enum("no-peer", "timeout", "too-large", "busy", "disk"),
                        "retry_after_s": INT})
REASONS = {
    400: "undecodable or wrongly shaped input",
    404: "not held here",
    413: "body over 4 MiB",
    429: "too many requests from this address",
    503: "this node's disk is full: nothing of the batch was judged or stored; send it again later",
}
GRID_REASON = ("another grid's chains, which this node keeps as geneses only (replicate = "
               "\"grid\"), could not be fetched from that grid's nodes now; never a part of them")


def path_params(path: str) -> list[str]:
    """The `{name}` parameters of a route's path."""
    return re.findall(r"{(\w+)}", path)


def _operation(method: str, path: str, entry: dict) -> dict:
    params = [
        {"name": name, "in": "path", "required": True, "schema": STR} for name in path_params(path)
    ]
    params += list(entry["params"])
    content = {entry["content"]: {"schema": entry["response"]}}
    content.update({k: {"schema": v} for k, v in entry["alternatives"].items()})
    responses: dict[str, Any] = {"200": {"description": "OK", "content": content}}
    for code in (*entry["errors"], 429):
        schema, reason = ERROR, REASONS[code]
        if code == 503:
            schema, reason = (UNAVAILABLE, reason) if method == "POST" else \
                (GRID_UNAVAILABLE, GRID_REASON)
        responses[str(code)] = {"description": reason, "content": {JSON: {"schema": schema}}}
    out: dict[str, Any] = {
        "summary": entry["summary"],
        "operationId": f"{method.lower()}{re.sub(r'[^a-z0-9]+', '_', path)}",
        "parameters": params,
        "responses": responses,
    }
    if entry["description"]:
        out["description"] = entry["description"]
    if entry["body"] is not None:
        out["requestBody"] = {
            "required": True,
            "content": {entry["body_content"]: {"schema": entry["body"]}},
        }
    return out


def document(version: str = "") -> dict:
    """The OpenAPI 3.1 document of every route."""
    paths: dict[str, dict] = {}
    for (method, path), entry in sorted(ROUTES.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, entry)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PicoGrid node",
            "version": version or "0",
            "description": "Gossip endpoints (msgpack, PROTOCOL section 4) and the "
            "read-only audit and market API (JSON, CORS allowed for GET).",
        },
        "paths": paths,
    }


async def openapi_json(request: web.Request) -> web.Response:
    """GET /v1/openapi.json: this document, for this node's version."""
    return web.json_response(document(VERSION))
