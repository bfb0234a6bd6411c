"""The community charter (PROTOCOL section 6)."""

from __future__ import annotations

import dataclasses

import pytest

from ledger import codec
from ledger.charter import (
    Charter,
    CharterError,
    GridRules,
    charter_for_interval,
    charter_from_map,
    parse_charter,
)
from ledger.testing import identity

ADMIN = identity(100)


def charter(**changes) -> Charter:
    fields = {"community": "test", "admin": ADMIN.agent, "grids": {"g1": GridRules()}} | changes
    return Charter(**fields)


def test_a_signed_charter_parses_back_and_pins_its_admin():
    signed = charter(version=2, open=False).sign(ADMIN)
    parsed = parse_charter(signed.signed, pinned_admin=ADMIN.agent)
    assert parsed == signed and parsed.version == 2 and not parsed.open
    assert parsed.rules_for("g1") == GridRules() and parsed.rules_for("g9") is None
    with pytest.raises(CharterError, match="pinned"):
        parse_charter(signed.signed, pinned_admin=identity(1).agent)


def test_only_the_admin_key_signs():
    with pytest.raises(CharterError):
        charter().sign(identity(1))
    body = charter().charter_bytes()
    forged = codec.encode([body, identity(1).sign(body)])
    with pytest.raises(CharterError, match="signature"):
        parse_charter(forged)


def sign_map(m: dict) -> bytes:
    body = codec.encode(m)
    return codec.encode([body, ADMIN.sign(body)])


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"v": 3},  # protocol 2 charters are "v": 2; 3 is unknown
        {"community": ""},
        {"version": 0},
        {"open": 1},
        {"lead_ms": 5_000, "grace_ms": 10_000},  # grace must be shorter than lead
        {"grids": {"g1": {"mechanism": "merit-order"}}},
        {"grids": {"g1": GridRules(retail=-1).to_map()}},
        {"interval_ms": 0},
    ],
)
def test_malformed_charters_are_refused(change):
    with pytest.raises(CharterError):
        parse_charter(sign_map(charter().to_map() | change))


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2**64 - 1},
        {"effective_from": 2**63},
        {"grids": {"g1": GridRules(community_price=2**64 - 1).to_map()}},
    ],
)
def test_numbers_beyond_signed_64_bits_are_refused(change):
    # msgpack carries them, but neither the store nor a settlement's prices could hold them.
    with pytest.raises(CharterError, match="64 bits"):
        parse_charter(sign_map(charter().to_map() | change))


def test_the_64_bit_limits_themselves_are_allowed():
    edge = {"version": 2**63 - 1, "effective_from": 2**63 - 1, "epoch_us": -(2**63)}
    parsed = parse_charter(sign_map(charter().to_map() | edge))
    assert (parsed.version, parsed.effective_from, parsed.epoch_us) == tuple(edge.values())


def test_signing_refuses_a_charter_no_node_would_take():
    with pytest.raises(CharterError, match="64 bits"):
        dataclasses.replace(charter(), version=2**64 - 1).sign(ADMIN)


def test_not_canonical_or_not_a_pair_is_refused():
    with pytest.raises(CharterError):
        parse_charter(b"\x93\x01\x02\x03")
    with pytest.raises(CharterError):
        parse_charter(b"\xc1")


def test_the_newest_version_in_force_governs_an_interval():
    v1, v2, v3 = (
        charter(version=1),
        charter(version=2, effective_from=10),
        charter(version=3, effective_from=20),
    )
    versions = [v3, v1, v2]
    assert charter_for_interval(versions, 0) is v1
    assert charter_for_interval(versions, 10) is v2
    assert charter_for_interval(versions, 25) is v3
    assert charter_for_interval([v2], 5) is None


def test_a_charter_map_is_read_whatever_its_key_order():
    """Key order is the codec's business: `to_map()` output is accepted before encoding too."""
    c = charter(grids={"g1": GridRules(mechanism="pay-as-bid"), "g2": GridRules()})
    m = c.to_map()
    assert list(m["grids"]["g1"]) != sorted(m["grids"]["g1"])
    assert charter_from_map(m) == c
