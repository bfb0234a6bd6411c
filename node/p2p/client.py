"""HTTP client for another node's gossip and audit endpoints, with short timeouts."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp

from ledger.chain import now_us
from ledger.charter import Charter, CharterError, parse_charter
from node.p2p import wire

MAX_WAIT_429_S = 5.0  # the longest one Retry-After is waited out
# The answers a round always gets (heads, or their reconciliation) carry the peer's clock.
CLOCK_PATHS = ("/v1/gossip/heads", "/v1/gossip/reconcile")
PATIENCE = 12  # 429s in a row a command (audit, status, join, charter) waits out, then gives up
DEFAULT_TIMEOUT = 2.0
# A node's session -> its metrics Counter: gossip bodies sent and received through that session
# are added to "gossip_bytes_out" / "gossip_bytes_in" (see node.metrics).
_BYTE_COUNTERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# A node's session -> what takes the peer's clock from each heads answer (node.p2p.clock):
# called with (peer URL, sent, received by our clock in microseconds, the answer's headers).
ClockSampler = Callable[[str, int, int, Any], None]
_CLOCK_SAMPLERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def count_gossip_bytes(session: aiohttp.ClientSession, counter: Counter) -> None:
    """Count gossip bodies sent and received through `session` into `counter`."""
    _BYTE_COUNTERS[session] = counter


def watch_clock(session: aiohttp.ClientSession, sampler: ClockSampler) -> None:
    """Hand every heads answer through `session` to `sampler` (the peer's clock is in it)."""
    _CLOCK_SAMPLERS[session] = sampler


class PeerError(Exception):
    """The peer could not be reached, timed out, or answered something unusable.

    `status` is the HTTP status of an answer other than 200; `unreachable` says that no
    answer came at all (refused, unknown host, timeout), so a user can be told what to check.
    """

    def __init__(self, message: str, *, status: int | None = None,
                 unreachable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable
        self.retry_after = retry_after


def _retry_after(headers: Any) -> float | None:
    """A 429's Retry-After in seconds, when it is a plain number."""
    try:
        return max(0.0, float(headers.get("Retry-After", "")))
    except ValueError:
        return None


def _said(body: bytes) -> str:
    """`: <error>` of a JSON error answer (`{"error": ...}`), cut short; else nothing."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return ""
    return f": {' '.join(error.split())[:300]}" if isinstance(error, str) else ""


class PeerUnsupported(PeerError):
    """The peer does not offer the endpoint (an older node): fall back, do not back off."""


def _unreachable(exc: BaseException) -> bool:
    """No answer at all: nothing listens there, the host is unknown, or it took too long."""
    return isinstance(exc, aiohttp.ClientConnectorError | TimeoutError | ConnectionError)


def _charter_version(headers: Any) -> int:
    """The charter version a peer announces in its answer's headers (0 when none or garbage)."""
    try:
        return int(headers.get("PicoGrid-Charter-Version", "0"))
    except ValueError:
        return 0


class PeerTransport(Protocol):
    """What gossip needs of one peer: `PeerClient` over HTTP, or an in-memory double."""

    base: str

    async def heads(self) -> tuple[dict[bytes, tuple[int, bytes]], int]:
        """The peer's heads and the charter version it announces."""

    async def reconcile(self, query: bytes, kind: str = "heads") -> tuple[bytes, int]:
        """One set-reconciliation step over the peer's heads or infos (`kind`): the answer and
        the charter version announced."""

    async def chain(self, author: bytes, start: int = 0,
                    limit: int = 1000) -> list[tuple[bytes, bytes]]:
        """A page of `author`'s chain from seq `start`."""

    async def push(self, items: list[tuple[bytes, bytes]], reached_all: bool = False) -> dict:
        """Hand actions to the peer; its summary of what it took."""

    async def peers(self) -> list:
        """The peer's signed agent infos (not yet checked)."""

    async def post_peers(self, infos: list[list[bytes]]) -> dict:
        """Hand our agent infos to the peer; its count of those it took."""

    async def prove(self, nonce: bytes) -> object:
        """The peer's answer to a challenge (not yet checked: `ledger.peerproof`)."""

    async def infos(self, agents: list[bytes]) -> list:
        """The peer's signed infos of these agents (not yet checked)."""

    async def evidence(self, author: bytes) -> list:
        """The peer's evidence that `author` forked (not yet checked; [] if none)."""

    async def charter(self, pinned_admin: bytes | None = None) -> Charter:
        """The peer's newest charter, checked against the pinned admin key."""

    async def post_charter(self, signed: bytes) -> None:
        """Hand our charter to the peer."""


class PeerClient:
    """Talks to one base URL. Every call costs at most `timeout` seconds."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str,
                 timeout: float = DEFAULT_TIMEOUT, patience: int = 0) -> None:
        self.session = session
        # How many 429s in a row a request waits out (Retry-After, at most MAX_WAIT_429_S each):
        # a command such as `picogrid audit` reads a whole community from one address, and
        # `picogrid charter` posts to a node its neighbours keep busy, and each waits its turn;
        # gossip (0) skips the round instead.
        self.patience = patience
        self.base = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.bytes: Counter | None = _BYTE_COUNTERS.get(session)
        self.clock: ClockSampler | None = _CLOCK_SAMPLERS.get(session)

    def _count(self, path: str, sent: int, received: int) -> None:
        if self.bytes is not None and path.startswith("/v1/gossip/"):
            self.bytes["gossip_bytes_out"] += sent
            self.bytes["gossip_bytes_in"] += received

    async def _read(self, resp: aiohttp.ClientResponse, path: str) -> bytes:
        """The answer's body, unless it is larger than wire.MAX_ANSWER (then not read)."""
        too_large = PeerError(f"{self.base}{path}: answer larger than {wire.MAX_ANSWER} bytes")
        if resp.content_length is not None and resp.content_length > wire.MAX_ANSWER:
            raise too_large
        body = bytearray()
        async for chunk in resp.content.iter_any():
            body += chunk
            if len(body) > wire.MAX_ANSWER:
                raise too_large
        return bytes(body)

    async def _patiently(self, send: Callable[[], Awaitable[tuple[bytes, Any]]]) -> tuple[bytes, Any]:
        """`send()`, sent again after each of up to `patience` 429s in a row (Retry-After, at most
        MAX_WAIT_429_S each). A 429 is no verdict on what was sent (PROTOCOL section 14), so a
        POST is sent again as safely as a GET."""
        for _ in range(self.patience):
            try:
                return await send()
            except PeerError as exc:
                if exc.status != 429:
                    raise
                await asyncio.sleep(min(MAX_WAIT_429_S, exc.retry_after or 1.0))
        return await send()

    async def _get(self, path: str, params: dict | None = None) -> tuple[bytes, Any]:
        return await self._patiently(lambda: self._get_once(path, params))

    async def _get_once(self, path: str, params: dict | None) -> tuple[bytes, Any]:
        try:
            sent = now_us()
            async with self.session.get(self.base + path, params=params,
                                        timeout=self.timeout) as resp:
                if self.clock is not None and path in CLOCK_PATHS:
                    # Any answer has a clock (a refusal too: a closed community refuses a
                    # request signed by a clock far off, which is when the comparison matters).
                    self.clock(self.base, sent, now_us(), resp.headers)
                body = await self._read(resp, path)
                self._count(path, 0, len(body))
                if resp.status != 200:
                    raise PeerError(f"{self.base}{path}: HTTP {resp.status}{_said(body)}",
                                    status=resp.status, retry_after=_retry_after(resp.headers))
                return body, resp.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PeerError(f"{self.base}{path}: {exc.__class__.__name__} {exc}",
                            unreachable=_unreachable(exc)) from None

    async def _post(self, path: str, body: bytes, headers: dict | None = None) -> bytes:
        data, _ = await self._post_full(path, body, headers)
        return data

    async def _post_full(self, path: str, body: bytes,
                         headers: dict | None = None) -> tuple[bytes, Any]:
        return await self._patiently(lambda: self._post_once(path, body, headers))

    async def _post_once(self, path: str, body: bytes,
                         headers: dict | None) -> tuple[bytes, Any]:
        try:
            sent = now_us()
            async with self.session.post(
                self.base + path, data=body, timeout=self.timeout,
                headers={"Content-Type": wire.CONTENT_TYPE, **(headers or {})},
            ) as resp:
                if self.clock is not None and path in CLOCK_PATHS:
                    self.clock(self.base, sent, now_us(), resp.headers)
                data = await self._read(resp, path)
                self._count(path, len(body), len(data))
                if resp.status != 200:
                    raise PeerError(f"{self.base}{path}: HTTP {resp.status} {data[:200]!r}",
                                    status=resp.status, retry_after=_retry_after(resp.headers))
                return data, resp.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PeerError(f"{self.base}{path}: {exc.__class__.__name__} {exc}",
                            unreachable=_unreachable(exc)) from None

    def _decode(self, data: bytes, what: str, parse: Callable[[bytes], Any] = wire.unpack) -> Any:
        """A msgpack answer; a peer that answers garbage is a failed peer (backed off)."""
        try:
            return parse(data)
        except wire.BadBody as exc:
            raise PeerError(f"{self.base}: {what}: {exc}") from None

    def _decode_map(self, data: bytes, what: str) -> dict:
        answer = self._decode(data, what)
        if not isinstance(answer, dict):
            raise PeerError(f"{self.base}: {what} is not a map")
        return answer

    async def heads(self) -> tuple[dict[bytes, tuple[int, bytes]], int]:
        """The peer's heads and the charter version it announces (0 when it says nothing)."""
        body, headers = await self._get("/v1/gossip/heads")
        return self._decode(body, "heads answer", wire.unpack_heads), _charter_version(headers)

    async def chain(self, author: bytes, start: int = 0, limit: int = 1000) -> list[tuple[bytes, bytes]]:
        """A page of `author`'s chain from seq `start` (at most `limit` actions)."""
        body, _ = await self._get(f"/v1/gossip/chain/{author.hex()}",
                                  {"from": str(start), "limit": str(limit)})
        items = self._decode(body, "chain answer", lambda b: wire.signed_list(wire.unpack(b)))
        out = []
        append = out.append
        for item in items:  # a page has a thousand: exact type checks, no generator per item
            if type(item) is not list or len(item) != 2:
                raise PeerError(f"{self.base}: chain items must be [bin, bin]")
            body, signature = item
            if type(body) is not bytes or type(signature) is not bytes:
                raise PeerError(f"{self.base}: chain items must be [bin, bin]")
            append((body, signature))
        return out

    async def push(self, items: list[tuple[bytes, bytes]], reached_all: bool = False) -> dict:
        """POST actions. `reached_all`: we push them to every peer we know, so a receiver in a
        community as small as ours need not pass them on (header `PicoGrid-Push: all`)."""
        headers = {wire.PUSH_HEADER: "all"} if reached_all else None
        data = await self._post("/v1/gossip/actions", wire.pack([list(i) for i in items]),
                                headers)
        return self._decode_map(data, "push answer")

    async def reconcile(self, query: bytes, kind: str = "heads") -> tuple[bytes, int]:
        """POST one set-reconciliation query (ledger.reconcile) over the peer's heads or infos;
        the answer and the charter version the peer announces. PeerUnsupported if the peer does
        not know the endpoint."""
        path = "/v1/gossip/reconcile" + ("" if kind == "heads" else f"/{kind}")
        try:
            data, headers = await self._post_full(path, query)
        except PeerError as exc:
            if exc.status in (404, 405):
                raise PeerUnsupported(str(exc), status=exc.status) from None
            raise
        return data, _charter_version(headers)

    async def peers(self) -> list:
        """The peer's signed agent infos (not yet checked)."""
        body, _ = await self._get("/v1/gossip/peers")
        value = self._decode(body, "peers answer")
        if not isinstance(value, list):
            raise PeerError(f"{self.base}: peers answer is not an array")
        return value

    async def post_peers(self, infos: list[list[bytes]]) -> dict:
        """Hand our agent infos to the peer; its count of those it took."""
        return self._decode_map(await self._post("/v1/gossip/peers", wire.pack(infos)),
                                "peers answer")

    async def prove(self, nonce: bytes) -> object:
        """GET /v1/gossip/proof: the peer's answer to our nonce (checked by the caller)."""
        body, _ = await self._get("/v1/gossip/proof", {"nonce": nonce.hex()})
        return self._decode(body, "proof answer")

    async def infos(self, agents: list[bytes]) -> list:
        """The peer's signed infos of these agents (not yet checked); at most wire.MAX_BATCH."""
        data = await self._post("/v1/gossip/infos", wire.pack(agents[: wire.MAX_BATCH]))
        value = self._decode(data, "infos answer")
        if not isinstance(value, list):
            raise PeerError(f"{self.base}: infos answer is not an array")
        return value

    async def evidence(self, author: bytes) -> list:
        """The peer's evidence that `author` forked: signed actions, not yet checked."""
        body, _ = await self._get(f"/v1/gossip/forks/{author.hex()}")
        value = self._decode(body, "fork evidence")
        if not isinstance(value, list) or len(value) > 2:
            raise PeerError(f"{self.base}: fork evidence is not an array of two actions")
        return value

    async def charter(self, pinned_admin: bytes | None = None) -> Charter:
        """The peer's newest charter, parsed (and checked against `pinned_admin` if given)."""
        body, _ = await self._get("/v1/community/charter")
        try:
            return parse_charter(body, pinned_admin)
        except CharterError as exc:
            raise PeerError(f"{self.base}: {exc}") from None

    async def post_charter(self, signed: bytes) -> None:
        """Hand our signed charter to the peer."""
        await self._post("/v1/community/charter", signed)

    async def json(self, path: str, params: dict | None = None) -> Any:
        """GET a JSON document of the peer's audit API."""
        body, _ = await self._get(path, params)
        try:
            return json.loads(body)
        except ValueError:
            raise PeerError(f"{self.base}{path}: not JSON") from None
