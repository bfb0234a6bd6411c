"""Actions of the source chain (PROTOCOL section 2): build, sign, hash, decode, verify."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, NamedTuple

from ledger import codec
from ledger.errors import BAD_ENCODING, BAD_SEQ, BAD_SIGNATURE, BAD_TIME, TOO_LARGE, Invalid
from ledger.signatures import VERSION, signature_ok

if TYPE_CHECKING:  # ledger.keys imports the signing half of PyNaCl; only types are needed
    from ledger.keys import Identity

MAX_ACTION_BYTES = 16384
ENTRY_TYPES = ("genesis", "offer", "bid", "settlement", "reading", "warrant")


def blake2b256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


class Action(NamedTuple):
    """A decoded, signed action. `action_bytes` and `signature` are exactly what was signed.

    An immutable value. A named tuple rather than a frozen dataclass: one is built for every
    action received, and a frozen dataclass costs four times as much to build.
    """

    author: bytes
    seq: int
    prev: bytes | None
    ts: int
    type: str
    payload: dict[str, Any]
    action_bytes: bytes
    signature: bytes
    hash: bytes

    @property
    def signed(self) -> bytes:
        """The wire form `[action_bytes, signature]`."""
        return codec.encode([self.action_bytes, self.signature])

    def wire(self) -> list[bytes]:
        return [self.action_bytes, self.signature]


# Builds an Action from a tuple in a third of the time its generated `__new__` takes.
_new_action = tuple.__new__


def action_bytes_of(
    author: bytes, seq: int, prev: bytes | None, ts: int, type_: str, payload: dict
) -> bytes:
    return codec.encode([VERSION, author, seq, prev, ts, type_, payload])


def sign_action(
    identity: Identity, seq: int, prev: bytes | None, ts: int, type_: str, payload: dict
) -> Action:
    """Build and sign an action by `identity`. The payload is not schema-checked here."""
    body = action_bytes_of(identity.agent, seq, prev, ts, type_, payload)
    if len(body) > MAX_ACTION_BYTES:
        raise Invalid(TOO_LARGE, f"{len(body)} bytes > {MAX_ACTION_BYTES}")
    return Action(
        identity.agent,
        seq,
        prev,
        ts,
        type_,
        codec.decode(body)[6],
        body,
        identity.sign(body),
        blake2b256(body),
    )


def decode_action(action_bytes: bytes, signature: bytes, *, check_signature: bool = True) -> Action:
    """Decode and check what an action's own bytes can prove (PROTOCOL validation 1-3).

    The signature is verified over the bytes as received; nothing is re-encoded to verify.
    The payload schema, links, time and membrane are checked by `ledger.validation`.
    """
    if not isinstance(action_bytes, bytes) or not isinstance(signature, bytes):
        raise Invalid(BAD_ENCODING, "a signed action is [bin, bin]")
    if len(action_bytes) > MAX_ACTION_BYTES:
        raise Invalid(TOO_LARGE, f"{len(action_bytes)} bytes > {MAX_ACTION_BYTES}")
    try:
        fields = codec.decode(action_bytes)
    except codec.CodecError as exc:
        raise Invalid(BAD_ENCODING, str(exc)) from None
    if not isinstance(fields, list) or len(fields) != 7:
        raise Invalid(BAD_ENCODING, "an action is an array of seven fields")
    v, author, seq, prev, ts, type_, payload = fields
    if type(v) is not int or v != VERSION:
        raise Invalid(BAD_ENCODING, f"unsupported action version {v!r}")
    if not isinstance(author, bytes) or len(author) != 32:
        raise Invalid(BAD_ENCODING, "author must be 32 bytes")
    if type(seq) is not int:
        raise Invalid(BAD_ENCODING, "seq must be an integer")
    if prev is not None and not (isinstance(prev, bytes) and len(prev) == 32):
        raise Invalid(BAD_ENCODING, "prev must be 32 bytes or nil")
    if type(ts) is not int:
        raise Invalid(BAD_ENCODING, "ts must be an integer")
    if not isinstance(type_, str):
        raise Invalid(BAD_ENCODING, "type must be text")
    if not isinstance(payload, dict):
        raise Invalid(BAD_ENCODING, "payload must be a map")
    if len(signature) != 64:
        raise Invalid(BAD_SIGNATURE, "a signature is 64 bytes")
    if check_signature and not signature_ok(author, action_bytes, signature):
        raise Invalid(BAD_SIGNATURE, "signature does not verify against the author")
    if not 0 <= seq < 2**63:
        raise Invalid(BAD_SEQ, "seq must be between 0 and 2**63 - 1")
    if not -(2**63) <= ts < 2**63:
        raise Invalid(BAD_TIME, "ts must be a signed 64-bit integer")
    if (type_ == "genesis") != (seq == 0) or (seq == 0) != (prev is None):
        raise Invalid(BAD_SEQ, "genesis, seq 0 and a nil prev go together")
    hash_ = blake2b256(action_bytes)
    return _new_action(
        Action, (author, seq, prev, ts, type_, payload, action_bytes, signature, hash_)
    )


def split_signed(item: Any) -> tuple[bytes, bytes]:
    """`[action_bytes, signature]` as already decoded from a larger message."""
    if (
        not isinstance(item, list)
        or len(item) != 2
        or not isinstance(item[0], bytes)
        or not isinstance(item[1], bytes)
    ):
        raise Invalid(BAD_ENCODING, "a signed action is [action_bytes, signature]")
    return item[0], item[1]


def decode_signed(signed: bytes, *, check_signature: bool = True) -> Action:
    """Decode the wire bytes of one signed action."""
    try:
        item = codec.decode(signed)
    except codec.CodecError as exc:
        raise Invalid(BAD_ENCODING, str(exc)) from None
    action_bytes, signature = split_signed(item)
    return decode_action(action_bytes, signature, check_signature=check_signature)
