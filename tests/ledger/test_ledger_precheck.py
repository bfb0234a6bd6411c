"""The batch intrinsic checks give exactly what `check_intrinsic` gives, item by item, in order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import codec
from ledger.actions import sign_action
from ledger.errors import Invalid
from ledger.precheck import (
    check_chunk,
    decode_pass,
    gather,
    precheck,
    signature_pass,
    submit_precheck,
)
from ledger.signatures import claimed_author, signature_verdicts
from ledger.testing import T0, ChainSigner, identity, order_payload, warrant_payload, wire_items
from ledger.validation import check_intrinsic

NOW = T0 + 10**12
ALICE = identity(1)


def _items() -> list[tuple[bytes, bytes]]:
    """Valid actions and every kind of invalid one, some invalid in two ways at once."""
    signer = ChainSigner(ALICE)
    g = signer.genesis()
    a1, a2 = signer.next(), signer.next()
    rival = signer.at(g)
    other = identity(2)

    def forged(body: bytes) -> tuple[bytes, bytes]:
        return body, other.sign(body)

    bad_seq = codec.encode([1, ALICE.agent, 0, None, T0, "bid", order_payload()])
    bad_payload = sign_action(ALICE, 1, g.hash, T0, "bid", order_payload(energy_wh=0))
    future = sign_action(ALICE, 1, g.hash, NOW + 200_000_000, "bid", order_payload())
    witness = ChainSigner(identity(3))
    warrant = witness.at(witness.genesis(), "warrant", warrant_payload(a1, rival))
    bad_evidence = {"evidence": [a1.wire(), [rival.action_bytes, a1.signature]]}
    forged_warrant = sign_action(identity(3), 1, bytes(32), T0, "warrant", bad_evidence)
    return (
        wire_items([g, a1, a2, rival, bad_payload, future, warrant, forged_warrant])
        + [
            (bad_seq, ALICE.sign(bad_seq)),  # bad-seq
            forged(bad_seq),  # bad-seq and bad-signature: bad-signature
            forged(bad_payload.action_bytes),  # bad-payload and bad-signature: bad-signature
            forged(future.action_bytes),  # bad-time and bad-signature: bad-signature
            forged(warrant.action_bytes),
            (g.action_bytes, g.signature[:10]),  # short signature
            (g.action_bytes[:-1], g.signature),  # truncated
            (b"\xc1", bytes(64)),
            (g.action_bytes + b"x" * 17000, g.signature),  # too large
        ]
    )


ITEMS = _items()


def verdicts(outcomes: list) -> list:
    return [o.reason if isinstance(o, Invalid) else o for o in outcomes]


def one_by_one(items: list[tuple[bytes, bytes]]) -> list:
    out = []
    for body, sig in items:
        try:
            out.append(check_intrinsic(body, sig, NOW))
        except Invalid as exc:
            out.append(exc.reason)
    return out


def test_every_kind_of_item_gets_the_reason_check_intrinsic_gives():
    expected = one_by_one(ITEMS)
    assert verdicts(check_chunk(ITEMS, NOW)) == expected
    assert expected[9:13] == ["bad-signature"] * 4


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(range(len(ITEMS))), max_size=40))
def test_any_mix_in_any_order_on_a_pool_too(indices):
    items = [ITEMS[i] for i in indices]
    expected = one_by_one(items)
    assert verdicts(check_chunk(items, NOW)) == expected
    with ThreadPoolExecutor(2) as pool:
        assert verdicts(precheck(items, NOW, pool)) == expected
        assert verdicts(gather(submit_precheck(pool, items, NOW, 3))) == expected


def test_claimed_author_is_the_author_of_every_action_that_decodes():
    for body, sig in ITEMS:
        try:
            action = check_intrinsic(body, sig, NOW, check_signature=False)
        except Invalid:
            continue
        assert claimed_author(body) == action.author
    assert claimed_author(b"\xc1") is None
    assert claimed_author(b"\x97\x01\xc4\x20" + bytes(31)) is None  # cut short


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(range(len(ITEMS))), max_size=40))
def test_verdicts_from_elsewhere_give_the_same_outcomes(indices):
    # What a node does with verifier processes: decode here, verdicts computed elsewhere.
    items = [ITEMS[i] for i in indices]
    decoded = decode_pass(items, NOW)
    elsewhere = signature_verdicts(items)
    assert verdicts(signature_pass(items, decoded, NOW, elsewhere)) == one_by_one(items)
    for verdict, outcome in zip(elsewhere, one_by_one(items), strict=True):
        if not isinstance(outcome, str):  # a valid action: its signature verified elsewhere too
            assert verdict == 1
