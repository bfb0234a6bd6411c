"""The running agent: `Node` composes the store, the chain, gossip, the HTTP server and the
optional services, and starts and stops them. It holds no logic of its own.

    node = Node(load_config(dir))
    await node.start()      # listen, gossip, run the agent through the market intervals
    ...
    await node.stop()       # in-flight writes committed, then everything closed
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter

import aiohttp
from aiohttp import web

from hardware.status import StatusReporter
from ledger.actions import Action
from ledger.agentinfo import AgentInfo
from ledger.chain import SourceChain, now_us
from ledger.charter import Charter
from ledger.keys import Identity, load_identity
from ledger.limits import rules_from
from ledger.membrane import Membrane
from ledger.store import IngestResult, Store
from node.charters import CharterBook
from node.config import NodeConfig
from node.devices.hardware import HardwareGlue
from node.disk import DiskWatch
from node.http.connections import GUARD_KEY, KEEPALIVE_S, ConnectionGuard, serve
from node.http.context import HttpContext
from node.http.routes import build_app
from node.http.server import ServerLog
from node.http.tls import server_tls, tls_files
from node.journal import Journal
from node.observability.influx import InfluxExporter
from node.p2p.client import PeerClient, PeerError, watch_clock
from node.p2p.clock import ClockWatch
from node.p2p.fetched import SWEEP_S
from node.p2p.gossip import Gossip
from node.p2p.intake import PeerInfos
from node.p2p.ondemand import OnDemand
from node.p2p.peers import PeerTable
from node.p2p.scoping import GridScope
from node.p2p.session import RequestSigner, open_session
from node.services import Services
from node.trading.agent import AgentLoop
from node.verifiers import VerifierProcesses
from node.version import VERSION

__all__ = ["INFO_REPUBLISH_S", "VERSION", "Node"]

log = logging.getLogger(__name__)
INFO_REPUBLISH_S = 20 * 60  # an info lives 30 minutes: 10 to spare, half the re-signs of 10


class Node:
    """One agent's node: builds each service with the parts it uses, starts and stops them."""

    def __init__(self, cfg: NodeConfig, identity: Identity | None = None) -> None:
        self.cfg = cfg
        self.identity = identity or load_identity(cfg.key_path)
        self.admin = bytes.fromhex(cfg.admin)
        self.metrics: Counter[str] = Counter()
        # Charter limits (`over-limit`) are checked at ingest by the charters held at the time.
        self.store = Store(cfg.store_path, limits=rules_from(lambda: self.book.charters))
        self.book = CharterBook(self.store, cfg.community, self.admin, self.metrics)
        self.chain = SourceChain(self.store, self.identity)
        self.peers = PeerTable(own_url=cfg.url, own_agent=self.identity.agent)
        for url in cfg.peers:
            self.peers.add_url(url, bootstrap=True)
        self.infos = PeerInfos(self.identity, cfg.community, cfg.url, self.peers)
        self.clock = ClockWatch(self.peers, self.metrics, ClockWatch.tolerance_from(cfg.extra))
        self.disk = DiskWatch(cfg.dir, self.metrics)
        self.journal = Journal(self.store, self.chain, self.metrics,
                               push=lambda actions: self.gossip.eager_push(actions),
                               clock=self.clock, disk=self.disk,
                               workers=VerifierProcesses.for_this_machine(cfg.extra))
        scope = GridScope(self.store, cfg.grid if cfg.replicate == "grid" else None)
        self.gossip = Gossip(self.store, self.peers, self.journal, self.book, self.infos,
                             self.metrics, cfg.round_ms, scope=scope)
        self.gossip.on_own_rejected = self.clock.own_rejected
        # Under grid scope, other grids' chains are fetched when the API is asked for them.
        self.ondemand = OnDemand(self.gossip, cfg.dir / "fetched")
        self.services = Services(clock=self.clock, disk=self.disk)
        self.started = time.monotonic()
        self.http = HttpContext(cfg, self.identity, self.store, self.book, self.peers,
                                self.infos, self.metrics, self.journal, self.gossip,
                                self.services, self.started, ondemand=self.ondemand)
        self.runner: web.AppRunner | None = None
        self.listener: asyncio.Server | None = None
        self.tasks: list[asyncio.Task] = []
        self.stop_event = asyncio.Event()  # set by signals (picogrid run) or a critical error
        self.stop_reason = ""
        self.managed = False  # True when a runner waits on `stop_event` (picogrid run does)

    # -- the parts, by the names the tests and tools use ---------------------------------------

    @property
    def charters(self) -> list[Charter]:
        """Every charter version held (the live list)."""
        return self.book.charters

    @property
    def charter(self) -> Charter | None:
        """The newest charter version, if any."""
        return self.book.charter

    @property
    def own_info(self) -> AgentInfo | None:
        """Our own signed agent info, once started."""
        return self.infos.own

    @property
    def agent(self) -> AgentLoop | None:
        """The agent loop, once started."""
        return self.services.agent

    @property
    def hardware(self) -> HardwareGlue | None:
        """The pins, the status LED and the meter's thread, once started."""
        return self.services.hardware

    @property
    def status(self) -> StatusReporter | None:
        """The error reporter behind the status LED, once started."""
        return self.services.status

    @property
    def influx(self) -> InfluxExporter | None:
        """The InfluxDB exporter, when `[influx]` is configured and the node started."""
        return self.services.influx

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The HTTP client session gossip uses, once started."""
        return self.services.session

    def membrane(self) -> Membrane:
        """Who may join, by the newest charter."""
        return self.book.membrane()

    def accept_charter(self, signed: bytes) -> Charter:
        """Take a newer charter signed by the pinned admin key; CharterError otherwise."""
        return self.book.accept(signed)

    async def append(self, type_: str, payload: dict) -> Action:
        """Sign and store our next action, then push it to a few peers at once."""
        return await self.journal.append(type_, payload)

    async def ingest(self, items: list[tuple[bytes, bytes]], forward: bool = True,
                     checked: list | None = None) -> IngestResult:
        """Verify, store and pass on a batch (see `Journal.ingest`)."""
        return await self.journal.ingest(items, forward, checked)

    def refresh_own_info(self) -> AgentInfo:
        """Sign a fresh agent info of our own."""
        return self.infos.refresh_own()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, then start the hardware, gossip, the agent loop and the exporter."""
        self.infos.refresh_own()
        tls = tls_files(self.cfg)
        # Every request to a peer is signed, so a closed community's nodes answer it.
        signer = RequestSigner(self.identity, self.cfg.community)
        self.services.session = open_session(signer, tls.ca)
        watch_clock(self.services.session, self.clock.sample)
        self.gossip.open(self.services.session)
        await self._listen(server_tls(tls))
        self._start_hardware()
        self.spawn(self.gossip.run(), "gossip")
        self._start_agent()
        self.spawn(self._republish(), "republish")
        self.spawn(self._introduce(), "introduce")
        if self.gossip.scope.scoped:
            self.spawn(self._sweep_fetched(), "fetched")
        if self.cfg.influx_url:
            self._start_influx()

    async def _listen(self, tls: ssl.SSLContext | None = None) -> None:
        app = build_app(self.http)
        guard = app[GUARD_KEY] = ConnectionGuard(self.metrics)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                    logger=ServerLog(self.metrics),
                                    keepalive_timeout=KEEPALIVE_S,  # header and idle limit
                                    auto_decompress=False)  # read_body inflates, bounded
        await self.runner.setup()
        host, port = self.cfg.listen_host_port()
        self.listener = await serve(self.runner, guard, host, port, ssl=tls)
        log.info("node %s (%s) listening on %s://%s:%d", self.cfg.name,
                 self.identity.agent_hex[:12], "https" if tls else "http", host, port)

    def _start_hardware(self) -> None:
        glue = HardwareGlue(self.cfg, self.store, self.charters, self.identity.agent, self.peers,
                            self.metrics, self.uptime, self)
        self.services.hardware, self.services.status = glue, glue.status
        self.clock.status = self.disk.status = glue.status
        self.journal.listeners.append(glue)
        self.spawn(glue.run(), "hardware")

    def _start_agent(self) -> None:
        agent = AgentLoop(self.cfg, self.identity.agent, self.store, self.charters,
                          self.journal.append, self.metrics, self.services.hardware,
                          self.services.status, sync=self.gossip)
        self.services.agent = agent
        agent.settler.attach(self.journal.listeners)  # new views and orders: books to re-read
        if self.services.hardware is not None:
            self.services.hardware.meter = agent.meter
        self.spawn(agent.run(), "agent")

    def _start_influx(self) -> None:
        exporter = InfluxExporter(self.cfg, self.identity.agent, self.store, self.charters,
                                  self.metrics, self.services.status)
        self.services.influx = exporter
        self.journal.listeners.append(exporter)
        self.spawn(exporter.run(), "influx")

    def request_stop(self, reason: str = "") -> None:
        """Ask the runner to stop the node cleanly; a reason means it stops on an error."""
        if reason and not self.stop_reason:
            self.stop_reason = reason
        self.stop_event.set()

    def spawn(self, coro, name: str) -> asyncio.Task:
        """Run `coro` as one of the node's tasks (cancelled by `stop`)."""
        task = asyncio.create_task(coro, name=name)
        self.tasks.append(task)
        return task

    async def _republish(self) -> None:
        while True:
            await asyncio.sleep(INFO_REPUBLISH_S)
            self.infos.refresh_own()
            self.peers.drop_expired(now_us())

    async def _sweep_fetched(self) -> None:
        """Drop the other grids' chains nobody read lately (node.p2p.fetched)."""
        while True:
            await asyncio.sleep(SWEEP_S)
            self.ondemand.sweep()

    async def _introduce(self) -> None:
        """Hand our genesis to each configured peer until it takes it: in a closed community a
        node answers only members, and a newly invited agent becomes one there this way."""
        first = self.store.chain_range(self.identity.agent, 0, 1)
        waiting = list(self.cfg.peers) if first else []
        delay = 1.0
        while waiting:
            for url in list(waiting):
                try:
                    await PeerClient(self.services.session, url).push(first)
                    waiting.remove(url)
                except PeerError as exc:
                    log.debug("could not hand our genesis to %s: %s", url, exc)
            if waiting:
                await asyncio.sleep(delay)
                delay = min(60.0, 2 * delay)

    async def stop(self) -> None:
        """Cancel the tasks, close the server and the session; writes finish, the store closes."""
        await cancel_all(self.tasks)
        await self.gossip.close()
        if self.listener is not None:
            self.listener.close()  # no new connections; cleanup closes the open ones
        if self.runner is not None:
            await self.runner.cleanup()
        if self.services.session is not None:
            await self.services.session.close()
        self.ondemand.close()  # other grids' fetched chains are deleted
        # Writes already submitted finish before the store closes.
        self.journal.close()
        self.store.close()
        log.info("node %s stopped", self.cfg.name)

    def uptime(self) -> float:
        """Seconds since the node was created."""
        return time.monotonic() - self.started


async def cancel_all(tasks: list[asyncio.Task], patience_s: float = 10.0) -> None:
    """Cancel `tasks` and wait until they end. A cancellation that arrives just as an
    `asyncio.wait_for` inside a task completes is lost on Python 3.11 (the task runs on), so
    the tasks still running are cancelled again every second; after `patience_s` they are
    named in the log and left behind rather than hang the stop."""
    pending = {t for t in tasks if not t.done()}
    deadline = time.monotonic() + patience_s
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
        if pending and time.monotonic() >= deadline:
            log.error("stopping: %d task(s) did not end when cancelled: %s", len(pending),
                      ", ".join(sorted(t.get_name() for t in pending)))
            return
    for task in tasks:  # retrieve outcomes so none is reported as never retrieved
        if task.done() and not task.cancelled():
            task.exception()
