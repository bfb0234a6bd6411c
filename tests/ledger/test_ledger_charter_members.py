"""The charter's optional `members` (docs/protocol.md, Membership): parsing, bounds, membrane."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.charter import MAX_MEMBERS, Charter, CharterError, charter_from_map
from ledger.membrane import invite_ok
from ledger.testing import identity

ADMIN = identity(1)
BASE = Charter(community="c", admin=ADMIN.agent)


def test_no_members_encodes_as_before_and_a_list_round_trips():
    assert "members" not in BASE.to_map()
    keys = tuple(sorted(identity(n).agent for n in (2, 3, 4)))
    closed = dataclasses.replace(BASE, open=False, members=keys).sign(ADMIN)
    assert closed.members == keys and closed.to_map()["members"] == list(keys)
    assert charter_from_map(closed.to_map()) == dataclasses.replace(closed, signed=None)


@pytest.mark.parametrize(
    "members",
    [
        [],  # present but empty: one encoding only, so absent
        [bytes(31)],
        ["ab" * 32],
        [bytes([2]) * 32, bytes([1]) * 32],  # not ascending
        [bytes(32), bytes(32)],  # twice
        [i.to_bytes(32, "big") for i in range(MAX_MEMBERS + 1)],
    ],
)
def test_bad_member_lists_are_refused(members):
    with pytest.raises(CharterError):
        charter_from_map(BASE.to_map() | {"members": members})


def test_a_listed_member_needs_no_invite_in_a_closed_community_and_others_do():
    kept, other = identity(2).agent, identity(3).agent
    membrane = dataclasses.replace(BASE, open=False, members=(kept,)).membrane()
    assert invite_ok(membrane, "any-grid", kept, None)
    assert not invite_ok(membrane, "g", other, None)
    assert invite_ok(dataclasses.replace(membrane, members=frozenset()), "g", other, None) is False
