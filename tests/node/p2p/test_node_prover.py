"""The prover: candidates prove their key a few at a time, one proof starting the next."""

from __future__ import annotations

import asyncio
from collections import Counter

from ledger.agentinfo import make_agent_info
from ledger.chain import now_us
from ledger.peerproof import make_proof
from ledger.testing import identity
from node.p2p.client import PeerError
from node.p2p.peers import PeerTable
from node.p2p.prover import MAX_PROVING, Prover

COMMUNITY = "c1"


class Candidates:
    """Transports to candidates at http://p/N: N < honest answer with their key (after a short
    wait); the others time out. Counts the proofs running at once."""

    def __init__(self, honest: int) -> None:
        self.honest = honest
        self.running = self.most = self.asked = 0

    def __call__(self, url: str):
        n = int(url.rsplit("/", 1)[1])
        outer = self

        class Transport:
            async def prove(self, nonce: bytes) -> object:
                outer.running += 1
                outer.asked += 1
                outer.most = max(outer.most, outer.running)
                try:
                    await asyncio.sleep(0.01)
                    if n >= outer.honest:
                        raise PeerError("timeout")
                    proof = make_proof(identity(n), nonce, COMMUNITY, url)
                    return [proof.agent, proof.url, proof.signature]
                finally:
                    outer.running -= 1

        return Transport()


async def test_one_call_proves_every_candidate_at_most_four_at_a_time() -> None:
    peers = PeerTable("http://me", b"me")
    for n in range(20):
        assert peers.add_info(make_agent_info(identity(n), COMMUNITY, f"http://p/{n}", now_us()))
    metrics: Counter[str] = Counter()
    proven = []
    prover = Prover(peers, COMMUNITY, metrics, proven.append)
    candidates = Candidates(honest=16)
    prover.prove_some(candidates)  # once, as one gossip round would
    for _ in range(200):
        if metrics["peer_proofs_ok"] + metrics["peer_proofs_failed"] >= 20:
            break
        await asyncio.sleep(0.01)
    await prover.close()
    assert metrics["peer_proofs_ok"] == 16 and len(proven) == 16
    assert metrics["peer_proofs_failed"] == 4  # the first of three attempts, after a back-off
    assert candidates.most == MAX_PROVING and candidates.asked == 20
    assert sorted(p.url for p in peers.live(0.0)) == sorted(f"http://p/{n}" for n in range(16))


async def test_a_closed_prover_starts_no_more_proofs() -> None:
    peers = PeerTable("http://me", b"me")
    for n in range(8):
        peers.add_info(make_agent_info(identity(n), COMMUNITY, f"http://p/{n}", now_us()))
    metrics: Counter[str] = Counter()
    prover = Prover(peers, COMMUNITY, metrics, lambda peer: None)
    candidates = Candidates(honest=8)
    prover.prove_some(candidates)
    await asyncio.sleep(0)  # four proofs under way
    await prover.close()  # cancelled: none of them starts another
    prover.prove_some(candidates)
    await asyncio.sleep(0.05)
    assert candidates.asked == MAX_PROVING and metrics["peer_proofs_ok"] == 0
