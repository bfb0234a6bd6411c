"""Entry schemas (PROTOCOL section 3): exact keys, exact types, ranges."""

from __future__ import annotations

import pytest

from ledger.errors import BAD_PAYLOAD, Invalid
from ledger.schemas import SCHEMAS, check_payload
from ledger.testing import (
    genesis_payload,
    identity,
    order_payload,
    reading_payload,
    settlement_payload,
)

SELLER, BUYER = identity(1).agent, identity(2).agent
TRADE = [SELLER, BUYER, 300, 15000, bytes(32), bytes([1]) * 32]

VALID = {
    "genesis": genesis_payload(),
    "offer": order_payload(),
    "bid": order_payload(interval=-3, price=0),
    "settlement": settlement_payload(trades=[TRADE]),
    "reading": reading_payload(soc_wh=1200),
    "warrant": {"evidence": [[b"a", b"s"], [b"b", b"s"]]},
    "view": {"interval": 4, "page": 0, "pages": 1, "orders": [bytes(32), bytes([1]) * 32]},
}


def bad(type_: str, payload: object) -> str:
    with pytest.raises(Invalid) as caught:
        check_payload(type_, payload)
    return caught.value.reason


def test_every_entry_type_has_a_schema_and_a_valid_example():
    assert set(VALID) == set(SCHEMAS)
    for type_, payload in VALID.items():
        check_payload(type_, payload)
    check_payload("genesis", genesis_payload(role="storage", capacity_wh=4000, invite=bytes(64)))
    check_payload("reading", reading_payload(soc_wh=None, bus_mv=-1, current_ua=-5))


@pytest.mark.parametrize("type_", sorted(VALID))
def test_each_missing_key_and_any_unknown_key_is_refused(type_):
    for key in VALID[type_]:
        payload = dict(VALID[type_])
        del payload[key]
        assert bad(type_, payload) == BAD_PAYLOAD
    assert bad(type_, VALID[type_] | {"extra": 1}) == BAD_PAYLOAD


def test_unknown_types_and_non_maps_are_refused():
    assert bad("transfer", {}) == BAD_PAYLOAD
    assert bad("bid", [1, 2, 3]) == BAD_PAYLOAD


WRONG = [
    ("genesis", "community", ""),
    ("genesis", "community", b"test"),
    ("genesis", "grid", "g" * 201),
    ("genesis", "role", "prosumer"),
    ("genesis", "capacity_wh", -1),
    ("genesis", "capacity_wh", 10),  # only storage has a capacity
    ("genesis", "max_power_w", True),
    ("genesis", "invite", bytes(63)),
    ("offer", "energy_wh", 0),
    ("offer", "energy_wh", -5),
    ("offer", "price", -1),
    ("offer", "interval", "1"),
    ("bid", "energy_wh", False),
    ("bid", "price", None),
    ("settlement", "book", bytes(31)),
    ("settlement", "mechanism", 1),
    ("settlement", "grid_import_wh", -1),
    ("settlement", "grid_export_wh", -1),
    ("settlement", "trades", [TRADE[:5]]),
    ("settlement", "trades", [[SELLER, BUYER, 0, 1, bytes(32), bytes(32)]]),
    ("settlement", "trades", [[SELLER, BUYER, 5, -1, bytes(32), bytes(32)]]),
    ("settlement", "trades", [[SELLER, SELLER, 5, 1, bytes(32), bytes(32)]]),  # with itself
    ("settlement", "trades", [[SELLER, BUYER, 5, 1, bytes(32), bytes(31)]]),
    ("settlement", "trades", TRADE),
    ("reading", "import_wh", -1),
    ("reading", "export_wh", -1),
    ("reading", "samples", -1),
    ("reading", "soc_wh", "full"),
    ("reading", "sensor", None),
    ("reading", "bus_mv", 5.0),
    ("reading", "power_uw", "601440"),
    ("warrant", "evidence", [[b"a", b"s"]]),
    ("warrant", "evidence", [[b"a", b"s"], [b"b", b"s"], [b"c", b"s"]]),
    ("warrant", "evidence", [[b"a", b"s"], [b"b", "s"]]),
    ("warrant", "evidence", [[b"a", b"s"], b"b"]),
]


@pytest.mark.parametrize("type_, key, value", WRONG)
def test_wrong_types_and_ranges_are_refused(type_, key, value):
    assert bad(type_, VALID[type_] | {key: value}) == BAD_PAYLOAD


def test_storage_may_declare_a_capacity():
    check_payload("genesis", genesis_payload(role="storage", capacity_wh=20000))
