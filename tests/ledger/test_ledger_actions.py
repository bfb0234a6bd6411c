"""Signed actions (PROTOCOL section 2): build, sign, hash, decode, verify the bytes as received."""

from __future__ import annotations

import hashlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import codec
from ledger.actions import (
    MAX_ACTION_BYTES,
    blake2b256,
    decode_action,
    decode_signed,
    sign_action,
    split_signed,
)
from ledger.errors import BAD_ENCODING, BAD_SEQ, BAD_SIGNATURE, TOO_LARGE, Invalid
from ledger.testing import (
    T0,
    ChainSigner,
    genesis_payload,
    identity,
    order_payload,
    reading_payload,
)
from ledger.validation import check_intrinsic

ALICE = identity(1)


def raw_action(fields: list, ident=ALICE) -> tuple[bytes, bytes]:
    """Action bytes of any seven (or other) fields, signed: for actions sign_action won't make."""
    body = codec.encode(fields)
    return body, ident.sign(body)


def reason_of(body: bytes, signature: bytes) -> str:
    with pytest.raises(Invalid) as caught:
        decode_action(body, signature)
    return caught.value.reason


def test_sign_then_decode_gives_the_same_action():
    a = sign_action(ALICE, 0, None, T0, "genesis", genesis_payload())
    assert a.author == ALICE.agent and a.seq == 0 and a.prev is None and a.ts == T0
    assert (
        a.hash
        == hashlib.blake2b(a.action_bytes, digest_size=32).digest()
        == blake2b256(a.action_bytes)
    )
    assert codec.decode(a.action_bytes) == [1, ALICE.agent, 0, None, T0, "genesis", a.payload]
    assert decode_action(a.action_bytes, a.signature) == a
    assert decode_signed(a.signed) == a
    assert a.signed == codec.encode(a.wire())
    assert split_signed(codec.decode(a.signed)) == (a.action_bytes, a.signature)


def test_the_signature_covers_the_bytes_as_received():
    a = sign_action(ALICE, 0, None, T0, "genesis", genesis_payload())
    other = sign_action(identity(2), 0, None, T0, "genesis", genesis_payload())
    assert reason_of(a.action_bytes, other.signature) == BAD_SIGNATURE
    assert reason_of(a.action_bytes, a.signature[:63]) == BAD_SIGNATURE
    assert reason_of(a.action_bytes, bytes(64)) == BAD_SIGNATURE
    # Signed by someone else than the author the bytes name.
    body, sig = raw_action([1, ALICE.agent, 0, None, T0, "genesis", genesis_payload()], identity(2))
    assert reason_of(body, sig) == BAD_SIGNATURE


def test_a_non_canonical_encoding_of_a_signed_action_is_refused_even_if_signed():
    a = sign_action(ALICE, 1, bytes(32), T0, "bid", order_payload())
    # Same value, the price as a uint32 instead of a uint16; validly signed by the author.
    price = b"\xa5price" + codec.encode(15000)
    long_form = a.action_bytes.replace(price, b"\xa5price\xce" + (15000).to_bytes(4, "big"))
    assert msgpack.unpackb(long_form) == msgpack.unpackb(a.action_bytes)
    assert reason_of(long_form, ALICE.sign(long_form)) == BAD_ENCODING


G = genesis_payload()
AUTHOR = ALICE.agent


@pytest.mark.parametrize(
    "fields",
    [
        [1, AUTHOR, 0, None, T0, "genesis"],  # six fields
        [1, AUTHOR, 0, None, T0, "genesis", G, 0],  # eight
        [2, AUTHOR, 0, None, T0, "genesis", G],  # version
        [True, AUTHOR, 0, None, T0, "genesis", G],  # version as bool
        [1, AUTHOR[:31], 0, None, T0, "genesis", G],  # author length
        [1, AUTHOR.hex(), 0, None, T0, "genesis", G],  # author as text
        [1, AUTHOR, "0", None, T0, "genesis", G],  # seq as text
        [1, AUTHOR, False, None, T0, "genesis", G],  # seq as bool
        [1, AUTHOR, 1, bytes(31), T0, "bid", order_payload()],  # prev length
        [1, AUTHOR, 0, None, str(T0), "genesis", G],  # ts as text
        [1, AUTHOR, 0, None, T0, b"genesis", G],  # type as bin
        [1, AUTHOR, 0, None, T0, "genesis", [G]],  # payload as array
        {"v": 1},  # not an array
    ],
)
def test_fields_of_the_wrong_shape_are_bad_encoding(fields):
    body, sig = raw_action(fields)
    assert reason_of(body, sig) == BAD_ENCODING


@pytest.mark.parametrize(
    "seq, prev, type_",
    [
        (-1, bytes(32), "bid"),
        (1, None, "bid"),  # a nil prev after genesis
        (0, bytes(32), "genesis"),  # a genesis with a prev
        (1, bytes(32), "genesis"),  # a genesis above seq 0
        (0, None, "bid"),  # seq 0 that is not a genesis
    ],
)
def test_genesis_seq_zero_and_nil_prev_go_together(seq, prev, type_):
    payload = G if type_ == "genesis" else order_payload()
    body, sig = raw_action([1, AUTHOR, seq, prev, T0, type_, payload])
    assert reason_of(body, sig) == BAD_SEQ


def _sized(size: int) -> tuple[bytes, bytes]:
    """A signed reading whose action bytes are exactly `size` long."""
    fields = [1, AUTHOR, 1, bytes(32), T0, "reading", reading_payload(sensor="")]
    base = len(codec.encode(fields))
    for pad in range(size - base - 3, size - base + 1):  # the str header grows with the text
        fields[6] = reading_payload(sensor="x" * pad)
        if len(codec.encode(fields)) == size:
            return raw_action(fields)
    raise AssertionError("no padding gives that size")


def test_the_size_limit_is_16384_action_bytes():
    body, sig = _sized(MAX_ACTION_BYTES)
    assert decode_action(body, sig).seq == 1
    body, sig = _sized(MAX_ACTION_BYTES + 1)
    assert reason_of(body, sig) == TOO_LARGE
    with pytest.raises(Invalid) as caught:
        sign_action(ALICE, 1, bytes(32), T0, "reading", reading_payload(sensor="x" * 17000))
    assert caught.value.reason == TOO_LARGE


@pytest.mark.parametrize(
    "item", [[b"a"], [b"a", b"b", b"c"], ["text", b"sig"], [b"a", 5], b"ab", None, {"a": b""}]
)
def test_a_signed_action_is_a_pair_of_bin(item):
    with pytest.raises(Invalid) as caught:
        split_signed(item)
    assert caught.value.reason == BAD_ENCODING


def test_decode_signed_refuses_undecodable_wire_bytes():
    with pytest.raises(Invalid) as caught:
        decode_signed(b"\x92\xc4")
    assert caught.value.reason == BAD_ENCODING


def _signed_examples() -> list[bytes]:
    signer = ChainSigner(identity(7))
    chain = [signer.genesis(), signer.next(), signer.next("reading", reading_payload(2))]
    return [a.signed for a in chain]


SIGNED = _signed_examples()


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SIGNED), st.data())
def test_flipping_any_single_byte_of_a_signed_action_makes_it_invalid(signed, data):
    index = data.draw(st.integers(0, len(signed) - 1), label="index")
    mask = data.draw(st.integers(1, 255), label="mask")
    flipped = bytearray(signed)
    flipped[index] ^= mask
    with pytest.raises(Invalid):
        action = decode_signed(bytes(flipped))
        check_intrinsic(action.action_bytes, action.signature, T0 + 10**12)
