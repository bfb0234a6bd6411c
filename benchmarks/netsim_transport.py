"""The in-memory transport of the network simulator: the `PeerTransport` that gossip calls,
answered by another node core in the same process, with latency, loss, partitions and churn.

What a call costs, per link (an unordered pair of nodes):
- a latency drawn once, uniformly in 20-300 ms (the round trip; half each way);
- each message (the request, and then the answer) lost with probability `loss` (1 %): the
  caller waits its timeout (2 s, like PeerClient) and gets PeerError;
- a partition (nodes in different groups) or a node that is down: the same, a timeout.

The answering side is the node's own `GossipAnswers` (node.p2p.answers), the code behind the
HTTP handlers: bytes in, bytes out. A body it refuses (ValueError) is what HTTP answers 400.
Byte counts are the msgpack bodies both ways (what `gossip_bytes_in/out` count on a real node);
the HTTP headers are estimated apart (HTTP_HEADERS per request and answer).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from ledger.charter import Charter
from node.p2p import wire
from node.p2p.answers import GossipAnswers
from node.p2p.client import DEFAULT_TIMEOUT, PeerError, PeerTransport, PeerUnsupported

LATENCY_S = (0.020, 0.300)
LOSS = 0.01
HTTP_HEADERS = 120  # bytes of HTTP/1.1 headers per request or answer, about (not counted)
Handler = Callable[[GossipAnswers], Awaitable[bytes]]


class Net:
    """Links between simulated nodes, by URL."""

    def __init__(self, seed: int = 1, loss: float = LOSS, timeout: float = DEFAULT_TIMEOUT,
                 latency: tuple[float, float] = LATENCY_S, reconcile: bool = True) -> None:
        self.rng = random.Random(seed)
        self.reconcile = reconcile  # False: nodes answer 404 to reconcile, as before version 2
        self.loss = loss
        self.timeout = timeout
        self.latency_range = latency
        self.nodes: dict[str, Any] = {}  # url -> the node's GossipAnswers
        self.groups: dict[str, int] = {}  # url -> partition group (absent: group 0)
        self.down: set[str] = set()
        self.links: dict[frozenset, float] = {}
        self.sent: Counter[str] = Counter()  # url -> body bytes it sent (requests and answers)
        self.requests: Counter[str] = Counter()  # url -> requests it made
        self.by_kind: Counter[str] = Counter()  # endpoint -> body bytes both ways
        self.exchanges: Counter[str] = Counter()  # endpoint -> requests answered and delivered
        self.exchange_bytes: Counter[str] = Counter()  # ... and their bytes both ways
        self.lost = 0
        self.delivered = 0

    def add(self, url: str, answers: GossipAnswers) -> Callable[[str], PeerTransport]:
        """Attach a node core by what it answers; the `connect` its gossip uses to call out."""
        self.nodes[url] = answers
        return lambda base: SimClient(self, url, base)

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

    async def call(self, src: str, dst: str, request: bytes, handler: Handler,
                   kind: str = "") -> bytes:
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
        try:
            answer = await handler(self.nodes[dst])
        except ValueError as exc:  # what HTTP answers 400: the caller sees PeerError
            await asyncio.sleep(one_way)
            raise PeerError(f"{dst}: HTTP 400 {exc}", status=400) from None
        self.sent[dst] += len(answer)
        self.by_kind[kind] += len(answer)
        if not self.reachable(dst, src) or self.rng.random() < self.loss:
            await self._fail(src, dst, one_way, "timeout (answer lost)")
        await asyncio.sleep(one_way)
        self.delivered += 1
        self.exchanges[kind] += 1
        self.exchange_bytes[kind] += len(request) + len(answer)
        return answer


async def _not_found(answers: GossipAnswers) -> bytes:
    raise PeerUnsupported("HTTP 404", status=404)


class SimClient:
    """PeerClient's gossip methods over a Net: same arguments, same results, same PeerError."""

    def __init__(self, net: Net, src: str, base: str) -> None:
        self.net = net
        self.src = src
        self.base = base.rstrip("/")

    def _decode(self, data: bytes, parse: Callable[[bytes], Any] = wire.unpack) -> Any:
        try:
            return parse(data)
        except wire.BadBody as exc:
            raise PeerError(f"{self.base}: {exc}") from None

    async def _call(self, request: bytes, handler: Handler, kind: str) -> bytes:
        return await self.net.call(self.src, self.base, request, handler, kind)

    async def heads(self) -> tuple[dict[bytes, tuple[int, bytes]], int]:
        """The peer's heads and its charter version."""
        version = 0

        async def handle(answers: GossipAnswers) -> bytes:
            nonlocal version
            version = answers.charter_version()
            return answers.heads()

        body = await self._call(b"", handle, "heads")
        return self._decode(body, wire.unpack_heads), version

    async def reconcile(self, query: bytes, kind: str = "heads") -> tuple[bytes, int]:
        """One set-reconciliation step over heads or infos (PeerUnsupported where the Net plays
        older nodes)."""
        label = "reconcile" if kind == "heads" else f"reconcile_{kind}"
        if not self.net.reconcile:
            await self._call(query, _not_found, label)
        version = 0

        async def handle(answers: GossipAnswers) -> bytes:
            nonlocal version
            if kind == "heads":
                version = answers.charter_version()
                return answers.reconcile(query)
            if kind == "infos":
                return answers.reconcile_infos(query)
            return answers.reconcile_forks(query)

        return await self._call(query, handle, label), version

    async def chain(self, author: bytes, start: int = 0, limit: int = 1000) -> list:
        """A page of the peer's chain of `author`."""
        async def handle(answers: GossipAnswers) -> bytes:
            return await answers.chain(author, start, limit)

        body = await self._call(b"", handle, "chain")
        return [(a, b) for a, b in self._decode(body)]

    async def push(self, items: list, reached_all: bool = False) -> dict:
        """POST actions."""
        request = wire.pack([list(i) for i in items])

        async def handle(answers: GossipAnswers) -> bytes:
            return await answers.actions(request, reached_all)

        return self._decode(await self._call(request, handle, "actions"))

    async def peers(self) -> list:
        """The peer's agent infos, its own first."""
        async def handle(answers: GossipAnswers) -> bytes:
            return answers.peers()

        return self._decode(await self._call(b"", handle, "peers"))

    async def post_peers(self, infos: list) -> dict:
        """Hand the peer our infos."""
        request = wire.pack(infos)

        async def handle(answers: GossipAnswers) -> bytes:
            return answers.post_peers(request)

        return self._decode(await self._call(request, handle, "peers"))

    async def prove(self, nonce: bytes) -> object:
        """The peer's answer to a challenge: its signed proof for this URL (protocol.md 12)."""
        async def handle(answers: GossipAnswers) -> bytes:
            return wire.pack(answers.infos.prove(nonce).wire())

        return self._decode(await self._call(nonce, handle, "proof"))

    async def infos(self, agents: list[bytes]) -> list:
        """The peer's infos of these agents."""
        request = wire.pack(agents)

        async def handle(answers: GossipAnswers) -> bytes:
            return answers.infos_of(request)

        return self._decode(await self._call(request, handle, "infos"))

    async def evidence(self, author: bytes) -> list:
        """The peer's evidence that `author` forked."""
        async def handle(answers: GossipAnswers) -> bytes:
            return answers.evidence(author)

        return self._decode(await self._call(b"", handle, "forks"))

    async def charter(self, pinned_admin: bytes | None = None) -> Charter:
        """The simulated community has no charter: a peer that announces one is a fault."""
        raise PeerError(f"{self.base}: the simulator carries no charters")

    async def post_charter(self, signed: bytes) -> None:
        """See `charter`."""
        raise PeerError(f"{self.base}: the simulator carries no charters")
