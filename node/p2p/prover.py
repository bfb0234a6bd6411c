"""Asking candidate peers to prove their key (protocol 2, "Peer proofs"), a few at a time.

A URL learned from an agent info is called in rounds and pushes only once it answered a fresh
nonce with a signature of the info's agent (`ledger.peerproof`). Proofs run as their own tasks,
at most MAX_PROVING at once, so a flood of candidates that never answer costs a few short
timeouts at a time and never delays rounds with live peers. A proof that ends starts the next
one due, so a node that learns a few hundred members' URLs proves them in a few round trips
each, not four per gossip round.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Callable

from ledger.peerproof import NONCE_BYTES, ProofError, check_proof
from node.p2p.client import PeerError, PeerTransport
from node.p2p.peers import Peer, PeerTable

log = logging.getLogger(__name__)
MAX_PROVING = 4


class Prover:
    """Challenges the candidates of `peers`; `proven(peer)` is called for each that answers."""

    def __init__(self, peers: PeerTable, community: str, metrics: Counter[str],
                 proven: Callable[[Peer], None]) -> None:
        self.peers = peers
        self.community = community
        self.metrics = metrics
        self.proven = proven
        self._proving: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._client: Callable[[str], PeerTransport] | None = None
        self._closed = False

    def prove_some(self, client: Callable[[str], PeerTransport]) -> None:
        """Start proofs of the candidates due now, up to MAX_PROVING running at once."""
        self._client = client
        if self._closed or len(self._proving) >= MAX_PROVING:
            return
        for peer in self.peers.to_prove(time.monotonic()):
            if len(self._proving) >= MAX_PROVING:
                return
            if peer.url in self._proving:
                continue
            self._proving.add(peer.url)
            task = asyncio.create_task(self._prove(peer, client(peer.url)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _prove(self, peer: Peer, client: PeerTransport) -> None:
        nonce = os.urandom(NONCE_BYTES)
        try:
            answer = await client.prove(nonce)
            assert peer.agent is not None
            check_proof(answer, nonce, peer.agent, self.community, peer.url)
        except (PeerError, ProofError) as exc:
            self.peers.proof_failed(peer, time.monotonic(), str(exc))
            self.metrics["peer_proofs_failed"] += 1
            log.debug("candidate %s gave no proof: %s", peer.url, exc)
        except Exception:  # a proof must never kill the node
            self.peers.proof_failed(peer, time.monotonic(), "error while checking")
            log.exception("checking the proof of %s failed", peer.url)
        else:
            self.peers.proved(peer)
            self.metrics["peer_proofs_ok"] += 1
            self.proven(peer)
        finally:
            self._proving.discard(peer.url)
        self._next()

    def _next(self) -> None:
        """A proof ended: start the next one due, if any."""
        if self._client is not None and not self._closed:
            try:
                self.prove_some(self._client)
            except Exception:  # a proof must never kill the node
                log.exception("could not start the next proof")

    async def close(self) -> None:
        """Cancel the proofs under way."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
