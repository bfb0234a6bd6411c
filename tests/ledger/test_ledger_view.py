"""Protocol 2 ledger helpers: view pages, the settlers bitmap, trade digests, binding invites."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.actions import sign_action
from ledger.charter import Charter, CharterError, GridRules, charter_from_map
from ledger.errors import BAD_PAYLOAD, Invalid
from ledger.limits import rules_from
from ledger.membrane import Binding, Membrane, invite_ok, make_invite
from ledger.schemas import check_payload
from ledger.testing import genesis_payload, identity
from ledger.validation import check_intrinsic
from ledger.view import (
    VIEW_PAGE_MAX,
    bitmap_authors,
    settlers_digest,
    trades_digest,
    view_payloads,
    views_bitmap,
)
from market.participants import Participant, within_charter

IDS = st.lists(st.binary(min_size=32, max_size=32), unique=True, max_size=40)


@given(IDS, st.data())
def test_the_bitmap_names_exactly_the_views_used(settlers, data):
    used = data.draw(st.sets(st.sampled_from(settlers))) if settlers else set()
    bitmap = views_bitmap(settlers, used)
    assert len(bitmap) == (len(settlers) + 7) // 8
    assert bitmap_authors(list(reversed(settlers)), bitmap) == sorted(used)
    assert settlers_digest(settlers) == settlers_digest(reversed(settlers))


def test_a_bitmap_of_the_wrong_size_or_with_spare_bits_names_nobody():
    three = [bytes([i]) * 32 for i in range(3)]
    assert bitmap_authors(three, b"") is None
    assert bitmap_authors(three, b"\x01") is None  # bit 7: beyond the third settler
    assert bitmap_authors(three, b"\xa0") == [three[0], three[2]]


def test_views_page_every_400_hashes_in_order_and_each_page_is_valid():
    hashes = [i.to_bytes(2, "big") + bytes(30) for i in range(2 * VIEW_PAGE_MAX + 1)]
    pages = view_payloads(5, reversed(hashes))
    assert [(p["page"], p["pages"], len(p["orders"])) for p in pages] == [
        (0, 3, VIEW_PAGE_MAX),
        (1, 3, VIEW_PAGE_MAX),
        (2, 3, 1),
    ]
    assert [h for p in pages for h in p["orders"]] == hashes
    for p in pages:
        check_payload("view", p)
    assert view_payloads(5, []) == [{"interval": 5, "page": 0, "pages": 1, "orders": []}]
    with pytest.raises(Invalid) as caught:
        check_payload("view", pages[0] | {"orders": hashes[: VIEW_PAGE_MAX + 1]})
    assert caught.value.reason == BAD_PAYLOAD


def test_trade_digests_differ_with_order_and_content():
    a = [[bytes(32), bytes([1]) * 32, 5, 1, bytes(32), bytes(32)]]
    b = [[bytes(32), bytes([1]) * 32, 6, 1, bytes(32), bytes(32)]]
    assert trades_digest(a) != trades_digest(b) != trades_digest(a + b) != trades_digest(b + a)


def test_a_binding_invite_fixes_role_household_capacity_and_power():
    admin, joiner = identity(1), identity(2)
    closed = Membrane("test", admin.agent, open=False)
    binding = Binding("consumer", "home3", 0, 3000)
    invite = make_invite(admin, "test", "g1", joiner.agent, binding)
    ok = genesis_payload(household="home3", invite=invite)
    assert invite_ok(closed, "g1", joiner.agent, invite, ok)
    for change in ({"household": "home1"}, {"role": "generator"}, {"max_power_w": 3001}):
        assert not invite_ok(closed, "g1", joiner.agent, invite, ok | change)
    assert not invite_ok(closed, "g2", joiner.agent, invite, ok)
    legacy = make_invite(admin, "test", "g1", joiner.agent)  # version 1: binds the grid only
    assert invite_ok(closed, "g1", joiner.agent, legacy, ok | {"household": "home1"})


def test_declared_capacity_and_power_are_cut_to_the_charter():
    huge = Participant(bytes(32), "b", "storage", "community", 2**63 - 1, 2**63 - 1)
    cut = within_charter({huge.agent: huge}, 20_000, 5_000)[huge.agent]
    assert (cut.capacity_wh, cut.max_power_w) == (20_000, 5_000)


def test_limits_follow_the_charter_in_force_for_the_interval():
    tight = GridRules(max_order_wh=100)
    old = Charter("c", bytes(32), version=1, grids={"g1": GridRules()})
    new = Charter("c", bytes(32), version=2, effective_from=10, grids={"g1": tight})
    held: list[Charter] = []
    lookup = rules_from(lambda: held)
    assert lookup("g1", 5) is None  # no charter yet: nothing to enforce
    held += [old, new]
    assert lookup("g1", 9) == GridRules() and lookup("g1", 10) == tight
    assert lookup("g1", None) == tight and lookup("g2", 10) is None


def test_a_settlement_of_100_trades_of_the_largest_numbers_still_fits():
    big = 2**63 - 1
    trade = [bytes([1]) * 32, bytes([2]) * 32, big, big, bytes([3]) * 32, bytes([4]) * 32]
    trades = [trade] * 100
    payload = {
        "interval": big,
        "mechanism": "pay-as-clear",
        "book": bytes(32),
        "trades": trades,
        "grid_import_wh": big,
        "grid_export_wh": big,
        "settlers": bytes(32),
        "views": bytes(125),
        "revision": big,
        "trade_count": 100,
        "trades_digest": trades_digest(trades),
    }
    signed = sign_action(identity(1), big, bytes(32), big, "settlement", payload)
    check_intrinsic(signed.action_bytes, signed.signature, big)


def test_version_1_charters_still_parse_and_version_2_checks_its_deadlines():
    v2 = Charter("c", bytes(32), grace_ms=2_000, grids={"g1": GridRules()}).to_map()
    assert v2["v"] == 2 and v2["grids"]["g1"]["max_order_wh"] == GridRules().max_order_wh
    v1 = {k: v for k, v in v2.items() if k not in ("view_ms", "final_ms", "exclude_intervals")}
    v1["v"] = 1
    v1["grids"] = {
        "g1": {
            k: v2["grids"]["g1"][k]
            for k in ("mechanism", "retail", "feed_in", "community_price", "household_price")
        }
    }
    old = charter_from_map(v1)
    assert (old.view_deadline_ms(), old.final_deadline_ms()) == (4_000, 8_000)
    assert old.grids["g1"] == GridRules()
    with pytest.raises(CharterError):
        charter_from_map(v2 | {"view_ms": 1_000})  # before the grace period ends
    with pytest.raises(CharterError):
        charter_from_map(v1 | {"view_ms": 5_000})  # a version-1 charter has no such key
    with pytest.raises(CharterError):
        charter_from_map(v2 | {"grids": {"g1": v2["grids"]["g1"] | {"max_price": 0}}})
