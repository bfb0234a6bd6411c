"""Peer proofs (docs/protocol.md, "Peer proofs"): the shared vector, and what a proof binds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.keys import Identity
from ledger.peerproof import ProofError, check_proof, make_proof, proof_message

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "peer_proofs.json").read_text())


def seeded(name: str) -> Identity:
    return Identity.from_seed(name.encode().ljust(32, b"\0"))


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_the_vector_signs_exactly_these_bytes(vector):
    alice = seeded(vector["seed"])
    nonce = bytes.fromhex(vector["nonce_hex"])
    assert alice.agent.hex() == vector["agent_hex"]
    message = proof_message(nonce, alice.agent, vector["community"], vector["url"])
    assert message.hex() == vector["message_hex"]
    proof = make_proof(alice, nonce, vector["community"], vector["url"])
    assert proof.signature.hex() == vector["signature_hex"]
    answer = [alice.agent, vector["url"], bytes.fromhex(vector["signature_hex"])]
    check_proof(answer, nonce, alice.agent, vector["community"], vector["url"])


ALICE, MALLORY = seeded("alice"), seeded("mallory")
NONCE, URL, COMMUNITY = bytes(range(32)), "http://192.168.1.20:8700", "our-street"


@given(field=st.sampled_from(["nonce", "agent", "community", "url", "signer", "shape"]))
def test_a_proof_proves_nothing_else(field):
    answer = make_proof(ALICE, NONCE, COMMUNITY, URL).wire()
    nonce, agent, community, url = NONCE, ALICE.agent, COMMUNITY, URL
    if field == "nonce":
        nonce = bytes(32)  # a replayed answer to an older challenge
    elif field == "agent":
        agent = MALLORY.agent  # the info named another agent
    elif field == "community":
        community = "another-street"
    elif field == "url":
        url = "http://192.168.1.21:8700"  # relayed from the URL it was made for
    elif field == "signer":
        answer = make_proof(MALLORY, NONCE, COMMUNITY, URL).wire()
        answer[0] = ALICE.agent
    else:
        answer = answer[:2]
    with pytest.raises(ProofError):
        check_proof(answer, nonce, agent, community, url)
    check_proof(make_proof(ALICE, NONCE, COMMUNITY, URL).wire(), NONCE, ALICE.agent,
                COMMUNITY, URL + "/")  # a trailing slash is the same URL
