"""The gossip endpoints (PROTOCOL section 4): heads, reconciliation, chain pages, pushed actions,
peer infos.

Each handler is a method of `GossipHandlers`: it reads the request, lets `GossipAnswers` (bytes
in, bytes out, shared with the network simulator) answer, and wraps the answer; the route table
in `node.http.routes` maps the paths to them.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ledger.actions import decode_action
from ledger.chain import now_us
from ledger.errors import BAD_SIGNATURE
from ledger.peerproof import NONCE_BYTES
from node.disk import DISK_FULL
from node.errors import NotSigned
from node.http.limits import address_block
from node.http.server import (
    LIMITER_KEY,
    OVER_LIMIT,
    BadRequest,
    TooMany,
    author_param,
    int_param,
    msgpack_response,
    read_body,
)
from node.p2p import wire
from node.p2p.answers import GossipAnswers
from node.p2p.clock import TIME_HEADER

log = logging.getLogger(__name__)
RETRY_AFTER_S = 30  # what a 503 for a full disk asks the sender to wait
FORWARD_MAX = 100  # pushed batches up to this size are eager-pushed on to our peers
CHARTER_HEADER = "PicoGrid-Charter-Version"


class GossipHandlers:
    """The aiohttp side of the gossip endpoints, around one node's `GossipAnswers`."""

    def __init__(self, answers: GossipAnswers) -> None:
        self.answers = answers
        # What the HTTP-only parts (limits, 503s, proofs) use beside the shared answers.
        self.store, self.book, self.journal = answers.store, answers.book, answers.journal
        self.gossip, self.infos, self.metrics = answers.gossip, answers.infos, answers.metrics

    def _charter(self) -> dict[str, str]:
        return {CHARTER_HEADER: str(self.answers.charter_version())}

    async def heads(self, request: web.Request) -> web.Response:
        """GET /v1/gossip/heads: every author's head, and our charter version in a header."""
        headers = {**self._charter(), TIME_HEADER: str(now_us())}  # our clock (clock.py)
        return msgpack_response(self.answers.heads(), headers)

    async def reconcile(self, request: web.Request) -> web.Response:
        """POST /v1/gossip/reconcile: one step of set reconciliation over our heads."""
        answer = self.answers.reconcile(await read_body(request))
        return msgpack_response(answer, {**self._charter(), TIME_HEADER: str(now_us())})

    async def reconcile_infos(self, request: web.Request) -> web.Response:
        """POST /v1/gossip/reconcile/infos: one step of set reconciliation over our infos."""
        return msgpack_response(self.answers.reconcile_infos(await read_body(request)))

    async def infos_of(self, request: web.Request) -> web.Response:
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
        pairs, shape_errors, dropped = self.answers.pairs_in(await read_body(request))
        # A small batch is news and is passed on; a big one is someone's catch-up, and the peers
        # that lack it too get it by their own anti-entropy rounds.
        batch, forward = [p for _, p in pairs], len(pairs) <= FORWARD_MAX
        self._members_lane(request, batch)
        if request.headers.get(wire.PUSH_HEADER) == "all" and self.gossip.small_community():
            forward = False  # the author's node pushed to everyone; we likely know no one else
        try:
            result = await self.journal.ingest(batch, forward=forward)
        except NotSigned as exc:  # a full disk: nothing was judged, the sender keeps the batch
            return self._refused(exc)
        except Exception:
            # The store could not take the batch as a whole (an item it cannot hold slipped
            # past validation). Never a 500, and the good items are not lost with the bad one:
            # item by item, the culprit is rejected.
            log.warning("a batch of %d failed to store; retrying item by item", len(batch),
                        exc_info=True)
            try:
                result = await self.answers.ingest_each(batch, forward)
            except NotSigned as exc:
                return self._refused(exc)
        if OVER_LIMIT in request and any(r == BAD_SIGNATURE for _, r in result.rejected):
            request.app[LIMITER_KEY].deny_lane(address_block(request.remote))
        answer = await self.answers.answer(result, pairs, shape_errors, dropped)
        return msgpack_response(wire.pack(answer))

    def _members_lane(self, request: web.Request, batch: list[tuple[bytes, bytes]]) -> None:
        """A push over its client's limits goes on only when every action is a member's and
        some are new to us (the members' lane, charged to their authors); TooMany otherwise."""
        wait = request.get(OVER_LIMIT)
        if wait is None:
            return
        fresh: set[bytes] = set()
        for body, signature in batch:
            try:  # the signature is checked by the ingest, if the lane is open
                action = decode_action(body, signature, check_signature=False)
            except Exception:
                raise TooMany(wait) from None
            head = self.store.head(action.author)
            if head is None:
                raise TooMany(wait)  # not a member (or not yet)
            if action.seq > head.seq:
                fresh.add(action.author)
        if not request.app[LIMITER_KEY].lane(address_block(request.remote), fresh):
            raise TooMany(wait)

    def _refused(self, exc: NotSigned) -> web.Response:
        """503 with a JSON body: this node cannot store now; no action of the batch was judged."""
        self.metrics["http_503"] += 1
        message = ("this node's disk is full" if exc.reason == DISK_FULL else str(exc))
        return web.json_response(
            {"error": exc.reason, "message": f"{message}; no action of the batch was judged or "
             "stored: send it again later", "retry_after_s": RETRY_AFTER_S},
            status=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    async def get_peers(self, request: web.Request) -> web.Response:
        """GET /v1/gossip/peers: our own agent info first, then every unexpired one we hold."""
        return msgpack_response(self.answers.peers())

    async def post_peers(self, request: web.Request) -> web.Response:
        """POST /v1/gossip/peers: take a peer's agent infos; new peers get a round at once."""
        items = wire.signed_list(wire.unpack(await read_body(request)), "agent infos")
        intake = self.infos.take(items, now_us(), source=f"address {address_block(request.remote)}")
        self.gossip.first_contact(intake.new_urls)
        return msgpack_response(wire.pack({"accepted": intake.accepted,
                                           "rejected": intake.rejected}))

    async def proof(self, request: web.Request) -> web.Response:
        """GET /v1/gossip/proof?nonce=HEX: prove that this URL holds our agent's key."""
        try:
            nonce = bytes.fromhex(request.query.get("nonce", ""))
        except ValueError:
            nonce = b""
        if len(nonce) != NONCE_BYTES:
            raise BadRequest(f"nonce must be {2 * NONCE_BYTES} hex characters")
        return msgpack_response(wire.pack(self.infos.prove(nonce).wire()))
