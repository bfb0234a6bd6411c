"""What the HTTP handlers use of the node: its parts, handed to the app under one typed key."""

from __future__ import annotations

import time
from collections import Counter
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field

from aiohttp import web

from ledger.charter import Charter
from ledger.keys import Identity
from ledger.membrane import Membrane
from ledger.store import Store
from node.charters import CharterBook
from node.config import NodeConfig
from node.journal import Journal
from node.p2p.gossip import Gossip
from node.p2p.intake import PeerInfos
from node.p2p.ondemand import OnDemand
from node.p2p.peers import PeerTable
from node.services import Services


@dataclass(frozen=True, slots=True)
class HttpContext:
    """The parts of one node the API serves; `services` fills in as optional services start."""

    cfg: NodeConfig
    identity: Identity
    store: Store
    book: CharterBook
    peers: PeerTable
    infos: PeerInfos
    metrics: Counter[str]
    journal: Journal
    gossip: Gossip
    services: Services = field(default_factory=Services)
    started: float = field(default_factory=time.monotonic)
    ondemand: OnDemand | None = None  # other grids' chains, under replicate = "grid"

    @property
    def charters(self) -> list[Charter]:
        """Every charter version held (the live list)."""
        return self.book.charters

    @property
    def charter(self) -> Charter | None:
        """The newest charter version, if any."""
        return self.book.charter

    @property
    def admin(self) -> bytes:
        """The community admin's pinned public key."""
        return self.book.admin

    def membrane(self) -> Membrane:
        """Who may join, by the newest charter."""
        return self.book.membrane()

    def grid_store(self, grid: str) -> AbstractAsyncContextManager[Store]:
        """`async with` it: the store that holds `grid`'s chains (ours, or another grid's
        fetched on demand; GridUnavailable when that fails)."""
        if self.ondemand is None:
            return nullcontext(self.store)
        return self.ondemand.reading(grid)

    def agent_store(self, author: bytes) -> AbstractAsyncContextManager[Store]:
        """`async with` it: the store that holds `author`'s chain (see `grid_store`)."""
        if self.ondemand is None:
            return nullcontext(self.store)
        return self.ondemand.reading_author(author)

    def uptime(self) -> float:
        """Seconds since the node was created."""
        return time.monotonic() - self.started


CONTEXT: web.AppKey[HttpContext] = web.AppKey("context", HttpContext)
