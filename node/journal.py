"""The node's writes to its store: signing its own actions, taking in others', telling listeners.

Verification runs on a pool of threads, every write on one store thread; a new action (ours or
new to us) is handed to `push` (gossip's eager push) and to every listener's `on_new`. With
`workers` (`node.verifiers`, two cores or more), the signatures of a batch of PROCESS_MIN
actions or more are verified in other processes while a thread decodes the batch.

Before signing, `clock` (a `ClockWatch`) may refuse an order while our clock is off from the
peers', and an append waits up to CATCH_UP_S for the clock to pass our head's timestamp (it was
set back a little); beyond that it is refused, never stamped ahead of the clock. A full disk
(`disk`, a `DiskWatch`) refuses the append or the batch with `NotSigned("disk-full")`. The
readings and warrants refused either way are kept (up to MAX_UNSIGNED) and signed first, in
order, by the next append that succeeds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from ledger.actions import Action, decode_action
from ledger.chain import ClockBehindChain, SourceChain, now_us
from ledger.errors import BAD_TIME, Invalid
from ledger.precheck import Checked, decode_pass, signature_pass
from ledger.store import IngestResult, Store, gather, submit_precheck
from node.disk import DiskWatch
from node.errors import NotSigned
from node.p2p.clock import CLOCK_BEHIND_CHAIN, ClockWatch
from node.verifiers import VerifierProcesses

log = logging.getLogger(__name__)
CATCH_UP_S = 2.0  # how long an append waits for the clock to pass our head's timestamp
KEPT_TYPES = ("reading", "warrant")  # signed later when refused for the disk or the clock (the
MAX_UNSIGNED = 256  # agent retries its settlements itself; orders are stale by then)
# The smallest batch whose signatures go to the verifier processes: below, the round trip
# costs more than the threads lose to the GIL.
PROCESS_MIN = 64
# How long a batch for the processes waits for them to start. Meanwhile they take both cores
# (importing): pages verified in threads then would compete with them for the cores and leave
# them idle afterwards (a quarter of a 20,000-action copy went that way).
WARM_WAIT_S = 1.0


class Listener(Protocol):
    """A service told of every action new to the store (the hardware, the exporter)."""

    async def on_new(self, actions: list[Action]) -> None:
        """React to actions just stored; never raises into the journal."""


class Journal:
    """Appends this node's actions and ingests peers' batches (`push` passes new ones on)."""

    def __init__(self, store: Store, chain: SourceChain, metrics: Counter[str],
                 push: Callable[[list[Action]], None], clock: ClockWatch | None = None,
                 disk: DiskWatch | None = None,
                 workers: VerifierProcesses | None = None) -> None:
        self.store = store
        self.chain = chain
        self.metrics = metrics
        self.push = push
        self.clock = clock
        self.disk = disk
        self.unsigned: list[tuple[str, dict]] = []  # refused for a full disk, signed later
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="verify")
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="store")
        self.workers = workers
        self.listeners: list[Listener] = []
        # Told of the authors the store marked forked for the first time (the fork alarm).
        self.on_forked: Callable[[list[bytes]], None] | None = None

    async def append(self, type_: str, payload: dict) -> Action:
        """Sign and store our next action, then push it to a few peers at once; NotSigned when
        the clock or the disk does not allow it (see the module docstring)."""
        if self.clock is not None:
            self.clock.check_sign(type_)
        while self.unsigned:  # kept from a full disk: first, in order
            kept_type, kept = self.unsigned[0]
            await self._sign(kept_type, kept, keep=False)
            self.unsigned.pop(0)
            self.metrics["signed_late"] += 1
        return await self._sign(type_, payload, keep=True)

    async def _sign(self, type_: str, payload: dict, keep: bool) -> Action:
        loop = asyncio.get_running_loop()
        head = self.chain.head()
        if head is not None and 0 < head.ts - now_us() <= CATCH_UP_S * 1e6:
            await asyncio.sleep((head.ts - now_us()) / 1e6 + 0.001)  # never stamp ahead
        try:
            action = await loop.run_in_executor(self.writer, self.chain.append, type_, payload)
        except ClockBehindChain as exc:
            self._keep(type_, payload, keep)
            if self.clock is None:
                raise NotSigned(CLOCK_BEHIND_CHAIN, str(exc)) from None
            raise self.clock.behind_chain(exc.ahead_us) from None
        except Exception as exc:
            refused = self.disk.failed(exc, f"signing a {type_}") if self.disk else None
            if refused is None:
                raise
            self._keep(type_, payload, keep)
            raise refused from None
        if self.disk is not None:
            self.disk.wrote()
        if self.clock is not None:
            self.clock.signed()
        self.metrics["own_actions"] += 1
        self.push([action])
        await self._notify([action])
        return action

    def _keep(self, type_: str, payload: dict, keep: bool) -> None:
        """Keep a reading or warrant that could not be signed now, to be signed first later."""
        if keep and type_ in KEPT_TYPES and len(self.unsigned) < MAX_UNSIGNED:
            self.unsigned.append((type_, payload))

    def expect(self, count: int) -> None:
        """About `count` actions are on their way: start the verifier processes now if they
        will be used, so they are ready sooner (the first pages are verified in threads)."""
        if self.workers is not None and count >= PROCESS_MIN and not self.workers.ready():
            self.workers.warm()

    async def verify(self, items: list[tuple[bytes, bytes]], now: int) -> Checked:
        """The intrinsic checks of a batch (signatures included): on the verifier processes
        when the batch is large enough (the first such batch starts them, and waits up to
        WARM_WAIT_S for them), else spread over the verify pool."""
        workers = self.workers
        if workers is not None and len(items) >= PROCESS_MIN:
            if not workers.ready():
                starting = [asyncio.wrap_future(f) for f in workers.warm()]
                if starting:
                    await asyncio.wait(starting, timeout=WARM_WAIT_S,
                                       return_when=asyncio.FIRST_COMPLETED)
            if workers.ready():
                checked = await self._verify_with(workers, items, now)
                if checked is not None:
                    self.metrics["verified_in_processes"] += len(items)
                    return checked
                self.metrics["verify_process_failed"] += 1
        futures = submit_precheck(self.pool, items, now) if items else []
        await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        return gather(futures)

    async def _verify_with(self, workers: VerifierProcesses, items: list[tuple[bytes, bytes]],
                           now: int) -> Checked | None:
        """Signatures on the processes while a thread decodes; None if a process failed."""
        loop = asyncio.get_running_loop()
        asked = [asyncio.wrap_future(f) for f in workers.submit(items)]
        decoded = await loop.run_in_executor(self.pool, decode_pass, items, now)
        answers = await asyncio.gather(*asked)
        if any(a is None for a in answers):
            return None
        verdicts = b"".join(answers)
        return await loop.run_in_executor(self.pool, signature_pass, items, decoded, now, verdicts)

    async def ingest(self, items: list[tuple[bytes, bytes]], forward: bool = True,
                     checked: list | None = None) -> IngestResult:
        """Verify a batch on the thread pool (unless `checked` by `verify` already), write it on
        the store thread, react to it."""
        loop = asyncio.get_running_loop()
        now = now_us()
        if checked is None:
            checked = await self.verify(items, now)
        try:
            result = await loop.run_in_executor(
                self.writer, lambda: self.store.ingest(items, now, prechecked=checked)
            )
        except Exception as exc:
            refused = self.disk.failed(exc, f"storing {len(items)} action(s)") if self.disk \
                else None
            if refused is None:
                raise
            raise refused from None
        if self.disk is not None and (result.accepted or result.pending):
            self.disk.wrote()
        self._count_bad_time(items, result)
        self.metrics["actions_received"] += len(items)
        self.metrics["actions_accepted"] += result.accepted
        self.metrics["actions_duplicate"] += result.duplicate
        for _, reason in result.rejected:
            self.metrics[f"rejected:{reason}"] += 1
        if result.new and forward:
            self.push(result.new)
        if result.forked:
            self._forked(result.forked)
        for first, second in result.forks:
            await self._publish_warrant(first, second)
        if result.new:
            await self._notify(result.new)
        return result

    async def take_evidence(self, first: Action, second: Action, source: str) -> bool:
        """Keep checked fork evidence of a member (`Store.take_evidence`) on the store thread;
        True when it marked the author forked, which is then told to `on_forked`."""
        loop = asyncio.get_running_loop()
        new = await loop.run_in_executor(self.writer, self.store.take_evidence, first, second)
        if new:
            self.metrics["forks_learned"] += 1
            log.warning("fork: agent %s signed two actions at seq %d (evidence from %s)",
                        first.author.hex()[:12], first.seq, source)
            self._forked([first.author])
        return new

    def _forked(self, authors: list[bytes]) -> None:
        if self.on_forked is not None:
            try:
                self.on_forked(authors)
            except Exception:  # the alarm is best effort: the evidence is stored
                log.exception("could not raise the fork alarm")

    def _count_bad_time(self, items: list[tuple[bytes, bytes]], result: IngestResult) -> None:
        """Name the authors of the actions we rejected as bad-time (their clocks are ahead)."""
        if self.clock is None:
            return
        for index, reason in result.rejected:
            if reason != BAD_TIME:
                continue
            try:  # its signature was verified before its time was judged
                author = decode_action(*items[index], check_signature=False).author
            except Invalid:
                continue  # a ts that is no 64-bit integer: no author to name
            self.clock.peer_bad_time(author)

    async def _publish_warrant(self, first: Action, second: Action) -> None:
        self.metrics["forks_detected"] += 1
        log.warning("fork: agent %s signed two actions at seq %d; publishing a warrant",
                    first.author.hex()[:12], first.seq)
        if first.author == self.chain.identity.agent:
            return  # we do not warrant ourselves; the evidence is stored
        try:
            await self.append("warrant", {"evidence": [first.wire(), second.wire()]})
        except NotSigned as exc:  # reported where it was seen; a warrant refused for a full
            log.debug("warrant not signed now: %s", exc)  # disk is kept and signed later
        except Exception:  # a warrant is best effort: the evidence is already stored
            log.exception("could not publish a warrant")

    async def _notify(self, actions: list[Action]) -> None:
        for listener in self.listeners:
            try:
                await listener.on_new(actions)
            except Exception:
                log.exception("listener failed on new actions")

    def close(self) -> None:
        """Finish the writes already submitted, then stop the threads and the verifier
        processes (the store stays open)."""
        self.writer.shutdown(wait=True)
        self.pool.shutdown(wait=True)
        if self.workers is not None:
            self.workers.close()
