"""Validation as pure functions: time bounds, links, membrane, warrants."""

from __future__ import annotations

import pytest

from ledger.actions import sign_action
from ledger.errors import BAD_LINK, BAD_PAYLOAD, BAD_SIGNATURE, BAD_TIME, WRONG_COMMUNITY, Invalid
from ledger.membrane import Membrane, invite_ok, make_invite
from ledger.testing import T0, ChainSigner, identity, order_payload, warrant_payload
from ledger.validation import (
    MAX_FUTURE_US,
    check_intrinsic,
    check_link,
    check_membrane,
    check_warrant,
)

ADMIN = identity(100)


def reason(call, *args, **kwargs) -> str:
    with pytest.raises(Invalid) as caught:
        call(*args, **kwargs)
    return caught.value.reason


def test_a_timestamp_up_to_120_s_ahead_is_accepted_and_no_further():
    signer = ChainSigner(identity(1))
    g = signer.genesis()
    check_intrinsic(g.action_bytes, g.signature, T0 - MAX_FUTURE_US)
    assert reason(check_intrinsic, g.action_bytes, g.signature, T0 - MAX_FUTURE_US - 1) == BAD_TIME


def test_check_intrinsic_reports_the_schema_and_signature_reasons():
    a = sign_action(identity(1), 1, bytes(32), T0, "bid", order_payload(energy_wh=0))
    assert reason(check_intrinsic, a.action_bytes, a.signature, T0) == "bad-payload"
    assert reason(check_intrinsic, a.action_bytes, bytes(64), T0) == BAD_SIGNATURE
    # Without signature checking (for actions verified before), the rest still applies.
    assert reason(check_intrinsic, a.action_bytes, bytes(64), T0, check_signature=False) == (
        "bad-payload"
    )


def test_links_and_predecessor_time():
    signer = ChainSigner(identity(1))
    g = signer.genesis()
    a1 = signer.next()
    check_link(a1, g.hash, g.ts)
    check_link(a1, g.hash, a1.ts)  # an equal timestamp is allowed
    assert reason(check_link, a1, bytes(32), g.ts) == BAD_LINK
    assert reason(check_link, a1, g.hash, a1.ts + 1) == BAD_TIME


def test_genesis_must_name_our_community():
    g = ChainSigner(identity(1)).genesis(community="elsewhere")
    assert reason(check_membrane, g, Membrane("test")) == WRONG_COMMUNITY
    check_membrane(g, Membrane("elsewhere"))


def test_a_closed_community_needs_the_admins_invite_for_that_agent_and_grid():
    closed = Membrane("test", ADMIN.agent, open=False)
    joiner = identity(1)
    invite = make_invite(ADMIN, "test", "g1", joiner.agent)
    check_membrane(ChainSigner(joiner).genesis(invite=invite), closed)
    assert invite_ok(closed, "g1", joiner.agent, invite)
    refused = [
        ChainSigner(joiner).genesis(invite=None),
        ChainSigner(joiner).genesis(grid="g2", invite=invite),  # invited to another grid
        ChainSigner(identity(2)).genesis(invite=invite),  # someone else's invite
        ChainSigner(joiner).genesis(invite=make_invite(identity(3), "test", "g1", joiner.agent)),
        ChainSigner(joiner).genesis(invite=make_invite(ADMIN, "other", "g1", joiner.agent)),
    ]
    for g in refused:
        assert reason(check_membrane, g, closed) == WRONG_COMMUNITY
    # Closed, but the node has pinned no admin key: nobody can be let in.
    assert reason(check_membrane, refused[0], Membrane("test", None, open=False)) == (
        WRONG_COMMUNITY
    )


def fork_of(n: int = 1):
    signer = ChainSigner(identity(n))
    g = signer.genesis()
    return signer, g, signer.at(g), signer.at(g, "offer", order_payload(1, 7, 9))


def test_a_warrant_with_two_different_actions_at_one_place_holds():
    _, _, a, b = fork_of()
    first, second = check_warrant(warrant_payload(a, b))
    assert (first.hash, second.hash) == (a.hash, b.hash)


def test_a_warrant_naming_one_action_twice_is_refused():
    _, _, a, _ = fork_of()
    assert reason(check_warrant, warrant_payload(a, a)) == BAD_PAYLOAD


def test_warrant_evidence_must_share_author_and_seq():
    signer, g, a, _ = fork_of()
    _, _, other_author, _ = fork_of(2)
    later = signer.at(a)
    assert reason(check_warrant, warrant_payload(a, other_author)) == BAD_PAYLOAD
    assert reason(check_warrant, warrant_payload(a, later)) == BAD_PAYLOAD
    assert reason(check_warrant, warrant_payload(g, a)) == BAD_PAYLOAD


def test_warrant_evidence_must_be_validly_signed_and_valid():
    _, _, a, b = fork_of()
    forged = {"evidence": [a.wire(), [b.action_bytes, a.signature]]}
    assert reason(check_warrant, forged) == BAD_PAYLOAD
    bad_schema = sign_action(identity(1), 1, a.prev, a.ts, "bid", order_payload(energy_wh=0))
    assert reason(check_warrant, warrant_payload(a, bad_schema)) == BAD_PAYLOAD
    garbage = {"evidence": [a.wire(), [b"\xc1", bytes(64)]]}
    assert reason(check_warrant, garbage) == BAD_PAYLOAD


def test_a_warrant_action_is_checked_in_depth_by_check_intrinsic():
    _, _, a, _ = fork_of()
    w = sign_action(identity(9), 1, bytes(32), T0, "warrant", warrant_payload(a, a))
    assert reason(check_intrinsic, w.action_bytes, w.signature, T0) == BAD_PAYLOAD


@pytest.mark.parametrize("seq, interval, ts, reason", [
    (1, 2**63, T0, BAD_PAYLOAD),  # msgpack's uint64 above int64: no store could hold it
    (1, 2**64 - 1, T0, BAD_PAYLOAD),
    (1, -(2**63), T0, None),
    (2**63, 1, T0, "bad-seq"),
    (1, 1, 2**63, BAD_TIME),
])
def test_integers_must_fit_in_64_signed_bits(seq, interval, ts, reason):
    author = identity(7)
    action = sign_action(author, seq, b"p" * 32, ts, "bid",
                         {"interval": interval, "energy_wh": 1, "price": 1})
    if reason is None:
        check_intrinsic(action.action_bytes, action.signature, 2**63 - 1)
        return
    with pytest.raises(Invalid) as err:
        check_intrinsic(action.action_bytes, action.signature, 2**63 - 1)
    assert err.value.reason == reason
