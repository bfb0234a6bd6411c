"""The running agent: one façade over the store, the source chain, gossip and the HTTP server.

    node = Node(load_config(dir))
    await node.start()      # listen, gossip, run the agent through the market intervals
    ...
    await node.stop()       # in-flight writes committed, then everything closed
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
from aiohttp import web

from ledger.actions import Action
from ledger.agentinfo import AgentInfo, make_agent_info
from ledger.chain import SourceChain, now_us
from ledger.charter import Charter, CharterError, parse_charter
from ledger.keys import Identity, load_identity
from ledger.membrane import Membrane
from ledger.store import IngestResult, Store, gather, submit_precheck
from node.config import NodeConfig
from node.p2p.gossip import Gossip
from node.p2p.peers import PeerTable

log = logging.getLogger("picogrid.node")
VERSION = "0.1.0"
INFO_LIFETIME_US = 30 * 60 * 1_000_000
INFO_REPUBLISH_S = 10 * 60


class Node:
    def __init__(self, cfg: NodeConfig, identity: Identity | None = None) -> None:
        self.cfg = cfg
        self.identity = identity or load_identity(cfg.key_path)
        self.admin = bytes.fromhex(cfg.admin)
        self.store = Store(cfg.store_path)
        self.charters: list[Charter] = []
        for signed in self.store.charters():
            try:
                self.charters.append(parse_charter(signed, self.admin))
            except CharterError as exc:  # never stored unless valid; a damaged file is loud
                log.error("stored charter refused: %s", exc)
        self.store.membrane = self.membrane()
        self.chain = SourceChain(self.store, self.identity)
        self.peers = PeerTable(own_url=cfg.url, own_agent=self.identity.agent)
        for url in cfg.peers:
            self.peers.add_url(url, bootstrap=True)
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="verify")
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="store")
        self.metrics: Counter[str] = Counter()
        self.gossip = Gossip(self)
        self.session: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None
        self.tasks: list[asyncio.Task] = []
        self.started = time.monotonic()
        self.own_info: AgentInfo | None = None
        self.listeners: list[Any] = []  # objects with `async on_new(actions)` (agent loop, ...)
        self.agent: Any = None
        self.stop_event = asyncio.Event()  # set by signals (picogrid run) or a critical error
        self.stop_reason = ""
        self.managed = False  # True when a runner waits on `stop_event` (picogrid run does)

    # -- community -----------------------------------------------------------------------

    @property
    def charter(self) -> Charter | None:
        return max(self.charters, key=lambda c: c.version) if self.charters else None

    def membrane(self) -> Membrane:
        c = self.charter
        if c is None:
            return Membrane(self.cfg.community, self.admin, True)
        return Membrane(self.cfg.community, self.admin, c.open, frozenset(c.members))

    def accept_charter(self, signed: bytes) -> Charter:
        """Take a newer charter signed by the pinned admin key; CharterError otherwise."""
        charter = parse_charter(signed, self.admin)
        if charter.community != self.cfg.community:
            raise CharterError(f"charter is for community {charter.community!r}")
        current = self.charter
        if current is not None and charter.version <= current.version:
            raise CharterError(f"charter version {charter.version} is not newer than "
                               f"{current.version}")
        self.store.save_charter(charter.version, signed)
        self.charters.append(charter)
        self.store.membrane = self.membrane()
        self.metrics["charters_accepted"] += 1
        log.info("charter version %d accepted", charter.version)
        return charter

    # -- chain -----------------------------------------------------------------------------

    async def append(self, type_: str, payload: dict) -> Action:
        """Sign and store our next action, then push it to a few peers at once."""
        loop = asyncio.get_running_loop()
        action = await loop.run_in_executor(self.writer, self.chain.append, type_, payload)
        self.metrics["own_actions"] += 1
        self.gossip.eager_push([action])
        await self._notify([action])
        return action

    async def verify(self, items: list[tuple[bytes, bytes]], now: int) -> list:
        """The intrinsic checks of a batch (signatures included), spread over the verify pool."""
        futures = submit_precheck(self.pool, items, now) if items else []
        await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        return gather(futures)

    async def ingest(self, items: list[tuple[bytes, bytes]], forward: bool = True,
                     checked: list | None = None) -> IngestResult:
        """Verify a batch on the thread pool (unless `checked` by `verify` already), write it on
        the store thread, react to it."""
        loop = asyncio.get_running_loop()
        now = now_us()
        if checked is None:
            checked = await self.verify(items, now)
        result = await loop.run_in_executor(
            self.writer, lambda: self.store.ingest(items, now, prechecked=checked)
        )
        self.metrics["actions_received"] += len(items)
        self.metrics["actions_accepted"] += result.accepted
        self.metrics["actions_duplicate"] += result.duplicate
        for _, reason in result.rejected:
            self.metrics[f"rejected:{reason}"] += 1
        if result.new and forward:
            self.gossip.eager_push(result.new)
        for first, second in result.forks:
            await self._publish_warrant(first, second)
        if result.new:
            await self._notify(result.new)
        return result

    async def _publish_warrant(self, first: Action, second: Action) -> None:
        self.metrics["forks_detected"] += 1
        log.warning("fork: agent %s signed two actions at seq %d; publishing a warrant",
                    first.author.hex()[:12], first.seq)
        if first.author == self.identity.agent:
            return  # we do not warrant ourselves; the evidence is stored
        try:
            await self.append("warrant", {"evidence": [first.wire(), second.wire()]})
        except Exception:  # a warrant is best effort: the evidence is already stored
            log.exception("could not publish a warrant")

    async def _notify(self, actions: list[Action]) -> None:
        for listener in self.listeners:
            try:
                await listener.on_new(actions)
            except Exception:
                log.exception("listener failed on new actions")

    # -- agent infos ---------------------------------------------------------------------

    def refresh_own_info(self) -> AgentInfo:
        self.own_info = make_agent_info(
            self.identity, self.cfg.community, self.cfg.url, now_us(), INFO_LIFETIME_US
        )
        return self.own_info

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        from node.http.server import ServerLog, build_app  # the HTTP layer sits on top of the node

        self.refresh_own_info()
        self.session = aiohttp.ClientSession()
        app = build_app(self)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                    logger=ServerLog(self.metrics),
                                    auto_decompress=False)  # read_body inflates, bounded
        await self.runner.setup()
        host, port = self.cfg.listen_host_port()
        site = web.TCPSite(self.runner, host, port, reuse_address=True)
        await site.start()
        log.info("node %s (%s) listening on http://%s:%d", self.cfg.name,
                 self.identity.agent_hex[:12], host, port)
        from node.devices.hardware import start_hardware  # node.status, status LED, LEDs, meter

        start_hardware(self)
        self.tasks.append(asyncio.create_task(self.gossip.run(), name="gossip"))
        from node.trading.agent import AgentLoop  # the market sits above the ledger plumbing

        self.agent = AgentLoop(self)
        self.tasks.append(asyncio.create_task(self.agent.run(), name="agent"))
        self.tasks.append(asyncio.create_task(self._republish(), name="republish"))
        if self.cfg.influx_url:
            from node.observability.influx import start_influx  # readings, trades, KPIs to InfluxDB

            start_influx(self)

    def request_stop(self, reason: str = "") -> None:
        """Ask the runner to stop the node cleanly; a reason means it stops on an error."""
        if reason and not self.stop_reason:
            self.stop_reason = reason
        self.stop_event.set()

    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self.tasks.append(task)
        return task

    async def _republish(self) -> None:
        while True:
            await asyncio.sleep(INFO_REPUBLISH_S)
            self.refresh_own_info()
            self.peers.drop_expired(now_us())

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.gossip.close()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.session is not None:
            await self.session.close()
        # Writes already submitted finish before the store closes.
        self.writer.shutdown(wait=True)
        self.pool.shutdown(wait=True)
        self.store.close()
        log.info("node %s stopped", self.cfg.name)

    def uptime(self) -> float:
        return time.monotonic() - self.started
