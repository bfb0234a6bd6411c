"""The fork alarm: fork evidence pushed at once to peers of other grids, and taken from them.

Under grid scope a node holds only its own grid's chains, so the eager push of a fork (which
goes to peers of the author's grid) never reaches the other grids, and the forks set that rounds
reconcile (node.p2p.community) crosses from grid to grid one round at a time. So:

- **Sending.** When the store marks an author forked for the first time (found by our own
  ingest, taken from a warrant, or learned as evidence), the node POSTs the evidence at once to
  FANOUT live peers whose genesis names another grid than the author's (they do not hold its
  chain): the two signed actions at one seq, preceded by the author's genesis when the fork is
  above seq 0 (a receiver takes evidence only of a member whose genesis it holds). The wire is
  the ordinary `POST /v1/gossip/actions`.
- **Receiving.** A scoped node does not keep pushed actions of another grid's authors; two of
  them by one author at one seq with different hashes are the exception (`candidates`): both
  signatures and payloads are checked as a warrant's evidence, and the pair is kept as fork
  evidence when the author is a member whose genesis is held and not yet known as forked
  (`Store.take_evidence`). That marks the author forked, so the receiver raises the alarm in turn.
- **Bounds.** A node raises the alarm once per author, the first time its store learns the
  fork, so the alarm dies out once every node knows; at most MAX_EVIDENCE_PER_BATCH pairs of a
  batch are checked, and a stranger's pair (no member's genesis held) or a forged one (a bad
  signature) is never kept: it cannot fill a store, and at most one pair per member is ever kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from ledger.actions import Action, decode_action
from ledger.errors import BAD_ENCODING, Invalid
from ledger.store import Store
from ledger.validation import check_warrant
from node.journal import Journal
from node.p2p.client import PeerError, PeerTransport
from node.p2p.peers import Peer, PeerTable
from node.p2p.scoping import GridScope

log = logging.getLogger(__name__)
FANOUT = 3
MAX_AUTHORS_PER_ALARM = 16  # authors one alarm carries (the rest are told by rounds)
MAX_EVIDENCE_PER_BATCH = 4  # same-seq pairs of a pushed batch that are checked

Pair = tuple[int, tuple[bytes, bytes]]  # (index in the pushed batch, (body, signature))


def check_pair(first: tuple[bytes, bytes], second: tuple[bytes, bytes]) -> tuple[Action, Action]:
    """Two signed actions as a warrant's evidence (valid signatures and payloads, one author, one
    seq, two hashes); Invalid with the reason of the first fault (`bad-signature` ...)."""
    for body, signature in (first, second):
        decode_action(body, signature, check_signature=True)
    return check_warrant({"evidence": [list(first), list(second)]}, check_signatures=False)


class ForkPush:
    """Raises the fork alarm (`alarm`) and takes the evidence pushed by others' (`take`)."""

    def __init__(self, store: Store, peers: PeerTable, scope: GridScope, journal: Journal,
                 metrics: Counter[str], client: Callable[[], Callable[[str], PeerTransport] | None],
                 spawn: Callable) -> None:
        self.store = store
        self.peers = peers
        self.scope = scope
        self.journal = journal
        self.metrics = metrics
        self.client = client  # the transport factory once gossip is connected, else None
        self.spawn = spawn  # starts a push as a task the owner cancels on close

    # -- sending -----------------------------------------------------------------------------

    def alarm(self, authors: list[bytes]) -> None:
        """Push the evidence of each newly forked author to a few peers of other grids."""
        connect = self.client()
        if connect is None:
            return
        for author in authors[:MAX_AUTHORS_PER_ALARM]:
            items = self.evidence(author)
            if not items:
                continue
            self.metrics["fork_alarms_raised"] += 1
            for peer in self.targets(author):
                self.spawn(self._send(connect(peer.url), peer, items))

    def evidence(self, author: bytes) -> list[tuple[bytes, bytes]]:
        """The author's genesis (unless the fork is at seq 0), then two signed actions of one
        seq; [] when we hold no such pair."""
        by_seq: dict[int, list[Action]] = {}
        for action in self.store.fork_evidence(author):
            by_seq.setdefault(action.seq, []).append(action)
        for seq in sorted(by_seq):
            if len(by_seq[seq]) >= 2:
                pair = [(a.action_bytes, a.signature) for a in by_seq[seq][:2]]
                genesis = self.store.chain_range(author, 0, 1) if seq > 0 else []
                return [*genesis, *pair]
        return []

    def targets(self, author: bytes) -> list[Peer]:
        """Up to FANOUT live peers whose genesis names a grid other than the author's."""
        grid = self.scope.grid_of(author)
        others = [p for p in self.peers.live(time.monotonic())
                  if (g := self.scope.grid_of(p.agent)) is not None and g != grid]
        return self.peers.rng.sample(others, min(FANOUT, len(others)))

    async def _send(self, client: PeerTransport, peer: Peer,
                    items: list[tuple[bytes, bytes]]) -> None:
        try:
            await client.push(items)
        except PeerError as exc:
            if exc.status != 429:
                self.peers.failed(peer, time.monotonic(), str(exc))
            return
        self.metrics["fork_alarms_sent"] += 1
        self.peers.ok(peer, time.monotonic())

    # -- receiving ---------------------------------------------------------------------------

    def candidates(self, dropped: list[Pair]) -> list[tuple[Pair, Pair]]:
        """Among pushed items the scope did not keep, pairs of one author at one seq with
        different hashes, of authors not known as forked (at most MAX_EVIDENCE_PER_BATCH)."""
        forked = self.store.forked_authors()
        seen: dict[tuple[bytes, int], tuple[bytes, Pair]] = {}
        out: list[tuple[Pair, Pair]] = []
        done: set[bytes] = set()
        for pair in dropped:
            try:
                action = decode_action(*pair[1], check_signature=False)
            except Exception:
                continue
            author = action.author
            if author in forked or author in done:
                continue
            key = (author, action.seq)
            other = seen.get(key)
            if other is None:
                seen[key] = (action.hash, pair)
            elif other[0] != action.hash:
                out.append((other[1], pair))
                done.add(author)
                if len(out) >= MAX_EVIDENCE_PER_BATCH:
                    break
        return out

    async def take(self, pairs: list[tuple[Pair, Pair]], source: str
                   ) -> tuple[list[int], list[tuple[int, str]]]:
        """Check each candidate pair as a warrant's evidence and keep the good ones of members:
        (indexes kept as evidence, `(index, reason)` of the pairs refused)."""
        kept: list[int] = []
        refused: list[tuple[int, str]] = []
        loop = asyncio.get_running_loop()
        for first, second in pairs:
            try:
                one, two = await loop.run_in_executor(self.journal.pool, check_pair,
                                                      first[1], second[1])
            except Invalid as exc:
                refused += [(first[0], exc.reason), (second[0], exc.reason)]
                self.metrics[f"fork_evidence_refused:{exc.reason}"] += 1
                continue
            except Exception:  # not decodable after all: never a crash on what a peer sends
                refused += [(first[0], BAD_ENCODING), (second[0], BAD_ENCODING)]
                continue
            if await self.journal.take_evidence(one, two, source):
                kept += [first[0], second[0]]
        return kept, refused
