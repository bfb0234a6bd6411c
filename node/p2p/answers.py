"""What a node answers to each gossip request, as bytes in and bytes out (PROTOCOL section 4).

The aiohttp handlers (`node.p2p.handlers`) and the network simulator's in-memory transport both
call these, so the simulator runs the code a real node runs. A bad body raises ValueError
(`wire.BadBody`, `ReconcileError`): the HTTP layer answers it 400.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from ledger import reconcile
from ledger.chain import now_us
from ledger.errors import BAD_ENCODING
from ledger.store import IngestResult, Store
from node.charters import CharterBook
from node.errors import NotSigned
from node.journal import Journal
from node.p2p import wire
from node.p2p.gossip import Gossip
from node.p2p.intake import PeerInfos

log = logging.getLogger(__name__)
FORWARD_MAX = 100  # pushed batches up to this size are eager-pushed on to our peers


class GossipAnswers:
    """Answers peers: reads from `store`, writes through `journal`, takes infos by `infos`."""

    def __init__(self, store: Store, book: CharterBook, journal: Journal, gossip: Gossip,
                 infos: PeerInfos, metrics: Counter[str]) -> None:
        self.store = store
        self.book = book
        self.journal = journal
        self.gossip = gossip
        self.infos = infos
        self.metrics = metrics

    def charter_version(self) -> int:
        """The version of our newest charter (0: none), announced with heads."""
        charter = self.book.charter
        return charter.version if charter else 0

    def heads(self) -> bytes:
        """Every author's head."""
        return wire.pack_heads(self.store.heads())

    def reconcile(self, query: bytes) -> bytes:
        """One step of set reconciliation over our heads; ReconcileError on a bad query."""
        return reconcile.answer(self.gossip.head_index(), query)

    async def chain(self, author: bytes, start: int, limit: int) -> bytes:
        """One page of an author's signed actions."""
        loop = asyncio.get_running_loop()
        items = await loop.run_in_executor(None, self.store.chain_range, author, start, limit)
        return wire.pack([list(i) for i in items])

    async def actions(self, body: bytes, reached_all: bool) -> bytes:
        """Take a pushed batch; what was accepted and refused."""
        pairs, shape_errors, dropped = self.pairs_in(body)
        batch, forward = [p for _, p in pairs], len(pairs) <= FORWARD_MAX
        if reached_all and self.gossip.small_community():
            forward = False  # the author's node pushed to everyone; we likely know no one else
        try:
            result = await self.journal.ingest(batch, forward=forward)
        except Exception:
            # The store could not take the batch as a whole (an item it cannot hold slipped
            # past validation). The good items are not lost with the bad one: item by item,
            # the culprit is rejected.
            log.warning("a batch of %d failed to store; retrying item by item", len(batch),
                        exc_info=True)
            result = await self.ingest_each(batch, forward)
        return wire.pack(await self.answer(result, pairs, shape_errors, dropped))

    async def answer(self, result: IngestResult, pairs: list[tuple[int, tuple[bytes, bytes]]],
                     shape_errors: list[list],
                     dropped: list[tuple[int, tuple[bytes, bytes]]]) -> dict:
        """What a push is answered once its batch is ingested: fork evidence among the items
        our scope did not keep is taken first (pushed by a fork alarm), then every item is
        counted accepted or refused by its index in the pushed body."""
        answer = result.summary()
        kept, refused = await self.fork_evidence(dropped)
        answer["accepted"] += kept
        answer["rejected"] = sorted(
            [[pairs[i][0], reason] for i, reason in result.rejected] + shape_errors + refused
        )
        if shape_errors:
            self.metrics["rejected:bad-encoding"] += len(shape_errors)
        return answer

    def pairs_in(self, body: bytes) -> tuple[list[tuple[int, tuple[bytes, bytes]]], list[list],
                                             list[tuple[int, tuple[bytes, bytes]]]]:
        """A pushed body's well-shaped `(index, (body, signature))` items within our scope,
        `[index, "bad-encoding"]` for the rest (BadBody when it is not a list at all), and the
        well-shaped items our scope does not keep (where fork evidence may be)."""
        pairs, shape_errors = [], []
        for index, item in enumerate(wire.signed_list(wire.unpack(body))):
            if (isinstance(item, list) and len(item) == 2
                    and isinstance(item[0], bytes) and isinstance(item[1], bytes)):
                pairs.append((index, (item[0], item[1])))
            else:
                shape_errors.append([index, "bad-encoding"])
        kept = self.gossip.scope.kept(pairs)
        self.metrics["gossip_out_of_scope"] += len(pairs) - len(kept)
        held = {index for index, _ in kept}
        dropped = [p for p in pairs if p[0] not in held]
        return kept, shape_errors, dropped  # another grid's actions: heads noted, not kept

    async def fork_evidence(self, dropped: list[tuple[int, tuple[bytes, bytes]]]
                            ) -> tuple[int, list[list]]:
        """Fork evidence among the pushed items our scope did not keep (node.p2p.forkpush),
        taken after the batch (a genesis in it makes its author a member): how many items were
        kept as evidence, and `[index, reason]` of those refused."""
        if not dropped:
            return 0, []
        evidence = self.gossip.forkpush.candidates(dropped)
        if not evidence:
            return 0, []
        kept, refused = await self.gossip.forkpush.take(evidence, "a pushed batch")
        return len(kept), [[i, reason] for i, reason in refused]

    async def ingest_each(self, batch: list[tuple[bytes, bytes]],
                          forward: bool) -> IngestResult:
        """Ingest item by item (the batch as a whole failed): the culprit is rejected, the
        good items kept; a NotSigned (our disk is full) stops it, nothing judged."""
        total = IngestResult()
        for index, item in enumerate(batch):
            try:
                one = await self.journal.ingest([item], forward=forward)
            except NotSigned:
                raise
            except Exception:
                total.rejected.append((index, BAD_ENCODING))
                self.metrics[f"rejected:{BAD_ENCODING}"] += 1
                continue
            total.accepted += one.accepted
            total.duplicate += one.duplicate
            total.pending += one.pending
            total.rejected += [(index, reason) for _, reason in one.rejected]
        return total

    def peers(self) -> bytes:
        """Our own agent info first, then every unexpired member's info we hold."""
        return wire.pack(self.infos.shareable(now_us()))

    def reconcile_infos(self, query: bytes) -> bytes:
        """One step of set reconciliation over the agent infos we share."""
        return reconcile.answer(self.infos.index(now_us()), query)

    def infos_of(self, body: bytes) -> bytes:
        """The infos we share of the agents asked for (an array of at most 1000 agent ids)."""
        agents = wire.unpack(body)
        if not (isinstance(agents, list) and len(agents) <= wire.MAX_BATCH
                and all(isinstance(a, bytes) and len(a) == 32 for a in agents)):
            raise wire.BadBody(f"body must be an array of at most {wire.MAX_BATCH} agent ids")
        return wire.pack(self.infos.of_agents(agents, now_us()))

    def reconcile_forks(self, query: bytes) -> bytes:
        """One step of set reconciliation over the authors we know forked."""
        return reconcile.answer(self.gossip.community.forks_index(), query)

    def evidence(self, author: bytes) -> bytes:
        """Two signed actions of `author` at one seq if we know it forked; else the empty array."""
        return wire.pack(self.gossip.community.evidence(author))

    def post_peers(self, body: bytes) -> bytes:
        """Take a peer's agent infos; new peers get a round at once."""
        items = wire.signed_list(wire.unpack(body), "agent infos")
        intake = self.infos.take(items, now_us())
        self.gossip.first_contact(intake.new_urls)
        return wire.pack({"accepted": intake.accepted, "rejected": intake.rejected})
