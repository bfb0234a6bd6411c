"""The gossip endpoints (PROTOCOL section 4): heads, reconciliation, chain pages, pushed actions,
peer infos.

Each handler is a method of `GossipHandlers`: it reads the request, lets `GossipAnswers` (bytes
in, bytes out, shared with the network simulator) answer, and wraps the answer; the route table
in `node.http.routes` maps the paths to them.
"""

from __future__ import annotations

from aiohttp import web

from node.http.server import author_param, int_param, msgpack_response, read_body
from node.p2p import wire
from node.p2p.answers import GossipAnswers

CHARTER_HEADER = "PicoGrid-Charter-Version"


class GossipHandlers:
    """The aiohttp side of the gossip endpoints, around one node's `GossipAnswers`."""

    def __init__(self, answers: GossipAnswers) -> None:
        self.answers = answers

    def _charter(self) -> dict[str, str]:
        return {CHARTER_HEADER: str(self.answers.charter_version())}

    async def heads(self, request: web.Request) -> web.Response:
        """GET /v1/gossip/heads: every author's head, and our charter version in a header."""
        return msgpack_response(self.answers.heads(), self._charter())

    async def reconcile(self, request: web.Request) -> web.Response:
        """POST /v1/gossip/reconcile: one step of set reconciliation over our heads."""
        answer = self.answers.reconcile(await read_body(request))
        return msgpack_response(answer, self._charter())

    async def reconcile_infos(self, request: web.Request) -> web.Response:
        """POST /v1/gossip/reconcile/infos: one step of set reconciliation over our infos."""
        return msgpack_response(self.answers.reconcile_infos(await read_body(request)))

    async def infos(self, request: web.Request) -> web.Response:
        """POST /v1/gossip/infos: the infos we share of the agents asked for."""
        return msgpack_response(self.answers.infos_of(await read_body(request)))

    async def reconcile_forks(self, request: web.Request) -> web.Response:
        """POST /v1/gossip/reconcile/forks: one step of set reconciliation over forked authors."""
        return msgpack_response(self.answers.reconcile_forks(await read_body(request)))

    async def evidence(self, request: web.Request) -> web.Response:
        """GET /v1/gossip/forks/{author}: the evidence that an author forked (or [])."""
        return msgpack_response(self.answers.evidence(author_param(request)))

    async def chain(self, request: web.Request) -> web.Response:
        """GET /v1/gossip/chain/{author}: one page of an author's signed actions."""
        author = author_param(request)
        start = int_param(request, "from", 0, 0, 2**62)
        limit = int_param(request, "limit", 1000, 1, 1000)
        return msgpack_response(await self.answers.chain(author, start, limit))

    async def post_actions(self, request: web.Request) -> web.Response:
        """POST /v1/gossip/actions: take a batch; answer what was accepted and refused."""
        reached_all = request.headers.get(wire.PUSH_HEADER) == "all"
        return msgpack_response(await self.answers.actions(await read_body(request),
                                                           reached_all))

    async def get_peers(self, request: web.Request) -> web.Response:
        """GET /v1/gossip/peers: our own agent info first, then every unexpired one we hold."""
        return msgpack_response(self.answers.peers())

    async def post_peers(self, request: web.Request) -> web.Response:
        """POST /v1/gossip/peers: take a peer's agent infos; new peers get a round at once."""
        return msgpack_response(self.answers.post_peers(await read_body(request)))
