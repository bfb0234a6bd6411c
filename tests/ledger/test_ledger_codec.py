"""Canonical MessagePack (PROTOCOL section 1): one encoding per value, everything else refused."""

from __future__ import annotations

import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import codec
from ledger.codec import CodecError, decode, encode


def test_map_keys_are_sorted_by_their_utf8_bytes():
    value = {"b": 1, "a": 2, "é": 3, "Z": 4, "aa": 5}
    data = encode(value)
    assert data == msgpack.packb({"Z": 4, "a": 2, "aa": 5, "b": 1, "é": 3}, use_bin_type=True)
    assert list(decode(data)) == ["Z", "a", "aa", "b", "é"]


def test_integers_take_their_shortest_form():
    assert encode(1) == b"\x01"
    assert encode(-1) == b"\xff"
    assert encode(200) == b"\xcc\xc8"
    assert encode(2**64 - 1) == b"\xcf" + b"\xff" * 8
    assert encode(-(2**63)) == b"\xd3\x80" + bytes(7)


@pytest.mark.parametrize(
    "data",
    [
        b"\xcc\x01",  # 1 as uint8
        b"\xcd\x00\x01",  # 1 as uint16
        b"\xd0\x05",  # 5 as int8
        b"\xd9\x01a",  # "a" as str8
        b"\xc5\x00\x01x",  # b"x" as bin16
        b"\xdc\x00\x01\x01",  # [1] as array16
        b"\xde\x00\x01\xa1a\x01",  # {"a": 1} as map16
    ],
)
def test_a_long_form_of_a_value_is_refused(data):
    with pytest.raises(CodecError, match="canonical"):
        decode(data)


def test_unsorted_keys_are_refused():
    data = b"\x82\xa1b\x01\xa1a\x02"  # {"b": 1, "a": 2}
    with pytest.raises(CodecError, match="order"):
        decode(data)


def test_duplicate_keys_are_refused():
    data = b"\x82\xa1a\x01\xa1a\x02"  # {"a": 1, "a": 2}
    with pytest.raises(CodecError):
        decode(data)


@pytest.mark.parametrize("data", [b"\x81\x01\x02", b"\x81\xc4\x01k\x02"])  # int and bin keys
def test_map_keys_must_be_text(data):
    with pytest.raises(CodecError):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\xcb" + struct.pack(">d", 1.5),
        b"\xca" + struct.pack(">f", 1.5),
        b"\x91\xcb" + struct.pack(">d", 0.0),
        b"\x81\xa1x\xcb" + struct.pack(">d", 2.0),
    ],
)
def test_floats_are_refused_anywhere(data):
    with pytest.raises(CodecError, match="float|canonical"):
        decode(data)


def test_floats_are_refused_when_encoding():
    with pytest.raises(CodecError, match="float"):
        encode({"price": 0.3})


def test_extension_types_and_timestamps_are_refused():
    with pytest.raises(CodecError):
        decode(b"\xd4\x05\x00")  # fixext1, type 5
    with pytest.raises(CodecError):
        decode(b"\xd6\xff\x00\x00\x00\x01")  # timestamp 32


def test_trailing_bytes_are_refused():
    with pytest.raises(CodecError):
        decode(encode([1, 2]) + b"\x00")


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01", b"\xa2a", b"\xa1\xff"])
def test_truncated_reserved_and_invalid_utf8_are_refused(data):
    with pytest.raises(CodecError):
        decode(data)


def test_nesting_is_bounded_both_ways():
    deepest: object = 0
    for _ in range(codec.MAX_DEPTH):
        deepest = [deepest]
    assert decode(encode(deepest)) == deepest
    with pytest.raises(CodecError, match="deeper"):
        encode([deepest])
    with pytest.raises(CodecError, match="deeper"):
        decode(b"\x91" + encode(deepest))
    with pytest.raises(CodecError):  # far deeper than Python's recursion limit
        decode(b"\x91" * 5000 + b"\x00")


def test_bin_and_str_stay_apart():
    assert decode(encode([b"ab", "ab"])) == [b"ab", "ab"]
    assert encode(b"ab") == b"\xc4\x02ab"
    assert encode("ab") == b"\xa2ab"


def test_out_of_range_integers_and_unknown_types_are_refused():
    with pytest.raises(CodecError):
        encode(2**64)
    with pytest.raises(CodecError):
        encode(-(2**63) - 1)
    with pytest.raises(CodecError):
        encode({1: "a"})
    with pytest.raises(CodecError):
        encode({"a"})


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(max_size=40)
    | st.binary(max_size=70),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_every_value_round_trips_and_has_one_encoding(value):
    data = encode(value)
    assert decode(data) == value
    assert encode(decode(data)) == data


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.integers(0, 2**40), min_size=2, max_size=6))
def test_any_other_key_order_is_refused(mapping):
    canonical = encode(mapping)
    reordered = msgpack.packb(dict(reversed(list(decode(canonical).items()))), use_bin_type=True)
    if reordered != canonical:
        with pytest.raises(CodecError):
            decode(reordered)
