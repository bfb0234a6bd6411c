"""Peer proofs (protocol 2, "Peer proofs"): a URL shows that it holds an agent's key.

An agent info says "agent A listens at URL U", signed by A. Anyone can sign such an info for a
URL they do not run (a victim's, or a fake peer's). Before a node calls U in its rounds or
pushes, it sends U a fresh random nonce; the node at U answers with its agent id, the URL it
serves and an Ed25519 signature over

    canonical([PROOF_DOMAIN, nonce (bin 32), agent (bin 32), community (str), url (str)])

The verifier accepts only when the agent is the one the info named, the URL is the one it
called, and the signature verifies under the verifier's own community. A node only ever signs
its own URL, so a proof cannot be relayed to vouch for another address.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger import codec
from ledger.keys import Identity, verify

PROOF_DOMAIN = "picogrid/peer-proof/2"
NONCE_BYTES = 32


class ProofError(ValueError):
    """A proof answer that does not prove what was asked."""


@dataclass(frozen=True, slots=True)
class PeerProof:
    """One answer to a challenge: who answered, at which URL, and the signature."""

    agent: bytes
    url: str
    signature: bytes

    def wire(self) -> list:
        """The answer as sent: `[agent (bin 32), url (str), signature (bin 64)]`."""
        return [self.agent, self.url, self.signature]


def proof_message(nonce: bytes, agent: bytes, community: str, url: str) -> bytes:
    """The exact bytes a proof signs (domain-separated, canonical msgpack)."""
    return codec.encode([PROOF_DOMAIN, nonce, agent, community, url.rstrip("/")])


def make_proof(identity: Identity, nonce: bytes, community: str, url: str) -> PeerProof:
    """Answer a challenge for our own `url`."""
    if len(nonce) != NONCE_BYTES:
        raise ProofError(f"a nonce is {NONCE_BYTES} bytes")
    message = proof_message(nonce, identity.agent, community, url)
    return PeerProof(identity.agent, url.rstrip("/"), identity.sign(message))


def check_proof(answer: object, nonce: bytes, agent: bytes, community: str, url: str) -> None:
    """Raise ProofError unless `answer` proves that `agent` serves `url` in `community`."""
    if not (isinstance(answer, list) and len(answer) == 3 and isinstance(answer[0], bytes)
            and isinstance(answer[1], str) and isinstance(answer[2], bytes)):
        raise ProofError("a proof is [agent (bin 32), url (str), signature (bin 64)]")
    claimed, served, signature = answer
    if claimed != agent:
        raise ProofError("the answer names another agent than the info")
    if served.rstrip("/") != url.rstrip("/"):
        raise ProofError(f"the answer is for {served[:100]!r}, not the URL called")
    if not verify(agent, proof_message(nonce, agent, community, url), signature):
        raise ProofError("the proof signature does not verify")
