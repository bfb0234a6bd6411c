"""The HTTP server: gossip endpoints (msgpack), the audit API (JSON), errors and limits.

Bad input never reaches a 500: undecodable or wrongly shaped bodies get 400 with a JSON
`{"error": ...}`, bodies over 4 MiB get 413, a client over its request rate gets 429.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ledger import reconcile
from ledger.agentinfo import AgentInfoError, parse_agent_info
from ledger.chain import now_us
from ledger.charter import CharterError
from ledger.errors import BAD_ENCODING
from ledger.keys import parse_agent_hex
from ledger.store import IngestResult
from node.p2p import wire

if TYPE_CHECKING:
    from node.node import Node

log = logging.getLogger("picogrid.http")
NODE_KEY: web.AppKey = web.AppKey("node", object)
FORWARD_MAX = 100  # pushed batches up to this size are eager-pushed on to our peers


class RateLimiter:
    """A token bucket per client address."""

    def __init__(self, rate: float = 200.0, burst: float = 400.0) -> None:
        self.rate, self.burst = rate, burst
        self.buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1, now)
        if len(self.buckets) > 10_000:
            self.buckets.clear()
        return True


LIMITER_KEY: web.AppKey[RateLimiter] = web.AppKey("limiter", RateLimiter)


class ServerLog(logging.LoggerAdapter):
    """aiohttp's server log, for one node (`web.AppRunner(..., logger=ServerLog(metrics))`).

    aiohttp answers a request it cannot parse (a NUL in a header, a line over 8 KiB, a broken
    chunk) with a 400 of its own, and logs it as an ERROR with a traceback; so too a client that
    hangs up before its body is complete, and a body that does not inflate, once more when the
    rest of it is drained after our 400. All are the client's doing, and anyone can send them:
    each is logged in one debug line (the parse errors, which only aiohttp answers, are counted
    as `http_400`). Every other report keeps its level and traceback.
    """

    def __init__(self, metrics: Counter) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self.metrics = metrics

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError | web.RequestPayloadError | ConnectionResetError):
            if isinstance(exc, HttpProcessingError):
                self.metrics["http_400"] += 1
            self.logger.debug(f"{msg}: %s", *args, " ".join(str(exc).split()))
            return
        super().log(level, msg, *args, **kwargs)


async def in_thread(fn, *args):
    """Run blocking store work (SQLite reads, recomputations) off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class BadRequest(Exception):
    """Raised by handlers for input that is wrong: answered 400 with the message."""


@web.middleware
async def errors_and_limits(request: web.Request, handler) -> web.StreamResponse:
    node: Node = request.app[NODE_KEY]
    limiter = request.app[LIMITER_KEY]
    response = await _answer(node, limiter, request, handler)
    if request.path.startswith("/v1/gossip/"):  # gossip bodies both ways, for /metrics
        _count_gossip_bytes(node, request, response)
    if request.method in ("GET", "HEAD"):  # the read-only API is public, also from browsers
        response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _count_gossip_bytes(node: Node, request: web.Request, response: web.StreamResponse) -> None:
    node.metrics["gossip_bytes_in"] += request.content_length or 0
    body = getattr(response, "body", None)
    node.metrics["gossip_bytes_out"] += len(body) if isinstance(body, bytes | bytearray) else 0


async def _answer(node: Node, limiter: RateLimiter, request: web.Request,
                  handler) -> web.StreamResponse:
    if not limiter.allow(request.remote or "?"):
        node.metrics["http_429"] += 1
        return json_error(429, "too many requests; slow down")
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        node.metrics["http_413"] += 1
        return json_error(413, f"request body larger than {wire.MAX_BODY} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return json_error(exc.status, exc.reason)
        raise
    except (BadRequest, wire.BadBody, ValueError) as exc:
        node.metrics["http_400"] += 1
        return json_error(400, str(exc) or "bad request")


async def read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > wire.MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=wire.MAX_BODY,
                                            actual_size=request.content_length)
    try:
        return await request.read()
    except web.RequestPayloadError:
        # aiohttp inflates a gzip or deflate body while it is read: one that does not inflate
        # (or a broken chunk) fails here, and it is the sender's fault.
        raise BadRequest("the request body cannot be read: its Content-Encoding or chunked "
                         "framing is broken") from None


def msgpack_response(body: bytes, headers: dict | None = None) -> web.Response:
    return web.Response(body=body, content_type=wire.CONTENT_TYPE, headers=headers)


def author_param(request: web.Request, name: str = "author_hex") -> bytes:
    try:
        return parse_agent_hex(request.match_info[name])
    except ValueError as exc:
        raise BadRequest(f"bad agent id: {exc}") from None


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer") from None
    if not lo <= value <= hi:
        raise BadRequest(f"query parameter {name!r} must be between {lo} and {hi}")
    return value


# -- gossip (PROTOCOL section 4) -----------------------------------------------------------

async def gossip_heads(request: web.Request) -> web.Response:
    node: Node = request.app[NODE_KEY]
    charter = node.charter
    headers = {"PicoGrid-Charter-Version": str(charter.version if charter else 0)}
    return msgpack_response(wire.pack_heads(node.store.heads()), headers)


async def gossip_reconcile(request: web.Request) -> web.Response:
    """One step of range-based set reconciliation over our heads (ledger.reconcile)."""
    node: Node = request.app[NODE_KEY]
    body = await read_body(request)
    try:
        answer = reconcile.answer(node.gossip.head_index(), body)
    except reconcile.ReconcileError as exc:
        raise BadRequest(f"reconcile: {exc}") from None
    charter = node.charter
    headers = {"PicoGrid-Charter-Version": str(charter.version if charter else 0)}
    return msgpack_response(answer, headers)


async def gossip_chain(request: web.Request) -> web.Response:
    node: Node = request.app[NODE_KEY]
    author = author_param(request)
    start = int_param(request, "from", 0, 0, 2**62)
    limit = int_param(request, "limit", 1000, 1, 1000)
    items = await in_thread(node.store.chain_range, author, start, limit)
    return msgpack_response(wire.pack([list(i) for i in items]))


async def gossip_post_actions(request: web.Request) -> web.Response:
    node: Node = request.app[NODE_KEY]
    items = wire.signed_list(wire.unpack(await read_body(request)))
    pairs, shape_errors = [], []
    for index, item in enumerate(items):
        if (isinstance(item, list) and len(item) == 2
                and isinstance(item[0], bytes) and isinstance(item[1], bytes)):
            pairs.append((index, (item[0], item[1])))
        else:
            shape_errors.append([index, "bad-encoding"])
    # A small batch is news and is passed on; a big one is someone's catch-up, and the peers
    # that lack it too get it by their own anti-entropy rounds.
    batch, forward = [p for _, p in pairs], len(pairs) <= FORWARD_MAX
    if request.headers.get(wire.PUSH_HEADER) == "all" and node.gossip.small_community():
        forward = False  # the author's node pushed to everyone; we likely know no one else
    try:
        result = await node.ingest(batch, forward=forward)
    except Exception:
        # The store could not take the batch as a whole (an item it cannot hold slipped past
        # validation). Never a 500, and the good items are not lost with the bad one: item by
        # item, the culprit is rejected.
        log.warning("a batch of %d failed to store; retrying item by item", len(batch),
                    exc_info=True)
        result = await _ingest_each(node, batch, forward)
    answer = result.summary()
    answer["rejected"] = sorted(
        [[pairs[i][0], reason] for i, reason in result.rejected] + shape_errors
    )
    for _ in shape_errors:
        node.metrics["rejected:bad-encoding"] += 1
    return msgpack_response(wire.pack(answer))


async def _ingest_each(node: Node, batch: list[tuple[bytes, bytes]],
                       forward: bool) -> IngestResult:
    total = IngestResult()
    for index, item in enumerate(batch):
        try:
            one = await node.ingest([item], forward=forward)
        except Exception:
            total.rejected.append((index, BAD_ENCODING))
            node.metrics[f"rejected:{BAD_ENCODING}"] += 1
            continue
        total.accepted += one.accepted
        total.duplicate += one.duplicate
        total.pending += one.pending
        total.rejected += [(index, reason) for _, reason in one.rejected]
    return total


async def gossip_get_peers(request: web.Request) -> web.Response:
    node: Node = request.app[NODE_KEY]
    now = now_us()
    infos = [i.wire() for i in node.peers.infos.values() if i.expires_us >= now]
    if node.own_info is not None:
        infos.insert(0, node.own_info.wire())
    return msgpack_response(wire.pack(infos))


async def gossip_post_peers(request: web.Request) -> web.Response:
    node: Node = request.app[NODE_KEY]
    items = wire.signed_list(wire.unpack(await read_body(request)), "agent infos")
    accepted = rejected = 0
    now = now_us()
    known, new = set(node.peers.by_url), []
    for item in items:
        try:
            info = parse_agent_info(item, now, node.cfg.community)
        except AgentInfoError:
            rejected += 1
            continue
        if node.peers.add_info(info) and info.url:
            new.append(info.url)
        accepted += 1
    node.gossip.first_contact([u for u in new if u.rstrip("/") not in known])
    return msgpack_response(wire.pack({"accepted": accepted, "rejected": rejected}))


# -- charter (PROTOCOL section 6) ----------------------------------------------------------

async def get_charter(request: web.Request) -> web.Response:
    node: Node = request.app[NODE_KEY]
    charter = node.charter
    if charter is None or charter.signed is None:
        return json_error(404, "this node holds no charter")
    if "application/json" in request.headers.get("Accept", ""):
        from node.http.jsonify import charter_json

        return web.json_response(charter_json(charter))
    return msgpack_response(charter.signed)


async def post_charter(request: web.Request) -> web.Response:
    node: Node = request.app[NODE_KEY]
    body = await read_body(request)
    try:
        charter = node.accept_charter(body)
    except CharterError as exc:
        raise BadRequest(f"charter refused: {exc}") from None
    return web.json_response({"accepted": True, "version": charter.version})


def build_app(node: Node) -> web.Application:
    from node.http.audit_routes import add_api_routes

    app = web.Application(middlewares=[errors_and_limits], client_max_size=wire.MAX_BODY)
    app[NODE_KEY] = node
    app[LIMITER_KEY] = RateLimiter(rate=node.cfg.rate_limit, burst=2 * node.cfg.rate_limit)
    app.router.add_get("/v1/gossip/heads", gossip_heads)
    app.router.add_get("/v1/gossip/chain/{author_hex}", gossip_chain)
    app.router.add_post("/v1/gossip/reconcile", gossip_reconcile)
    app.router.add_post("/v1/gossip/actions", gossip_post_actions)
    app.router.add_get("/v1/gossip/peers", gossip_get_peers)
    app.router.add_post("/v1/gossip/peers", gossip_post_peers)
    app.router.add_get("/v1/community/charter", get_charter)
    app.router.add_post("/v1/community/charter", post_charter)
    add_api_routes(app)
    from node.observability.metrics import add_metrics_route

    add_metrics_route(app)  # GET /metrics (Prometheus)
    from node.http.market_routes import add_market_routes

    add_market_routes(app)
    from node.http.action_routes import add_action_routes
    from node.http.dashboard import add_dashboard_routes

    add_action_routes(app)
    add_dashboard_routes(app)
    return app


def dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True)
