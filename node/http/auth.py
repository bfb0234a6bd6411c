"""Who may read a closed community: the signed-request gate (docs/protocol.md, "Signed requests").

In an open community every endpoint is public, as before. In a closed one (the newest charter
says `open = false`):

- a few endpoints stay public because they hold nothing private and a joiner needs them:
  `GET /v1/info` (reduced to the community's name and versions), `GET` and `POST
  /v1/community/charter` (the admin-signed rules), `GET /v1/gossip/proof` (a peer proves its
  key to members that may not hold its genesis yet), `GET /v1/openapi.json`, the dashboard's
  page and static files;
- every other read needs a request signed by a member (an agent whose genesis this node holds,
  or whom the charter lists) or an auditor the charter lists, or the owner's dashboard token
  (`DIR/dashboard.token`, sent as `Authorization: Bearer TOKEN`);
- `POST /v1/gossip/actions` needs a signed request by any key but an auditor's: it is how an
  invited agent's genesis gets in, and the membrane judges every action anyway;
- every other write needs a member's signed request.

Unsigned, badly signed, stale and replayed requests get 401, a key that may not do this 403,
each with a JSON `{"error": ..., "code": ...}` and an `auth_refused:<code>` counter.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from ledger.chain import now_us
from ledger.charter import Charter
from ledger.requestauth import (
    HEADER_AGENT,
    HEADER_SIGNATURE,
    HEADER_TIME,
    AuthError,
    Claim,
    ReplayCache,
    check_signature,
    check_time,
    parse_claim,
)
from node.http.connections import BODY_TIMEOUT_S
from node.http.context import CONTEXT
from node.http.server import BadRequest
from node.p2p import wire

log = logging.getLogger(__name__)

PUBLIC_READS = frozenset(
    {"/", "/favicon.ico", "/v1/info", "/v1/community/charter", "/v1/openapi.json",
     "/v1/gossip/proof"}  # a peer proof: which agent answers at this URL, nothing else
)
PUBLIC_WRITES = frozenset({"/v1/community/charter"})  # only the admin's signature counts there
OPEN_WRITES = frozenset({"/v1/gossip/actions"})  # any signer but an auditor: how a genesis arrives
READS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_FILE = "dashboard.token"
# Who a request was admitted as, under request[READER]: "public" (open community or a public
# endpoint), "owner" (the dashboard token), "member", "auditor", or "signer" (a key that is
# neither, posting actions).
READER: web.RequestKey[str] = web.RequestKey("picogrid_reader", str)
# The key whose signature on this request verified (closed communities only), under
# request[SIGNER]: what a limit per author may count by, since the header alone is a claim.
SIGNER: web.RequestKey[bytes] = web.RequestKey("picogrid_signer", bytes)


def load_or_make_token(directory: Path) -> str:
    """The owner's dashboard token in `directory` (made once, mode 0600)."""
    path = Path(directory) / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        token = secrets.token_hex(32)
        f.write(token + "\n")
    return token


class AuthGate:
    """Decides, per request, whether a closed community's node answers it, and as whom."""

    def __init__(
        self,
        community: str,
        charter: Callable[[], Charter | None],
        is_member: Callable[[bytes], bool],
        token: str,
        metrics: Counter,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.community = community
        self.charter = charter
        self.is_member = is_member
        self.token = token
        self.metrics = metrics
        self.clock = clock
        self.replays = ReplayCache()

    def closed(self) -> bool:
        """True when the newest charter closes the community."""
        charter = self.charter()
        return charter is not None and not charter.open

    def role_of(self, agent: bytes) -> str | None:
        """'member', 'auditor' or None for a key, by the store and the newest charter."""
        charter = self.charter()
        if self.is_member(agent) or (charter is not None and agent in charter.members):
            return "member"
        if charter is not None and (agent in charter.auditors or agent == charter.admin):
            return "auditor"
        return None

    async def admit(self, request: web.Request) -> str:
        """The role `request` is answered as; AuthError when it must be refused."""
        method, path = request.method, request.path
        if not self.closed():
            return "public"
        if (method in READS and _public_read(path)) or (method == "POST" and path in PUBLIC_WRITES):
            if HEADER_AGENT not in request.headers and "Authorization" not in request.headers:
                return "public"
            try:  # a public endpoint tells a member or an auditor more (/v1/info)
                return await self._signed(request)
            except AuthError:
                return "public"
        return await self._signed(request)

    async def _signed(self, request: web.Request) -> str:
        """The role of a signed request (or the owner's token); AuthError otherwise."""
        method, path = request.method, request.path
        if method in READS and self._owner(request.headers.get("Authorization", "")):
            return "owner"
        h = request.headers
        claim = parse_claim(h.get(HEADER_AGENT), h.get(HEADER_TIME), h.get(HEADER_SIGNATURE))
        now = self.clock()
        check_time(claim, now)
        role = self._allowed(claim, method, path)
        body = b"" if method in READS else await _raw_body(request)
        digest = check_signature(claim, self.community, method, request.raw_path, body)
        if not self.replays.take(digest, claim.time_us, now):
            raise AuthError(
                401,
                "replayed",
                "this signed request was used already (a replay): sign every request afresh",
            )
        request[SIGNER] = claim.agent
        return role

    def _allowed(self, claim: Claim, method: str, path: str) -> str:
        """The signer's role, when it may do this; AuthError 403 otherwise (checked before the
        signature, so a stranger's request is refused without a verification)."""
        role = self.role_of(claim.agent)
        if role == "auditor" and method not in READS:
            raise AuthError(403, "read-only", "an auditor key may read, not post")
        if method not in READS and path in OPEN_WRITES:
            return role or "signer"
        if role is None:
            raise AuthError(
                403,
                "not-member",
                f"key {claim.agent.hex()[:16]}... is not a member of this "
                "closed community, nor an auditor its charter lists",
            )
        if method not in READS and role != "member":
            raise AuthError(403, "not-member", "only a member may post here")
        return role

    def _owner(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        return (
            scheme.lower() == "bearer"
            and bool(token)
            and hmac.compare_digest(token.strip().encode(), self.token.encode())
        )


def _public_read(path: str) -> bool:
    return path in PUBLIC_READS or path.startswith("/static/")


async def _raw_body(request: web.Request) -> bytes:
    """The body as sent (the signature covers it before any inflation), bounded."""
    if request.content_length is not None and request.content_length > wire.MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(
            max_size=wire.MAX_BODY, actual_size=request.content_length
        )
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):  # a slow body holds its connection no longer
            return await request.read()
    except TimeoutError:
        request.app[CONTEXT].metrics["http_408"] += 1
        raise web.HTTPRequestTimeout() from None
    except web.RequestPayloadError:
        raise BadRequest("the request body cannot be read: its chunked framing is broken") from None


GATE_KEY: web.AppKey[AuthGate] = web.AppKey("auth_gate", AuthGate)


@web.middleware
async def require_signature(request: web.Request, handler) -> web.StreamResponse:
    """Refuse what a closed community's node must not answer; note who asked under READER."""
    gate = request.app[GATE_KEY]
    try:
        request[READER] = await gate.admit(request)
    except AuthError as exc:
        gate.metrics[f"auth_refused:{exc.code}"] += 1
        log.debug("refused %s %s: %s", request.method, request.path, exc)
        return web.json_response({"error": str(exc), "code": exc.code}, status=exc.status)
    return await handler(request)
