"""Schema helpers and the shapes of the answers, for the OpenAPI document (`node.http.openapi`).

JSON Schema (draft 2020-12, as OpenAPI 3.1 uses): `obj` is an object with exactly the listed
properties (all required unless marked optional), `pair` a two-item array, `null(s)` "s or null".
"""

from __future__ import annotations

from typing import Any

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
    """`schema`, or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def arr(items: dict, **kw: Any) -> dict:
    """An array of `items`."""
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
    """A two-item array: `first`, then `second`."""
    return {"type": "array", "prefixItems": [first, second], "minItems": 2, "maxItems": 2, **kw}


def mapping(values: dict) -> dict:
    """An object whose values are all `values`."""
    return {"type": "object", "additionalProperties": values}


def enum(*values: str) -> dict:
    """One of the strings `values`."""
    return {"type": "string", "enum": list(values)}


def query(name: str, schema: dict, description: str) -> dict:
    """An optional query parameter."""
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
        "max_order_wh": INT,
        "max_price": INT,
        "max_capacity_wh": INT,
        "max_power_w": INT,
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
        "view_ms": INT,
        "final_ms": INT,
        "exclude_intervals": INT,
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
        "proven": BOOL,
        "demoted": BOOL,
        "failures": INT,
        "seconds_since_ok": null(NUM),
        "lag": null(INT),
        "behind": null(INT),
        "last_error": null(STR),
        "clock_offset_s": null({**NUM, "description": "the peer's clock minus ours"}),
        "clock": enum("ok", "ahead", "behind", "unknown"),
    }
)
CLOCK = obj(
    {
        "offset_s": null({**NUM, "description": "our clock minus the median of the peers'"}),
        "state": enum("ok", "ahead", "behind", "unknown"),
        "peers_compared": INT,
        "tolerance_s": NUM,
        "signing_orders": BOOL,
        "chain_ahead_of_clock_s": NUM,
        "own_rejected_bad_time": INT,
        "bad_time_by_author": mapping(INT),
    }
)
DISK = obj(
    {
        "full": BOOL,
        "full_for_s": null(NUM),
        "free_bytes": null(INT),
        "refused_writes": INT,
        "last_error": null(STR),
    }
)
ROLE = enum("consumer", "generator", "storage")
# Protocol 2: intervals the agent is settling, and those it abstained from.
SETTLING = obj(
    {
        "waiting": mapping(STR),  # interval -> what the agent waits for (views, orders, sync)
        "abstained": mapping(STR),  # interval -> why no settlement was signed (the latest 64)
        "abstained_total": INT,
    }
)
INFO = obj(
    {
        "agent": HEX32,
        "name": STR,
        "community": STR,
        "grid": STR,
        "replicate": {**enum("community", "grid"), "description": "grid: other grids' chains "
                      "are held as geneses and fetched when asked"},
        "fetched": {**mapping(INT), "description": "other grids fetched and held now: grid -> "
                    "bytes of signed actions"},
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
        "clock": null(CLOCK),
        "disk": null(DISK),
        "settlement": null(SETTLING),
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
        "type": enum("genesis", "offer", "bid", "settlement", "reading", "warrant", "view"),
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
        "grid": {**STR, "description": "this node's grid"},
        "charter": null(CHARTER),
        "grids": mapping(
            obj(
                {
                    "rules": null(GRID_RULES),
                    "agents": arr(AGENT),
                    "drawing": {
                        **enum("kit", "generic"),
                        "description": "kit: the kit's 3 homes, 2 batteries and 2 solar "
                        "systems in its households; generic: drawn by role and household",
                    },
                    "households": arr(STR),
                }
            )
        ),
        "names": {
            **mapping(STR),
            "description": "agent id -> display name; equal names in a grid told apart",
        },
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
        # protocol 2 adds "failed" (a party never settled) and "superseded" (a revision dropped it)
        "status": enum("confirmed", "disputed", "pending", "failed", "superseded"),
        "missing": mapping(arr(HEX32)),
    }
)
AGENT_REF = obj({"agent": HEX32, "name": null(STR)})
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
        "names": mapping(STR),  # agent id -> display name (equal names told apart)
        "book": arr(ANY_OBJ),
        "late_or_excluded": INT,
        "trades": arr(TRADE),
        "expected_trades": INT,
        "settlements": mapping(ANY_OBJ),  # by agent id
        "readings": mapping(ANY_OBJ),  # by agent id
        "views": arr(HEX32),  # protocol 2: the settlers whose views this node counted
        "defaulters": arr(AGENT_REF),  # protocol 2: never settled k (after its final deadline)
        "excluded": arr(AGENT_REF),  # protocol 2: recent defaulters kept out of k's book
        "agents": mapping(ANY_OBJ),  # by agent id: the agent's name and its figures
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
