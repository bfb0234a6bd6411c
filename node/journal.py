"""The node's writes to its store: signing its own actions, taking in others', telling listeners.

Verification runs on a pool of threads, every write on one store thread; a new action (ours or
new to us) is handed to `push` (gossip's eager push) and to every listener's `on_new`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from ledger.actions import Action
from ledger.chain import SourceChain, now_us
from ledger.store import IngestResult, Store, gather, submit_precheck

log = logging.getLogger(__name__)


class Listener(Protocol):
    """A service told of every action new to the store (the hardware, the exporter)."""

    async def on_new(self, actions: list[Action]) -> None:
        """React to actions just stored; never raises into the journal."""


class Journal:
    """Appends this node's actions and ingests peers' batches (`push` passes new ones on)."""

    def __init__(self, store: Store, chain: SourceChain, metrics: Counter[str],
                 push: Callable[[list[Action]], None]) -> None:
        self.store = store
        self.chain = chain
        self.metrics = metrics
        self.push = push
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="verify")
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="store")
        self.listeners: list[Listener] = []

    async def append(self, type_: str, payload: dict) -> Action:
        """Sign and store our next action, then push it to a few peers at once."""
        loop = asyncio.get_running_loop()
        action = await loop.run_in_executor(self.writer, self.chain.append, type_, payload)
        self.metrics["own_actions"] += 1
        self.push([action])
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
            self.push(result.new)
        for first, second in result.forks:
            await self._publish_warrant(first, second)
        if result.new:
            await self._notify(result.new)
        return result

    async def _publish_warrant(self, first: Action, second: Action) -> None:
        self.metrics["forks_detected"] += 1
        log.warning("fork: agent %s signed two actions at seq %d; publishing a warrant",
                    first.author.hex()[:12], first.seq)
        if first.author == self.chain.identity.agent:
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

    def close(self) -> None:
        """Finish the writes already submitted, then stop the threads (the store stays open)."""
        self.writer.shutdown(wait=True)
        self.pool.shutdown(wait=True)
