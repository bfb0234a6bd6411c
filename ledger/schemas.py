"""Entry schemas (PROTOCOL section 3): exact keys, exact types, ranges. Unknown keys are refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.errors import BAD_PAYLOAD, Invalid
from ledger.view import check_view, trades_digest

ROLES = ("consumer", "generator", "storage")

Check = Callable[[Any], bool]


# Integers are signed 64-bit everywhere (what SQLite and every other implementation can hold);
# msgpack's uint64 values above that range are refused as bad payload, never half-stored.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _int(v: Any) -> bool:
    return type(v) is int and INT64_MIN <= v <= INT64_MAX


def _int_ge0(v: Any) -> bool:
    return type(v) is int and 0 <= v <= INT64_MAX


def _int_gt0(v: Any) -> bool:
    return type(v) is int and 0 < v <= INT64_MAX


# Every free-form field has a maximum (docs/protocol.md, "Bounds"); lengths count characters.
MAX_NAME = 200  # community, grid, name, household
MAX_MECHANISM = 32
MAX_SENSOR = 64
MAX_TRADES = 110  # 110 trades of the widest integers just fit in an action's 16,384 bytes


def _name(v: Any) -> bool:
    return isinstance(v, str) and 0 < len(v) <= MAX_NAME


def _mechanism(v: Any) -> bool:
    return isinstance(v, str) and 0 < len(v) <= MAX_MECHANISM


def _sensor(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= MAX_SENSOR


def _bin32(v: Any) -> bool:
    return isinstance(v, bytes) and len(v) == 32


def _int_or_nil(v: Any) -> bool:
    return v is None or _int(v)


def _invite(v: Any) -> bool:
    return v is None or (isinstance(v, bytes) and len(v) == 64)


def _role(v: Any) -> bool:
    return v in ROLES and isinstance(v, str)


def _trade(t: Any) -> bool:
    return (
        isinstance(t, list)
        and len(t) == 6
        and _bin32(t[0])
        and _bin32(t[1])
        and _int_gt0(t[2])
        and _int_ge0(t[3])
        and _bin32(t[4])
        and _bin32(t[5])
    )


def _trades(v: Any) -> bool:
    return isinstance(v, list) and len(v) <= MAX_TRADES and all(_trade(t) for t in v)


def _hashes(v: Any) -> bool:
    return isinstance(v, list) and all(_bin32(h) for h in v)


def _bin(v: Any) -> bool:
    return isinstance(v, bytes) and len(v) <= 8192


def _evidence(v: Any) -> bool:
    # The two signed actions are checked in depth by `validation.check_warrant`.
    return (
        isinstance(v, list)
        and len(v) == 2
        and all(
            isinstance(e, list) and len(e) == 2 and all(isinstance(x, bytes) for x in e) for e in v
        )
    )


_ORDER = {"interval": _int, "energy_wh": _int_gt0, "price": _int_ge0}

SCHEMAS: dict[str, dict[str, Check]] = {
    "genesis": {
        "community": _name,
        "grid": _name,
        "name": _name,
        "role": _role,
        "household": _name,
        "capacity_wh": _int_ge0,
        "max_power_w": _int_ge0,
        "invite": _invite,
    },
    "offer": _ORDER,
    "bid": _ORDER,
    "settlement": {
        "interval": _int,
        "mechanism": _mechanism,
        "book": _bin32,
        "trades": _trades,
        "grid_import_wh": _int_ge0,
        "grid_export_wh": _int_ge0,
    },
    "reading": {
        "interval": _int,
        "import_wh": _int_ge0,
        "export_wh": _int_ge0,
        "soc_wh": _int_or_nil,
        "bus_mv": _int,
        "current_ua": _int,
        "power_uw": _int,
        "samples": _int_ge0,
        "sensor": _sensor,
    },
    "warrant": {"evidence": _evidence},
    "view": {"interval": _int, "page": _int_ge0, "pages": _int_gt0, "orders": _hashes},
}

# Protocol 2 settlements name the views they used and may carry their trades as a digest
# (docs/protocol.md, "Settlement over views"). A node accepts both shapes; which one a
# settlement has is decided by its exact key set.
SETTLEMENT_V2: dict[str, Check] = SCHEMAS["settlement"] | {
    "settlers": _bin32,
    "views": _bin,
    "revision": _int_ge0,
    "trade_count": _int_ge0,
    "trades_digest": _bin32,
}


def check_payload(type_: str, payload: Any) -> None:
    """Raise `Invalid(bad-payload)` unless `payload` matches the schema of `type_` exactly."""
    schema = SCHEMAS.get(type_)
    if type_ == "settlement" and isinstance(payload, dict) and "views" in payload:
        schema = SETTLEMENT_V2
    if schema is None:
        raise Invalid(BAD_PAYLOAD, f"unknown entry type {type_!r}")
    if not isinstance(payload, dict):
        raise Invalid(BAD_PAYLOAD, "payload must be a map")
    if payload.keys() != schema.keys():
        missing = sorted(schema.keys() - payload.keys())
        unknown = sorted(payload.keys() - schema.keys())
        raise Invalid(BAD_PAYLOAD, f"{type_}: missing keys {missing}, unknown keys {unknown}")
    for key, check in schema.items():
        if not check(payload[key]):
            raise Invalid(BAD_PAYLOAD, f"{type_}: bad value for {key!r}")
    if type_ == "genesis":
        storage = payload["role"] == "storage"
        if not storage and payload["capacity_wh"] != 0:
            raise Invalid(BAD_PAYLOAD, "genesis: capacity_wh must be 0 unless role is storage")
    elif type_ == "settlement":
        for trade in payload["trades"]:
            if trade[0] == trade[1]:
                raise Invalid(BAD_PAYLOAD, "settlement: a trade's seller and buyer are the same")
        if schema is SETTLEMENT_V2:
            _check_trade_list(payload)
    elif type_ == "view":
        check_view(payload)


def _check_trade_list(payload: dict) -> None:
    """A v2 settlement lists all its trades or none; a listed list must match its digest."""
    trades = payload["trades"]
    if not trades:
        if payload["trade_count"] == 0 and payload["trades_digest"] != trades_digest([]):
            raise Invalid(BAD_PAYLOAD, "settlement: no trades, but not the digest of none")
        return
    if len(trades) != payload["trade_count"] or trades_digest(trades) != payload["trades_digest"]:
        raise Invalid(BAD_PAYLOAD, "settlement: trades do not match trade_count / trades_digest")
