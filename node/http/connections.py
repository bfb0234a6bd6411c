"""Connections a stranger cannot hoard: timeouts, a cap below the open-file limit, quiet logs.

- Every connection must send a complete request header within KEEPALIVE_S of connecting (or of
  the previous answer), and an idle keep-alive connection is closed after KEEPALIVE_S: aiohttp's
  `keepalive_timeout` is armed when a connection opens and re-armed after each answer, and
  partial bytes do not re-arm it. A request body must arrive within BODY_TIMEOUT_S
  (`node.http.server.read_body`).
- At start the node raises its soft open-file limit to the hard one (at most 65,536), and keeps
  its connections `reserve` below it: when a new connection would pass the cap, the connections
  that are not in a request (half-open or idle), longest waiting first, are closed to make room.
  So a flood of half-open connections never takes the sockets that `/v1/info`, peers and the
  store need, and the node never reaches "Too many open files".
- Warnings and errors are rate-limited: one line per kind per minute, the next one saying how
  many like it were not logged.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import resource
import time
from collections import Counter

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)
KEEPALIVE_S = 20.0  # header and idle limit (above the 15 s our client keeps connections)
BODY_TIMEOUT_S = 30.0
MAX_OPEN_FILES = 65_536
LOG_WINDOW_S = 60.0


def raise_open_files() -> int:
    """Raise the soft open-file limit to the hard one (at most MAX_OPEN_FILES); the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    return MAX_OPEN_FILES if soft == resource.RLIM_INFINITY else soft


def connection_cap(open_files: int) -> int:
    """How many connections to serve at once with `open_files` descriptors: the rest is kept
    for the store, our own requests to peers, and a burst of accepts before room is made."""
    return max(16, open_files - 256 - open_files // 16)


class ConnectionGuard:
    """The protocol factory of the listening socket: makes room before taking a connection.

    Handlers mark the connections that are in a request (`enter`/`leave`, from the middleware);
    the others (half-open, idle) are closed, longest waiting first, when the cap is reached.
    """

    def __init__(self, metrics: Counter[str], cap: int = 1024) -> None:
        self.server: web.Server | None = None  # set by `serve`
        self.cap = cap
        self.metrics = metrics
        self.busy: set[RequestHandler] = set()  # handlers have no weak references
        self.since: dict[RequestHandler, float] = {}

    def __call__(self) -> RequestHandler:
        """A handler for a new connection, after room was made for it."""
        assert self.server is not None
        connections = self.server.connections
        if len(connections) >= self.cap:
            self._make_room(connections)
        if len(self.since) > 2 * len(connections) + 64:  # forget closed connections
            self.since = {c: self.since[c] for c in connections if c in self.since}
        handler = self.server()
        self.since[handler] = time.monotonic()
        return handler

    def _make_room(self, connections: list[RequestHandler]) -> None:
        waiting = [c for c in connections if c not in self.busy]
        count = len(connections) - self.cap + 1
        for handler in heapq.nsmallest(count, waiting, key=lambda c: self.since.get(c, 0.0)):
            handler.force_close()
        self.metrics["http_connections_closed_for_room"] += min(count, len(waiting))

    def enter(self, handler: RequestHandler | None) -> None:
        """A request is being handled on this connection: it is not closed to make room."""
        if handler is not None:
            self.busy.add(handler)

    def leave(self, handler: RequestHandler | None) -> None:
        """The request was answered: the connection waits again (from now)."""
        if handler is not None:
            self.busy.discard(handler)
            self.since[handler] = time.monotonic()


GUARD_KEY: web.AppKey[ConnectionGuard] = web.AppKey("connection_guard", ConnectionGuard)


async def serve(runner: web.AppRunner, guard: ConnectionGuard, host: str, port: int,
                ssl: object = None) -> asyncio.Server:
    """Listen on host:port through `guard` (also in the app under GUARD_KEY, so the middleware
    marks busy connections), sized by the open-file limit, once `runner` is set up."""
    assert runner.server is not None
    guard.server, guard.cap = runner.server, connection_cap(raise_open_files())
    loop = asyncio.get_running_loop()
    return await loop.create_server(guard, host, port, reuse_address=True, ssl=ssl)


class LogThrottle(logging.Filter):
    """One warning or error per kind (logger, level, message) per LOG_WINDOW_S; the next one
    logged says how many like it were not."""

    def __init__(self, window_s: float = LOG_WINDOW_S, max_kinds: int = 1024) -> None:
        super().__init__()
        self.window_s = window_s
        self.max_kinds = max_kinds
        self.kinds: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Let the record through unless one of its kind was logged less than a window ago."""
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg)[:80])
        now = time.monotonic()
        since, held = self.kinds.get(key, (0.0, 0))
        if since and now - since < self.window_s:
            self.kinds[key] = (since, held + 1)
            return False
        if len(self.kinds) >= self.max_kinds:
            self.kinds.clear()
        self.kinds[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last minute not logged)"
        return True


def throttle_logs() -> None:
    """Rate-limit warnings and errors on every handler of the root logger (once)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, LogThrottle) for f in handler.filters):
            handler.addFilter(LogThrottle())
