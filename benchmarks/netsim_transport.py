"""The in-memory transport of the network simulator: the PeerClient methods that gossip calls,
answered by another node core in the same process, with latency, loss, partitions and churn.

What a call costs, per link (an unordered pair of nodes):
- a latency drawn once, uniformly in 20-300 ms (the round trip; half each way);
- each message (the request, and then the answer) lost with probability `loss` (1 %): the
  caller waits its timeout (2 s, like PeerClient) and gets PeerError;
- a partition (nodes in different groups) or a node that is down: the same, a timeout.

The answering side does what the HTTP handlers of node.http.server do, on the same Node: the
same store queries, the same `ingest`, the same forward rule for pushed batches. Byte counts are
the msgpack bodies both ways (what `gossip_bytes_in/out` count on a real node); the HTTP
headers are estimated apart (HTTP_HEADERS per request and answer).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

from ledger import reconcile as rc
from ledger.agentinfo import AgentInfoError, parse_agent_info
from ledger.chain import now_us
from ledger.charter import Charter
from node.p2p import wire
from node.p2p.client import DEFAULT_TIMEOUT, PeerError, PeerUnsupported

LATENCY_S = (0.020, 0.300)
LOSS = 0.01
FORWARD_MAX = 100  # as node.http.server: pushed batches up to this size are passed on
HTTP_HEADERS = 120  # bytes of HTTP/1.1 headers per request or answer, about (not counted)


class Net:
    """Links between simulated nodes, by URL."""

    def __init__(self, seed: int = 1, loss: float = LOSS, timeout: float = DEFAULT_TIMEOUT,
                 latency: tuple[float, float] = LATENCY_S, reconcile: bool = True) -> None:
        self.rng = random.Random(seed)
        self.reconcile = reconcile  # False: nodes answer 404 to reconcile, as before version 2
        self.loss = loss
        self.timeout = timeout
        self.latency_range = latency
        self.nodes: dict[str, Any] = {}  # url -> Node
        self.groups: dict[str, int] = {}  # url -> partition group (absent: group 0)
        self.down: set[str] = set()
        self.links: dict[frozenset, float] = {}
        self.sent: Counter[str] = Counter()  # url -> body bytes it sent (requests and answers)
        self.requests: Counter[str] = Counter()  # url -> requests it made
        self.by_kind: Counter[str] = Counter()  # endpoint -> body bytes both ways
        self.lost = 0
        self.delivered = 0

    def add(self, url: str, node: Any) -> None:
        """Attach a node core: its gossip now talks through this network."""
        self.nodes[url] = node
        node.gossip.client = lambda base, src=url: SimClient(self, src, base)

    def latency(self, a: str, b: str) -> float:
        """The round trip of the link between a and b, drawn once."""
        key = frozenset((a, b))
        if key not in self.links:
            self.links[key] = self.rng.uniform(*self.latency_range)
        return self.links[key]

    def partition(self, *groups: list[str]) -> None:
        """Cut the network: nodes in different groups no longer reach each other."""
        self.groups = {url: i + 1 for i, group in enumerate(groups) for url in group}

    def heal(self) -> None:
        """Every node reaches every other again."""
        self.groups = {}

    def reachable(self, a: str, b: str) -> bool:
        """Whether a message from a can reach b now."""
        return (a not in self.down and b not in self.down
                and self.groups.get(a, 0) == self.groups.get(b, 0) and b in self.nodes)

    async def _fail(self, src: str, dst: str, waited: float, why: str) -> None:
        self.lost += 1
        await asyncio.sleep(max(0.0, self.timeout - waited))
        raise PeerError(f"{dst}: {why}")

    async def call(self, src: str, dst: str, request: bytes, handler, kind: str = "") -> bytes:
        """Carry a request to dst, run its handler there, carry the answer back."""
        one_way = self.latency(src, dst) / 2
        self.requests[src] += 1
        if not self.reachable(src, dst) or self.rng.random() < self.loss:
            await self._fail(src, dst, 0.0, "timeout (lost, partitioned or down)")
        await asyncio.sleep(one_way)
        self.sent[src] += len(request)
        self.by_kind[kind] += len(request)
        if not self.reachable(src, dst):
            await self._fail(src, dst, one_way, "timeout (went down)")
        answer = await handler(self.nodes[dst])
        self.sent[dst] += len(answer)
        self.by_kind[kind] += len(answer)
        if not self.reachable(dst, src) or self.rng.random() < self.loss:
            await self._fail(src, dst, one_way, "timeout (answer lost)")
        await asyncio.sleep(one_way)
        self.delivered += 1
        return answer


async def _not_found(node) -> bytes:
    raise PeerUnsupported("HTTP 404")


class SimClient:
    """PeerClient's gossip methods over a Net: same arguments, same results, same PeerError."""

    def __init__(self, net: Net, src: str, base: str) -> None:
        self.net = net
        self.src = src
        self.base = base.rstrip("/")

    def _decode(self, data: bytes, parse=wire.unpack) -> Any:
        try:
            return parse(data)
        except wire.BadBody as exc:
            raise PeerError(f"{self.base}: {exc}") from None

    async def heads(self) -> tuple[dict[bytes, tuple[int, bytes]], int]:
        """The peer's heads and its charter version."""
        version = 0

        async def handle(node) -> bytes:
            nonlocal version
            version = node.charter.version if node.charter else 0
            return wire.pack_heads(node.store.heads())

        body = await self.net.call(self.src, self.base, b"", handle, "heads")
        return self._decode(body, wire.unpack_heads), version

    async def reconcile(self, query: bytes) -> tuple[bytes, int]:
        """One set-reconciliation step, answered as gossip_reconcile does."""
        if not self.net.reconcile:
            await self.net.call(self.src, self.base, query, _not_found, "reconcile")
        version = 0

        async def handle(node) -> bytes:
            nonlocal version
            version = node.charter.version if node.charter else 0
            try:
                return rc.answer(node.gossip.head_index(), query)
            except rc.ReconcileError:
                return b""

        answer = await self.net.call(self.src, self.base, query, handle, "reconcile")
        if not answer:
            raise PeerError(f"{self.base}: HTTP 400")
        return answer, version

    async def chain(self, author: bytes, start: int = 0, limit: int = 1000) -> list:
        """A page of the peer's chain of `author`."""
        async def handle(node) -> bytes:
            return wire.pack([list(i) for i in node.store.chain_range(author, start, limit)])

        body = await self.net.call(self.src, self.base, b"", handle, "chain")
        return [(a, b) for a, b in self._decode(body)]

    async def push(self, items: list, reached_all: bool = False) -> dict:
        """POST actions, answered as gossip_post_actions does."""
        request = wire.pack([list(i) for i in items])

        async def handle(node) -> bytes:
            batch = [(a, b) for a, b in wire.unpack(request)]
            forward = len(batch) <= FORWARD_MAX
            if reached_all and node.gossip.small_community():
                forward = False
            result = await node.ingest(batch, forward=forward)
            answer = result.summary()
            answer["rejected"] = [[i, r] for i, r in result.rejected]
            return wire.pack(answer)

        return self._decode(await self.net.call(self.src, self.base, request, handle, "actions"))

    async def peers(self) -> list:
        """The peer's agent infos, its own first."""
        async def handle(node) -> bytes:
            now = now_us()
            infos = [i.wire() for i in node.peers.infos.values() if i.expires_us >= now]
            if node.own_info is not None:
                infos.insert(0, node.own_info.wire())
            return wire.pack(infos)

        return self._decode(await self.net.call(self.src, self.base, b"", handle, "peers"))

    async def post_peers(self, infos: list) -> dict:
        """Hand the peer our infos, answered as gossip_post_peers does."""
        request = wire.pack(infos)

        async def handle(node) -> bytes:
            now, accepted, rejected = now_us(), 0, 0
            known, new = set(node.peers.by_url), []
            for item in wire.unpack(request):
                try:
                    info = parse_agent_info(item, now, node.cfg.community)
                except AgentInfoError:
                    rejected += 1
                    continue
                if node.peers.add_info(info) and info.url:
                    new.append(info.url)
                accepted += 1
            node.gossip.first_contact([u for u in new if u not in known])
            return wire.pack({"accepted": accepted, "rejected": rejected})

        return self._decode(await self.net.call(self.src, self.base, request, handle, "peers"))

    async def charter(self, pinned_admin: bytes | None = None) -> Charter:
        """The simulated community has no charter: a peer that announces one is a fault."""
        raise PeerError(f"{self.base}: the simulator carries no charters")

    async def post_charter(self, signed: bytes) -> None:
        """See `charter`."""
        raise PeerError(f"{self.base}: the simulator carries no charters")
