"""What every node of the community holds whatever its grid, kept in step with peers by set
reconciliation (node.p2p.sets): the agent infos, and which authors forked (with the evidence).

- Infos: agent -> (created_us, hash of the signed info). Only the infos that differ cross the
  wire: the peer's newer ones are fetched (`POST /v1/gossip/infos`), ours it lacks are posted.
- Forks: author -> (0, hash of "picogrid-forked" and the author), the same item on every node
  that knows the author forked, whatever pair of actions it holds as evidence. An author we do
  not know as forked is asked for (`GET /v1/gossip/forks/{author}`): two signed actions of that
  author at one seq, checked like a warrant's evidence, then kept. So a fork found in one grid
  reaches nodes that hold none of that grid's chains.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from ledger import reconcile as rc
from ledger.errors import Invalid
from ledger.store import Store
from ledger.validation import check_warrant
from node.journal import Journal
from node.p2p import sets, wire
from node.p2p.client import PeerError, PeerTransport
from node.p2p.intake import PeerInfos
from node.p2p.scoping import forked_hash

log = logging.getLogger(__name__)
MAX_EVIDENCE_PER_ROUND = 16


class CommunitySync:
    """Reconciles agent infos and fork evidence with one peer at a time."""

    def __init__(self, store: Store, infos: PeerInfos, journal: Journal, metrics: Counter[str],
                 first_contact: Callable[[list[str]], None]) -> None:
        self.store = store
        self.infos = infos
        self.journal = journal
        self.metrics = metrics
        self.first_contact = first_contact
        self._forks: tuple[frozenset, rc.HeadSet] | None = None

    async def infos_with(self, client: PeerTransport, now: int) -> None:
        """Take the peer's infos newer than ours; hand it ours that it lacks or holds older."""
        index = self.infos.index(now)
        diff = await sets.reconcile_with(client, index, sets.INFOS)
        want = sets.newer(index.heads, diff.theirs)
        for at in range(0, len(want), wire.MAX_BATCH):
            intake = self.infos.take(await client.infos(want[at:at + wire.MAX_BATCH]), now)
            self.first_contact(intake.new_urls)
        give = sets.newer(diff.theirs, diff.ours)
        if give:
            await client.post_peers(self.infos.of_agents(give, now)[: wire.MAX_BATCH])

    def forks_index(self) -> rc.HeadSet:
        """The authors we know forked, as a set to reconcile."""
        forked = frozenset(self.store.forked_authors())
        if self._forks is None or self._forks[0] != forked:
            items = {a: (0, forked_hash(a)) for a in forked}
            self._forks = (forked, rc.HeadSet.of(items))
        return self._forks[1]

    def evidence(self, author: bytes) -> list[list[bytes]]:
        """Two signed actions of `author` at one seq, if we know it forked; else []."""
        by_seq: dict[int, list] = {}
        for action in self.store.fork_evidence(author):
            by_seq.setdefault(action.seq, []).append(action)
        for seq in sorted(by_seq):
            if len(by_seq[seq]) >= 2:
                return [a.wire() for a in by_seq[seq][:2]]
        return []

    async def forks_with(self, client: PeerTransport) -> int:
        """Learn of the forks the peer knows and we do not; how many we learned."""
        own = self.forks_index()
        diff = await sets.reconcile_with(client, own, sets.FORKS)
        learned = 0
        for author in [a for a in diff.theirs if a not in own.heads][:MAX_EVIDENCE_PER_ROUND]:
            if self.store.head(author) is None:
                continue  # not a member we know: its genesis comes first
            pair = await client.evidence(author)
            if await self.take_evidence(client.base, author, pair):
                learned += 1
        return learned

    async def take_evidence(self, base: str, author: bytes, pair: list) -> bool:
        """Check a peer's evidence that `author` forked and keep it; PeerError if it is bad."""
        try:
            first, second = check_warrant({"evidence": pair})
        except (Invalid, KeyError, TypeError, ValueError) as exc:
            raise PeerError(f"{base}: fork evidence of {author.hex()[:12]}: {exc}") from None
        if first.author != author:
            raise PeerError(f"{base}: fork evidence names another author")
        return await self.journal.take_evidence(first, second, base)
