"""Canonical MessagePack (PROTOCOL section 1).

Canonical means: map keys are `str`, sorted by their UTF-8 bytes, without duplicates; integers in
their shortest form; `bin` for bytes and `str` for text; no floats, no extension types. `decode`
accepts only bytes that `encode` would have produced for the decoded value, so every object has
exactly one encoding and a signature over the bytes covers the meaning.
"""

from __future__ import annotations

import threading
from typing import Any

import msgpack

# How deep arrays and maps may nest. A valid action nests four levels (a warrant's evidence);
# the bound keeps a hostile message from exhausting the stack while it is checked.
MAX_DEPTH = 32


class CodecError(ValueError):
    """The bytes or the value are not canonical PicoGrid MessagePack."""


def _canonical(value: Any, depth: int = 0) -> Any:
    """Return `value` with every map's keys in canonical order; refuse what the format forbids."""
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            raise CodecError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise CodecError(f"map key {key!r} is not text")
            keys = sorted(value, key=lambda k: k.encode("utf-8"))
            return {k: _canonical(value[k], depth + 1) for k in keys}
        return [_canonical(v, depth + 1) for v in value]
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
    return _packer().pack(_canonical(value))


_SCALARS = frozenset((type(None), bool, int, str, bytes))


def _check(value: dict | list, depth: int) -> None:
    """Map keys are text in strictly ascending order; no floats, no extension types, anywhere.

    Python compares text by code point, which is the order of the UTF-8 bytes for any text the
    decoder accepts (invalid UTF-8, lone surrogates included, is refused while decoding).
    """
    if depth > MAX_DEPTH:
        raise CodecError(f"nested deeper than {MAX_DEPTH} levels")
    if type(value) is dict:
        previous: str | None = None
        for key, item in value.items():
            if type(key) is not str:
                raise CodecError("map key is not text")
            if previous is not None and key <= previous:
                raise CodecError("map keys are not in canonical order")
            previous = key
            t = type(item)
            if t is dict or t is list:
                _check(item, depth + 1)
            elif t not in _SCALARS:
                raise CodecError(f"{t.__name__} is not allowed")
    else:
        for item in value:
            t = type(item)
            if t is dict or t is list:
                _check(item, depth + 1)
            elif t not in _SCALARS:
                raise CodecError(f"{t.__name__} is not allowed")


def _no_ext(code: int, data: bytes) -> None:
    raise CodecError("extension types are not allowed")


_local = threading.local()


def _packer() -> msgpack.Packer:
    """One packer per thread: building one per call costs more than the packing itself."""
    try:
        return _local.packer
    except AttributeError:
        _local.packer = msgpack.Packer(use_bin_type=True)
        return _local.packer


def decode(data: bytes) -> Any:
    """Decode canonical bytes; anything else (trailing bytes, long ints, unsorted keys) is refused."""
    try:
        value = msgpack.unpackb(data, raw=False, ext_hook=_no_ext, timestamp=0)
    except CodecError:
        raise
    except (
        ValueError,
        TypeError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
    ) as exc:
        raise CodecError(f"undecodable: {exc.__class__.__name__}") from None
    t = type(value)
    if t is dict or t is list:
        _check(value, 1)
    elif t not in _SCALARS:
        raise CodecError(f"{t.__name__} is not allowed")
    # Same value, other bytes (a long int form, str8 for a short text, a duplicate key that the
    # dict folded away): refused. Only the canonical form survives the round trip.
    if _packer().pack(value) != data:
        raise CodecError("not the canonical encoding of its value")
    return value
