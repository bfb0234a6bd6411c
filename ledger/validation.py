"""Validation as pure functions (PROTOCOL section 2): of an action, and of what the store holds.

`check_intrinsic` covers what the action alone can prove (encoding, signature, seq rules, schema,
time bound). The store applies the contextual rules (links, predecessor time, membrane, forks)
with the helpers below, so a node and an auditor judge every action the same way.
"""

from __future__ import annotations

from ledger.actions import Action, decode_action, split_signed
from ledger.errors import (
    BAD_LINK,
    BAD_PAYLOAD,
    BAD_TIME,
    WRONG_COMMUNITY,
    Invalid,
)
from ledger.membrane import Membrane, invite_ok
from ledger.schemas import check_payload

MAX_FUTURE_US = 120 * 1_000_000


def check_intrinsic(
    action_bytes: bytes, signature: bytes, now_us: int, *, check_signature: bool = True
) -> Action:
    """Rules 1, 2, 3, 6 and the future bound of rule 5. Raises `Invalid` with its reason."""
    action = decode_action(action_bytes, signature, check_signature=check_signature)
    check_payload(action.type, action.payload)
    if action.type == "warrant":
        check_warrant(action.payload, check_signatures=check_signature)
    if action.ts > now_us + MAX_FUTURE_US:
        raise Invalid(BAD_TIME, "timestamp more than 120 s ahead of our clock")
    return action


def check_warrant(payload: dict, *, check_signatures: bool = True) -> tuple[Action, Action]:
    """Both pieces of evidence: valid signed actions, same author and seq, different hashes.

    Naming one action twice is refused (Holochain once accepted such a warrant). The evidence
    must pass the same intrinsic checks as any action, so a warrant proves exactly the forks a
    node would have detected itself. `check_signatures=False` is for evidence already verified.
    """
    try:
        first, second = (
            decode_action(*split_signed(item), check_signature=check_signatures)
            for item in payload["evidence"]
        )
        check_payload(first.type, first.payload)
        check_payload(second.type, second.payload)
    except Invalid as exc:
        raise Invalid(
            BAD_PAYLOAD, f"warrant evidence is not a valid signed action: {exc}"
        ) from None
    if first.author != second.author or first.seq != second.seq:
        raise Invalid(BAD_PAYLOAD, "warrant evidence must share author and seq")
    if first.hash == second.hash:
        raise Invalid(BAD_PAYLOAD, "warrant names the same action twice")
    return first, second


def check_link(action: Action, prev_hash: bytes, prev_ts: int) -> None:
    """Rules 4 and 5 against the author's action at `seq - 1`, which the store holds."""
    if action.prev != prev_hash:
        raise Invalid(BAD_LINK, f"prev does not match the author's action at seq {action.seq - 1}")
    if action.ts < prev_ts:
        raise Invalid(BAD_TIME, "timestamp earlier than its predecessor's")


def check_membrane(action: Action, membrane: Membrane) -> None:
    """Rule 7 for a genesis: it names our community and, in a closed one, carries an invite."""
    payload = action.payload
    if payload["community"] != membrane.community:
        raise Invalid(WRONG_COMMUNITY, f"genesis names community {payload['community']!r}")
    if not invite_ok(membrane, payload["grid"], action.author, payload["invite"], payload):
        raise Invalid(WRONG_COMMUNITY, "closed community: the genesis has no valid admin invite")
