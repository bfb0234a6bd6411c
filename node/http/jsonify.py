"""JSON forms of ledger objects for the audit API: bytes become lowercase hex."""

from __future__ import annotations

from typing import Any

from ledger.actions import Action, split_signed
from ledger.charter import Charter


def to_json(value: Any) -> Any:
    """`value` with bytes as hex, recursively."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def action_json(a: Action) -> dict:
    """A signed action as JSON (a warrant's evidence spelled out)."""
    payload = to_json(a.payload)
    if a.type == "warrant":
        payload["evidence"] = [
            {"action_bytes": b.hex(), "signature": s.hex()}
            for b, s in (split_signed(e) for e in a.payload["evidence"])
        ]
    return {
        "hash": a.hash.hex(),
        "author": a.author.hex(),
        "seq": a.seq,
        "prev": a.prev.hex() if a.prev else None,
        "ts": a.ts,
        "type": a.type,
        "payload": payload,
        "signature": a.signature.hex(),
        "action_bytes": a.action_bytes.hex(),
    }


def charter_json(c: Charter) -> dict:
    """A charter as JSON, with its signed form in hex."""
    m = to_json(c.to_map())
    m["signed"] = c.signed.hex() if c.signed else None
    return m


def agent_json(row: dict, url: str | None = None) -> dict:
    """An agent's genesis facts as JSON, with its URL when known."""
    return {
        "id": row["author"].hex(),
        "name": row["name"],
        "role": row["role"],
        "household": row["household"],
        "grid": row["grid"],
        "community": row["community"],
        "capacity_wh": row["capacity_wh"],
        "max_power_w": row["max_power_w"],
        "length": row["head_seq"] + 1,
        "head": row["head_hash"].hex(),
        "last_seen_us": row["head_ts"],
        "forked": row["forked"],
        "url": url,
    }
