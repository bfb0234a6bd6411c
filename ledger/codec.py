"""Canonical MessagePack (PROTOCOL section 1).

Canonical means: map keys are `str`, sorted by their UTF-8 bytes, without duplicates; integers in
their shortest form; `bin` for bytes and `str` for text; no floats, no extension types. `decode`
accepts only bytes that `encode` would have produced for the decoded value, so every object has
exactly one encoding and a signature over the bytes covers the meaning.
"""

from __future__ import annotations

from typing import Any

import msgpack


class CodecError(ValueError):
    """The bytes or the value are not canonical PicoGrid MessagePack."""


def _canonical(value: Any) -> Any:
    """Return `value` with every map's keys in canonical order; refuse what the format forbids."""
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise CodecError(f"map key {key!r} is not text")
        return {k: _canonical(value[k]) for k in sorted(value, key=lambda k: k.encode("utf-8"))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise CodecError("integer out of the 64-bit range")
        return value
    if isinstance(value, float):
        raise CodecError("floats are not allowed: use integer units")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise CodecError(f"cannot encode {type(value).__name__}")


def encode(value: Any) -> bytes:
    """Encode `value` canonically. Tuples become arrays, bytes become `bin`."""
    return msgpack.packb(_canonical(value), use_bin_type=True)


_SCALARS = frozenset((type(None), bool, int, str, bytes))


def _map_pairs(pairs: list[tuple[Any, Any]]) -> dict:
    """Called by the decoder for every map: keys must be text in strictly ascending UTF-8 order."""
    previous = None
    for key, _ in pairs:
        if type(key) is not str:
            raise CodecError("map key is not text")
        raw = key.encode("utf-8")
        if previous is not None and raw <= previous:
            raise CodecError("map keys are not in canonical order")
        previous = raw
    return dict(pairs)


def _check_values(value: Any) -> None:
    """No floats, no extension types, anywhere (maps' keys were checked while decoding)."""
    items = value.values() if type(value) is dict else value
    for item in items:
        t = type(item)
        if t in _SCALARS:
            continue
        if t is dict or t is list:
            _check_values(item)
        elif t is float:
            raise CodecError("floats are not allowed")
        else:
            raise CodecError(f"{t.__name__} is not allowed")


def _no_ext(code: int, data: bytes) -> None:
    raise CodecError("extension types are not allowed")


def decode(data: bytes) -> Any:
    """Decode canonical bytes; anything else (trailing bytes, long ints, unsorted keys) is refused."""
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=False,
            object_pairs_hook=_map_pairs,
            ext_hook=_no_ext,
            timestamp=0,
        )
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise CodecError(f"undecodable: {exc.__class__.__name__}") from None
    t = type(value)
    if t is dict or t is list:
        _check_values(value)
    elif t not in _SCALARS:
        raise CodecError(f"{t.__name__} is not allowed")
    # Same value, other bytes (a long int form, str8 for a short text, duplicate keys): refused.
    if msgpack.packb(value, use_bin_type=True) != data:
        raise CodecError("not the canonical encoding of its value")
    return value
