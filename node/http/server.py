"""The HTTP server's middleware and handler helpers: errors, limits, bodies, parameters.

The route table is in `node.http.routes`.

Bad input never reaches a 500: undecodable or wrongly shaped bodies get 400 with a JSON
`{"error": ...}`, bodies over 4 MiB get 413, a client over its request rate gets 429 with
Retry-After (`node.http.limits` says which rates).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import Counter
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ledger.keys import parse_agent_hex
from ledger.requestauth import HEADER_AGENT
from node.http.connections import BODY_TIMEOUT_S, GUARD_KEY
from node.http.context import CONTEXT
from node.http.inflate import BodyError, inflate
from node.http.limits import RequestLimits, address_block
from node.p2p import wire
from node.p2p.ondemand import GridUnavailable

log = logging.getLogger(__name__)


LIMITER_KEY: web.AppKey[RequestLimits] = web.AppKey("limiter", RequestLimits)
# Set on a gossip push over its client's limits: the seconds to wait, unless the handler lets
# it through on the members' lane (`RequestLimits.lane`).
OVER_LIMIT = "picogrid_over_limit"
LANE_PATH = "/v1/gossip/actions"
FORGED = ("bad-signature", "malformed")  # refusals that show a claim was forged
LANE_MAX_BODY = 256 * 1024  # a member's news is small; its catch-up waits like the rest


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
        """Log the client's own faults in one debug line; everything else as asked."""
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
    """A JSON `{"error": message}` answer with `status`."""
    return web.json_response({"error": message}, status=status)


class BadRequest(Exception):
    """Raised by handlers for input that is wrong: answered 400 with the message."""


@web.middleware
async def errors_and_limits(request: web.Request, handler) -> web.StreamResponse:
    """Rate limit, turn bad input into 4xx JSON, count gossip bytes, allow CORS reads."""
    metrics = request.app[CONTEXT].metrics
    limiter = request.app[LIMITER_KEY]
    guard = request.app.get(GUARD_KEY)
    if guard is not None:
        guard.enter(request.protocol)
    try:
        response = await _answer(metrics, limiter, request, handler)
    finally:
        if guard is not None:
            guard.leave(request.protocol)
    if request.path.startswith("/v1/gossip/"):  # gossip bodies both ways, for /metrics
        _count_gossip_bytes(metrics, request, response)
    if request.method in ("GET", "HEAD"):  # the read-only API is public, also from browsers
        response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _count_gossip_bytes(metrics: Counter, request: web.Request,
                       response: web.StreamResponse) -> None:
    metrics["gossip_bytes_in"] += request.content_length or 0
    body = response.body if isinstance(response, web.Response) else None
    metrics["gossip_bytes_out"] += len(body) if isinstance(body, bytes | bytearray) else 0


def too_many(metrics: Counter, wait: float) -> web.Response:
    """429 with Retry-After (whole seconds, at least 1)."""
    metrics["http_429"] += 1
    answer = json_error(429, "too many requests; slow down")
    answer.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return answer


class TooMany(Exception):
    """Raised by a handler that refuses a request over its limits: answered 429."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"wait {wait:.1f} s")
        self.wait = wait


def _signed_member(request: web.Request) -> bytes | None:
    """The member a gossip request of a closed community says it is signed by (header
    `PicoGrid-Agent`; the signature is verified next, by `node.http.auth`)."""
    charter = request.app[CONTEXT].charter
    if charter is None or charter.open or not request.path.startswith("/v1/gossip/"):
        return None  # open communities verify no signature: a claim there proves nothing
    claimed = request.headers.get(HEADER_AGENT, "")
    try:
        agent = parse_agent_hex(claimed)
    except ValueError:
        return None
    return agent if request.app[CONTEXT].store.head(agent) is not None else None


async def _answer(metrics: Counter, limiter: RequestLimits, request: web.Request,
                  handler) -> web.StreamResponse:
    block = address_block(request.remote)
    wait = limiter.admit(block, request.path)
    if wait > 0.0:
        signer = _signed_member(request)
        size = request.content_length
        if signer is not None and limiter.lane(block, {signer}):
            # A member's signed request: charged to the member. If its signature turns out
            # false (401), the block loses the lane (`_signed_lane_checked`).
            return _signed_lane_checked(limiter, block, await _handle(metrics, request, handler))
        if request.method != "POST" or request.path != LANE_PATH or size is None \
                or size > LANE_MAX_BODY:
            return too_many(metrics, wait)
        request[OVER_LIMIT] = wait  # the handler may still take members' fresh actions
    return await _handle(metrics, request, handler)


def _signed_lane_checked(limiter: RequestLimits, block: str,
                         response: web.StreamResponse) -> web.StreamResponse:
    """A request on the signed lane whose signature was false costs its block the lane (a
    stale or replayed one does not: that is a clock or a retry, not a forgery)."""
    body = response.body if isinstance(response, web.Response) else None
    if response.status == 401 and isinstance(body, bytes) \
            and json.loads(body).get("code") in FORGED:
        limiter.deny_lane(block)
    return response


async def _handle(metrics: Counter, request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TooMany as exc:
        return too_many(metrics, exc.wait)
    except web.HTTPRequestEntityTooLarge:
        metrics["http_413"] += 1
        return json_error(413, f"request body larger than {wire.MAX_BODY} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return json_error(exc.status, exc.reason)
        raise
    except (BadRequest, wire.BadBody, ValueError) as exc:
        metrics["http_400"] += 1
        return json_error(400, str(exc) or "bad request")
    except GridUnavailable as exc:
        return grid_unavailable(metrics, exc)


def grid_unavailable(metrics: Counter, exc: GridUnavailable) -> web.Response:
    """503 with Retry-After: another grid's chains could not be fetched now; the node never
    answers with part of a grid (node.p2p.ondemand)."""
    metrics["http_503"] += 1
    return web.json_response(
        {"error": str(exc), "grid": exc.grid, "reason": exc.reason,
         "retry_after_s": exc.retry_after_s},
        status=503, headers={"Retry-After": str(exc.retry_after_s)})


async def read_body(request: web.Request) -> bytes:
    """The request body, refused with 413 over the limit and 400 when it cannot be read."""
    if request.content_length is not None and request.content_length > wire.MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=wire.MAX_BODY,
                                            actual_size=request.content_length)
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):  # a slow body holds its connection no longer
            raw = await request.read()
    except TimeoutError:
        request.app[CONTEXT].metrics["http_408"] += 1
        raise web.HTTPRequestTimeout() from None
    except web.RequestPayloadError:  # a broken chunk: the sender's fault
        raise BadRequest("the request body cannot be read: its chunked framing is broken") \
            from None
    try:  # the node inflates bodies itself (node.http.inflate says why)
        return inflate(raw, request.headers.get("Content-Encoding", ""), wire.MAX_BODY)
    except BodyError as exc:
        if exc.too_large:
            raise web.HTTPRequestEntityTooLarge(max_size=wire.MAX_BODY,
                                                actual_size=wire.MAX_BODY + 1) from None
        raise BadRequest(str(exc)) from None


def msgpack_response(body: bytes, headers: dict | None = None) -> web.Response:
    """A msgpack answer (PROTOCOL's content type)."""
    return web.Response(body=body, content_type=wire.CONTENT_TYPE, headers=headers)


def author_param(request: web.Request, name: str = "author_hex") -> bytes:
    """The agent id in the path parameter `name`; BadRequest when it is not one."""
    try:
        return parse_agent_hex(request.match_info[name])
    except ValueError as exc:
        raise BadRequest(f"bad agent id: {exc}") from None


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    """The integer query parameter `name` in [lo, hi], or `default` when absent."""
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


def dumps(value: object) -> str:
    """JSON with sorted keys (stable output for tests and digests)."""
    return json.dumps(value, sort_keys=True)
