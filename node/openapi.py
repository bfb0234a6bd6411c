"""The OpenAPI 3.1 document of a node's HTTP API, served at `GET /v1/openapi.json`.

One entry per route in `ROUTES`: `(METHOD, path) -> op(...)`, the path exactly as the app
registers it (`{name}` for path parameters, which are described from the path). When you add a
route, add its entry here: `tests/test_node_openapi.py` compares this table with the app's router
both ways, and checks real answers against the response schemas, so the document stays true.

Gossip bodies are msgpack (PROTOCOL section 4); their schemas describe the decoded value, with
`bin` values marked `"contentEncoding": "binary"`.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

JSON = "application/json"
MSGPACK = "application/msgpack"

# -- schema helpers ---------------------------------------------------------------------------

STR: dict = {"type": "string"}
INT: dict = {"type": "integer"}
NUM: dict = {"type": "number"}
BOOL: dict = {"type": "boolean"}
ANY_OBJ: dict = {"type": "object"}
HEX32: dict = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "32 bytes, hex"}
HEX64: dict = {"type": "string", "pattern": "^[0-9a-f]{128}$", "description": "64 bytes, hex"}
HEX: dict = {"type": "string", "pattern": "^([0-9a-f]{2})*$", "description": "bytes, hex"}
BIN: dict = {"type": "string", "contentEncoding": "binary", "description": "msgpack bin"}


def null(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def arr(items: dict, **kw: Any) -> dict:
    return {"type": "array", "items": items, **kw}


def obj(props: dict, optional: tuple[str, ...] = (), extra: bool | dict = False) -> dict:
    """An object with exactly these properties (all required unless `optional`)."""
    return {
        "type": "object",
        "properties": props,
        "required": [k for k in props if k not in optional],
        "additionalProperties": extra,
    }


def pair(first: dict, second: dict, **kw: Any) -> dict:
    return {"type": "array", "prefixItems": [first, second], "minItems": 2, "maxItems": 2, **kw}


def mapping(values: dict) -> dict:
    return {"type": "object", "additionalProperties": values}


def enum(*values: str) -> dict:
    return {"type": "string", "enum": list(values)}


def query(name: str, schema: dict, description: str) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def op(
    summary: str,
    response: dict | None = None,
    *,
    content: str = JSON,
    params: tuple[dict, ...] = (),
    body: dict | None = None,
    body_content: str = MSGPACK,
    errors: tuple[int, ...] = (400,),
    alternatives: dict | None = None,
    description: str = "",
) -> dict:
    """One operation: its 200 answer's schema in `content`, query `params`, request `body`."""
    return {
        "summary": summary,
        "response": response or {},
        "content": content,
        "params": params,
        "body": body,
        "body_content": body_content,
        "errors": errors,
        "alternatives": alternatives or {},
        "description": description,
    }


# -- shapes -------------------------------------------------------------------------------------

SIGNED = pair(BIN, BIN, description="[action_bytes, signature]")
GRID_RULES = obj(
    {
        "mechanism": STR,
        "retail": INT,
        "feed_in": INT,
        "community_price": INT,
        "household_price": INT,
    }
)
CHARTER = obj(
    {
        "v": INT,
        "community": STR,
        "admin": HEX32,
        "version": INT,
        "effective_from": INT,
        "open": BOOL,
        "epoch_us": INT,
        "interval_ms": INT,
        "lead_ms": INT,
        "grace_ms": INT,
        "grids": mapping(GRID_RULES),
        "signed": null(HEX),
    }
)
PEER = obj(
    {
        "url": STR,
        "agent": null(HEX32),
        "reachable": BOOL,
        "live": BOOL,
        "failures": INT,
        "seconds_since_ok": null(NUM),
        "lag": null(INT),
        "behind": null(INT),
        "last_error": null(STR),
    }
)
ROLE = enum("consumer", "generator", "storage")
INFO = obj(
    {
        "agent": HEX32,
        "name": STR,
        "community": STR,
        "grid": STR,
        "role": ROLE,
        "household": STR,
        "url": {**STR, "description": "where peers reach this node; empty when they cannot"},
        "version": STR,
        "protocol": INT,
        "charter_version": null(INT),
        "chain_length": INT,
        "actions_stored": INT,
        "pending": INT,
        "uptime_s": NUM,
        "peers": arr(PEER, description="with their sync lag: actions we lack / they lack"),
        "counters": mapping(INT),
    }
)
AGENT = obj(
    {
        "id": HEX32,
        "name": STR,
        "role": ROLE,
        "household": STR,
        "grid": STR,
        "community": STR,
        "capacity_wh": INT,
        "max_power_w": INT,
        "length": INT,
        "head": HEX32,
        "last_seen_us": INT,
        "forked": BOOL,
        "url": null(STR),
    }
)
ACTION = obj(
    {
        "hash": HEX32,
        "author": HEX32,
        "seq": INT,
        "prev": null(HEX32),
        "ts": INT,
        "type": enum("genesis", "offer", "bid", "settlement", "reading", "warrant"),
        "payload": {**ANY_OBJ, "description": "bytes as hex; warrant evidence decoded"},
        "signature": HEX64,
        "action_bytes": HEX,
    }
)
AUDIT = obj(
    {
        "agent": HEX32,
        "status": enum("valid", "forked", "invalid"),
        "length": INT,
        "problems": arr(STR),
    }
)
COMMUNITY = obj(
    {
        "community": STR,
        "admin": HEX32,
        "charter": null(CHARTER),
        "grids": mapping(obj({"rules": null(GRID_RULES), "agents": arr(AGENT)})),
    }
)
TRADE = obj(
    {
        "interval": INT,
        "seller": HEX32,
        "buyer": HEX32,
        "seller_name": null(STR),
        "buyer_name": null(STR),
        "energy_wh": INT,
        "price": INT,
        "offer": HEX32,
        "bid": HEX32,
        "status": enum("confirmed", "disputed", "pending"),
        "missing": mapping(arr(HEX32)),
    }
)
INTERVAL = obj(
    {
        "interval": INT,
        "grid": STR,
        "phase": enum("open", "clearing", "settled", "metered"),
        "mechanism": null(STR),
        "start_us": INT,
        "end_us": INT,
        "gate_us": INT,
        "settle_us": INT,
        "book_digest": null(HEX32),
        "book": arr(ANY_OBJ),
        "late_or_excluded": INT,
        "trades": arr(TRADE),
        "expected_trades": INT,
        "settlements": mapping(ANY_OBJ),
        "readings": mapping(ANY_OBJ),
        "agents": mapping(ANY_OBJ),
        "leds": mapping(STR),
        "grid_import_wh": INT,
        "grid_export_wh": INT,
        "clearing_price": null(INT),
        "kpis": null(ANY_OBJ),
    }
)
FROM_TO = (
    query("from", INT, "first interval (default: 23 before `to`)"),
    query("to", INT, "last interval (default: the current one); at most 500 in all"),
)
GRID_Q = query("grid", STR, "the grid (default: this node's)")

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
        errors=(400, 413, 429),
    ),
    ("GET", "/v1/gossip/peers"): op(
        "Signed agent infos: this node's first, then every unexpired one it knows",
        arr(pair(BIN, BIN)),
        content=MSGPACK,
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
        errors=(400, 404),
    ),
    ("GET", "/v1/agents/{id}/audit"): op("Re-verify one chain now", AUDIT, errors=(400, 404)),
    ("GET", "/v1/actions/{hash}"): op("One action by its hash", ACTION, errors=(400, 404)),
    ("GET", "/v1/community"): op("The community: charter, grids, their agents and URLs", COMMUNITY),
    ("GET", "/v1/openapi.json"): op("This document", ANY_OBJ, errors=()),
    # market, JSON
    ("GET", "/v1/intervals/{k}"): op(
        "One interval of a grid: book, trades, settlements, readings, figures",
        INTERVAL,
        params=(GRID_Q,),
        errors=(400, 404),
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
        errors=(400, 404),
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
                "saved": INT,
                "units": STR,
            }
        ),
        params=FROM_TO,
        errors=(400, 404),
    ),
    ("GET", "/v1/summary"): op(
        "A range of intervals at a glance: series and KPIs",
        obj(
            {
                "grid": STR,
                "from": INT,
                "to": INT,
                "current": INT,
                "series": arr(ANY_OBJ),
                "kpis": null(ANY_OBJ),
            }
        ),
        params=(*FROM_TO, GRID_Q),
        errors=(400, 404),
    ),
    ("GET", "/metrics"): op("Prometheus metrics", STR, content="text/plain", errors=()),
    ("GET", "/"): op("The dashboard", STR, content="text/html", errors=()),
    ("GET", "/static/{name}"): op(
        "Dashboard assets", STR, content="application/octet-stream", errors=(404,)
    ),
}

ERROR = obj({"error": STR})
REASONS = {
    400: "undecodable or wrongly shaped input",
    404: "not held here",
    413: "body over 4 MiB",
    429: "too many requests from this address",
}


def path_params(path: str) -> list[str]:
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
        responses[str(code)] = {"description": REASONS[code], "content": {JSON: {"schema": ERROR}}}
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
    from node.node import VERSION

    return web.json_response(document(VERSION))
