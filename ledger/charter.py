"""The community charter (PROTOCOL section 6): the signed rules every node settles by."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger import codec
from ledger.keys import Identity, verify
from ledger.membrane import Membrane
from ledger.schemas import INT64_MAX, INT64_MIN

MECHANISMS = ("merit-order", "pay-as-clear", "pay-as-bid")
_GRID_KEYS = ("community_price", "feed_in", "household_price", "mechanism", "retail")
# Protocol 2 (charter "v": 2): per-grid limits on what orders and genesis entries may claim, and
# the deadlines of views and settlements (docs/protocol.md, "Settlement over views").
_LIMIT_KEYS = ("max_capacity_wh", "max_order_wh", "max_power_w", "max_price")
_GRID_KEYS_V2 = tuple(sorted(_GRID_KEYS + _LIMIT_KEYS))
_TIMING_V2 = ("exclude_intervals", "final_ms", "view_ms")
_CHARTER_KEYS = frozenset(
    (
        "v",
        "community",
        "admin",
        "version",
        "effective_from",
        "open",
        "epoch_us",
        "interval_ms",
        "lead_ms",
        "grace_ms",
        "grids",
    )
)


MAX_MEMBERS = 4096  # agents a charter can list as members admitted before it closed
MAX_AUDITORS = 256  # read-only keys a charter can list (docs/protocol.md, "Signed requests")


class CharterError(ValueError):
    """A charter that is malformed, badly signed, or signed by a key we do not pin."""


@dataclass(frozen=True, slots=True)
class GridRules:
    """How one grid of the community clears: its mechanism and its tariffs (milli-cents/kWh)."""

    mechanism: str = "merit-order"
    retail: int = 30000
    feed_in: int = 5000
    community_price: int = 15000
    household_price: int = 0
    max_order_wh: int = 1_000_000  # the most energy one offer or bid may name
    max_price: int = 10_000_000  # the highest limit price an order may name (100 EUR/kWh)
    max_capacity_wh: int = 10_000_000  # the most storage capacity a genesis may declare
    max_power_w: int = 1_000_000  # the most power a genesis may declare

    def to_map(self) -> dict:
        return {
            "mechanism": self.mechanism,
            "retail": self.retail,
            "feed_in": self.feed_in,
            "community_price": self.community_price,
            "household_price": self.household_price,
            "max_order_wh": self.max_order_wh,
            "max_price": self.max_price,
            "max_capacity_wh": self.max_capacity_wh,
            "max_power_w": self.max_power_w,
        }


@dataclass(frozen=True, slots=True)
class Charter:
    """The decoded content of a charter; `signed` holds the wire form when it came signed."""

    community: str
    admin: bytes
    version: int = 1
    effective_from: int = 0
    open: bool = True
    epoch_us: int = 0
    interval_ms: int = 3_600_000
    lead_ms: int = 60_000
    grace_ms: int = 10_000
    view_ms: int = 0  # views stamped after gate + view_ms do not count; 0: 2 * grace_ms
    final_ms: int = 0  # an agent's last settlement by gate + final_ms counts; 0: 4 * grace_ms
    exclude_intervals: int = 3  # a defaulter's orders leave the books of this many intervals
    grids: dict[str, GridRules] = field(default_factory=dict)
    # Agents admitted without an invite while the community was open: the charter that closes it
    # lists them, so they stay members (docs/protocol.md, "Membership"). Sorted, unique.
    members: tuple[bytes, ...] = ()
    # Keys that may read a closed community but never post (docs/protocol.md, "Signed
    # requests"). Sorted, unique; absent from the encoding when empty.
    auditors: tuple[bytes, ...] = ()
    signed: bytes | None = field(default=None, compare=False)

    def to_map(self) -> dict:
        return {
            "v": 2,
            "community": self.community,
            "admin": self.admin,
            "version": self.version,
            "effective_from": self.effective_from,
            "open": self.open,
            "epoch_us": self.epoch_us,
            "interval_ms": self.interval_ms,
            "lead_ms": self.lead_ms,
            "grace_ms": self.grace_ms,
            "view_ms": self.view_ms,
            "final_ms": self.final_ms,
            "exclude_intervals": self.exclude_intervals,
            "grids": {name: rules.to_map() for name, rules in self.grids.items()},
        } | ({"members": list(self.members)} if self.members else {}) \
          | ({"auditors": list(self.auditors)} if self.auditors else {})

    def view_deadline_ms(self) -> int:
        """Milliseconds after gate closure until which a view counts."""
        return self.view_ms or 2 * self.grace_ms

    def final_deadline_ms(self) -> int:
        """Milliseconds after gate closure until which an agent's settlement may be revised."""
        return max(self.final_ms or 4 * self.grace_ms, self.view_deadline_ms())

    def charter_bytes(self) -> bytes:
        return codec.encode(self.to_map())

    def sign(self, admin: Identity) -> Charter:
        """Return this charter signed by `admin`, whose key must be the charter's `admin`."""
        if admin.agent != self.admin:
            raise CharterError("the signing key is not the charter's admin key")
        body = self.charter_bytes()
        signed = codec.encode([body, admin.sign(body)])
        return parse_charter(signed)

    def rules_for(self, grid: str) -> GridRules | None:
        return self.grids.get(grid)

    def membrane(self) -> Membrane:
        """Who this charter admits: invites when closed, and the members it lists."""
        return Membrane(self.community, self.admin, self.open, frozenset(self.members))


def _int(m: dict, key: str, minimum: int | None = None) -> int:
    """An integer field. Signed 64 bits at most, like every payload integer: msgpack carries up to
    2**64 - 1, but the store holds signed 64-bit integers, and the tariffs end up as trade prices
    in settlements, whose schema refuses anything larger."""
    value = m.get(key)
    if type(value) is not int:
        raise CharterError(f"charter {key!r} must be an integer")
    if not INT64_MIN <= value <= INT64_MAX:
        raise CharterError(f"charter {key!r} must fit in signed 64 bits")
    if minimum is not None and value < minimum:
        raise CharterError(f"charter {key!r} must be >= {minimum}")
    return value


def _grid(name: object, m: object, version: int) -> GridRules:
    if not isinstance(name, str) or not name:
        raise CharterError("grid names must be non-empty text")
    keys = _GRID_KEYS_V2 if version == 2 else _GRID_KEYS
    if not isinstance(m, dict) or sorted(m) != list(keys):
        raise CharterError(f"grid {name!r} must have exactly the keys {', '.join(keys)}")
    mechanism = m["mechanism"]
    if not isinstance(mechanism, str) or not mechanism:
        raise CharterError(f"grid {name!r}: mechanism must be text")
    prices = {k: _int(m, k, 0) for k in ("retail", "feed_in", "community_price", "household_price")}
    limits = {k: _int(m, k, 1) for k in _LIMIT_KEYS if version == 2}
    return GridRules(mechanism=mechanism, **prices, **limits)


def _members(v: object, what: str = "members", most: int = MAX_MEMBERS) -> tuple[bytes, ...]:
    """The optional `members` (or `auditors`): 1 to `most` keys, ascending, no repeats."""
    if (not isinstance(v, list) or not 0 < len(v) <= most
            or not all(isinstance(a, bytes) and len(a) == 32 for a in v)):
        raise CharterError(f"charter {what} must be 1 to {most} 32-byte keys")
    if any(a >= b for a, b in zip(v, v[1:], strict=False)):
        raise CharterError(f"charter {what} must be in ascending order, each once")
    return tuple(v)


def charter_from_map(m: object, signed: bytes | None = None) -> Charter:
    """Check a decoded charter map against PROTOCOL section 6 and build a `Charter`."""
    if not isinstance(m, dict) or type(m.get("v")) is not int or m["v"] not in (1, 2):
        raise CharterError("unsupported charter version field v")
    version = m["v"]
    keys = _CHARTER_KEYS | set(_TIMING_V2) if version == 2 else _CHARTER_KEYS
    if set(m) - {"members", "auditors"} != keys:
        raise CharterError(f"a charter must have exactly the keys {', '.join(sorted(keys))}")
    if not isinstance(m["community"], str) or not m["community"]:
        raise CharterError("charter community must be non-empty text")
    if not isinstance(m["admin"], bytes) or len(m["admin"]) != 32:
        raise CharterError("charter admin must be a 32-byte public key")
    if not isinstance(m["open"], bool):
        raise CharterError("charter open must be true or false")
    if not isinstance(m["grids"], dict):
        raise CharterError("charter grids must be a map")
    members = _members(m["members"]) if "members" in m else ()
    auditors = _members(m["auditors"], "auditors", MAX_AUDITORS) if "auditors" in m else ()
    interval_ms = _int(m, "interval_ms", 1)
    lead_ms = _int(m, "lead_ms", 0)
    grace_ms = _int(m, "grace_ms", 0)
    if not grace_ms < lead_ms <= interval_ms:
        raise CharterError("charter timing needs grace_ms < lead_ms <= interval_ms")
    timing = {k: _int(m, k, 0) for k in _TIMING_V2 if version == 2}
    view = timing.get("view_ms") or 2 * grace_ms  # 0 (and version 1): follow the grace period
    final = timing.get("final_ms") or 4 * grace_ms
    if not grace_ms <= view <= final:
        raise CharterError("charter timing needs grace_ms <= view_ms <= final_ms")
    return Charter(
        community=m["community"],
        admin=m["admin"],
        version=_int(m, "version", 1),
        effective_from=_int(m, "effective_from", 0),
        open=m["open"],
        epoch_us=_int(m, "epoch_us"),
        interval_ms=interval_ms,
        lead_ms=lead_ms,
        grace_ms=grace_ms,
        **timing,
        grids={name: _grid(name, g, version) for name, g in m["grids"].items()},
        members=members,
        auditors=auditors,
        signed=signed,
    )


def parse_charter(signed: bytes, pinned_admin: bytes | None = None) -> Charter:
    """Decode and verify a signed charter `[charter_bytes, signature]`.

    With `pinned_admin`, a charter naming or signed by any other key is refused.
    """
    try:
        outer = codec.decode(signed)
    except codec.CodecError as exc:
        raise CharterError(f"charter is not canonical msgpack: {exc}") from None
    if (
        not isinstance(outer, list)
        or len(outer) != 2
        or not isinstance(outer[0], bytes)
        or not isinstance(outer[1], bytes)
    ):
        raise CharterError("a signed charter is [charter_bytes, signature]")
    body, signature = outer
    try:
        m = codec.decode(body)
    except codec.CodecError as exc:
        raise CharterError(f"charter_bytes are not canonical msgpack: {exc}") from None
    charter = charter_from_map(m, signed=bytes(signed))
    if pinned_admin is not None and charter.admin != pinned_admin:
        raise CharterError("charter is signed by a key other than the pinned admin key")
    if not verify(charter.admin, body, signature):
        raise CharterError("charter signature does not verify against its admin key")
    return charter


def charter_for_interval(charters: list[Charter], interval: int) -> Charter | None:
    """The newest version whose `effective_from <= interval` (PROTOCOL section 6)."""
    best = None
    for c in charters:
        if c.effective_from <= interval and (best is None or c.version > best.version):
            best = c
    return best
