"""Signatures verified in other processes, so that they do not wait for this one's GIL.

PyNaCl releases the GIL while it verifies, but everything around a verification (decoding,
placing, writing, HTTP) holds it, and the verify threads and the rest of the node then take turns
more than they run side by side. `VerifierProcesses` keeps one child Python per core (at most
MAX_PROCESSES) that does nothing but `ledger.signatures.signature_verdicts`: it reads a batch of
`[action_bytes, signature]` pairs and answers one byte per pair. The node decodes the same batch
meanwhile and takes the verdicts in `signature_pass`, so every signature is still checked, once,
and an action is judged exactly as by `check_intrinsic`.

Each child has a thread of the node that talks to it. The thread keeps up to DEPTH requests in
the child's hands: the next one is in its stdin before it answers the last, so the child never
waits for this process's GIL between two requests (it waited 4-9 % of a copy when the thread
sent a request only after reading the answer). Requests are taken from one queue, so whichever
child is free takes the next.

A child is started on first use (or by `warm`), by its thread, and lives until the node stops or
it has had nothing to do for a minute (`node.verifier_child`). It learns of the node's end by
the end of its stdin: closed by `close`, or by the kernel when the node dies, even by SIGKILL,
so no child outlives its node. A child that fails (it died, answered nonsense) is
stopped, the batch is verified in the node instead (`None` from `submit`'s futures), and the
next batch starts another one; after MAX_FAILURES failures in a row the processes are given up
for the node's life. On one core none are started (`for_this_machine` is None).

The child is `node.verifier_child`, which says how they talk.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from queue import Empty, SimpleQueue

import msgpack

from node import verifier_child
from node.errors import UserError
from node.verifier_child import HEADER, READY

log = logging.getLogger(__name__)

MAX_PROCESSES = 4
CHILD = Path(verifier_child.__file__).resolve()  # run as a script: see node.verifier_child

START_TIMEOUT_S = 20.0  # a child that is not ready by then counts as failed
MAX_FAILURES = 3  # failures in a row after which the processes are not used again
CHUNK = 250  # pairs per request: several per batch, so every child stays busy
DEPTH = 2  # requests a child holds at once: one it verifies, the next waiting in its stdin
WARM = object()  # in place of a chunk: a request that only starts the thread's child


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class VerifierProcesses:
    """Child processes that verify signatures; `submit` from any thread, `close` once."""

    def __init__(self, count: int) -> None:
        self.count = count
        # Requests: (future, chunk), WARM (start your child) or None (leave); one for all threads.
        self._requests: SimpleQueue = SimpleQueue()
        self._threads: list[threading.Thread] = []
        # `_gate` orders requests and `close` (none is queued after it); `_lock` guards the
        # children, and is held while one starts, so the event loop never waits for a start.
        self._gate = threading.Lock()
        self._lock = threading.Lock()
        self._children: set[subprocess.Popen] = set()  # every child not stopped yet ...
        self._started: set[subprocess.Popen] = set()  # ... and those that said they are ready
        self._closed = False
        self._failures = 0
        self._warm: list[Future] = []  # the children being started by `warm`

    @classmethod
    def for_this_machine(cls, extra: dict | None = None) -> VerifierProcesses | None:
        """One child per core, or None on a single core (the verify threads suffice there);
        `[node] verify_processes` in the config (`extra`) sets the number, 0 for none."""
        value = (extra or {}).get("node", {}).get("verify_processes")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= MAX_PROCESSES):
            raise UserError(f"node.verify_processes must be an integer from 0 to "
                            f"{MAX_PROCESSES}, got {value!r}")
        n = cores() if value is None else value
        if value is None and n < 2:
            return None
        return cls(min(n, MAX_PROCESSES)) if n >= 1 and sys.executable else None

    @property
    def usable(self) -> bool:
        """Not closed, and not given up after repeated failures."""
        return not self._closed and self._failures < MAX_FAILURES

    def ready(self) -> bool:
        """At least one child has started and still runs (the others start on their first
        request)."""
        with self._lock:
            return self.usable and any(c.poll() is None for c in self._started)

    def warm(self) -> list[Future]:
        """Start the children in the background, without waiting (again only once the last
        start ended): futures that end as each child has started or failed to."""
        with self._gate:
            if not self.usable:
                return []
            self._spawn_threads()
            if all(f.done() for f in self._warm):
                self._warm = [Future() for _ in range(self.count)]
                for future in self._warm:
                    self._requests.put((future, WARM))
            return list(self._warm)

    def submit(self, items: list[tuple[bytes, bytes]]) -> list[Future]:
        """Verdicts of `items` in chunks: futures of bytes (`signature_verdicts` of each chunk,
        in order), or of None where a child failed."""
        size = max(1, min(CHUNK, -(-len(items) // self.count)))
        futures = [Future() for _ in range(0, len(items), size)]
        with self._gate:
            if not self.usable:
                for future in futures:
                    future.set_result(None)
                return futures
            self._spawn_threads()
            for future, i in zip(futures, range(0, len(items), size), strict=True):
                self._requests.put((future, items[i : i + size]))
        return futures

    def _spawn_threads(self) -> None:
        """The threads that talk to the children, once (under `_gate`)."""
        while len(self._threads) < self.count:
            thread = threading.Thread(target=self._serve, daemon=True,
                                      name=f"verifier-{len(self._threads)}")
            thread.start()
            self._threads.append(thread)

    def _serve(self) -> None:
        """One thread's life: its child gets up to DEPTH requests at once; their answers are
        read in order, each into its future."""
        child: subprocess.Popen | None = None
        sent: deque[tuple[Future, int]] = deque()  # what the child has, oldest first
        while True:
            try:  # wait for a request only when the child has none
                request = self._requests.get(block=not sent)
            except Empty:
                request = ()  # none waits: read the oldest answer
            if request is None:
                break
            if request:
                future, chunk = request
                if child is not None and child.poll() is not None:  # exited: idle, or killed
                    if sent:  # with requests in hand: none of their answers will come
                        self._lost(child, "exited", sent)
                    else:
                        self._forget(child)
                    child = None
                if child is None:  # never another child while `sent` awaits this one's answers
                    child = self._start()
                if chunk is WARM:
                    future.set_result(child is not None)
                    continue
                if child is None:
                    future.set_result(None)
                    continue
                try:
                    body = msgpack.packb(chunk, use_bin_type=True)
                    child.stdin.write(len(body).to_bytes(HEADER, "big") + body)
                    child.stdin.flush()
                except (OSError, ValueError):
                    future.set_result(None)
                    self._lost(child, "took no request", sent)
                    child = None
                    continue
                sent.append((future, len(chunk)))
                if len(sent) < DEPTH:
                    continue  # another request first, if one waits
            future, size = sent.popleft()
            try:
                answer = _read_frame(child.stdout)
            except (OSError, ValueError):
                answer = None
            if answer is None or len(answer) != size:
                future.set_result(None)
                self._lost(child, "answered no verdicts", sent)
                child = None
                continue
            self._failures = 0
            future.set_result(answer)
        for future, _ in sent:  # closed: the child is being stopped
            future.set_result(None)

    def _start(self) -> subprocess.Popen | None:
        """A new child, ready; None when none can be had."""
        if not self.usable:
            return None
        env = {**os.environ, "PYTHONPATH": _child_path()}
        with self._lock:  # held by the set at once, so that `close` ends a child still starting
            if self._closed:
                return None
            try:
                child = subprocess.Popen(
                    [sys.executable, "-S", str(CHILD)], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, env=env, close_fds=True, process_group=0,
                )
            except OSError as exc:
                self._failures += 1
                log.warning("cannot start a verifier process: %s", exc)
                return None
            self._children.add(child)
        try:
            started = select.select([child.stdout], [], [], START_TIMEOUT_S)[0] \
                and child.stdout.read(1) == READY
        except (OSError, ValueError):  # closed by `close` meanwhile
            started = False
        if not started:
            self._failed(child, "did not start")
            return None
        with self._lock:
            self._started.add(child)
        return child

    def _lost(self, child: subprocess.Popen, what: str, sent: deque) -> None:
        """The child failed with the requests `sent` in its hands: each gets None (verified in
        the node instead)."""
        self._failed(child, what)
        while sent:
            sent.popleft()[0].set_result(None)

    def _failed(self, child: subprocess.Popen, what: str) -> None:
        self._failures += 1
        if not self._closed:
            log.warning("a verifier process %s (exit %s); verifying in the node instead%s", what,
                        child.poll(), "" if self.usable else " from now on")
        self._forget(child)
        _stop(child)

    def _forget(self, child: subprocess.Popen) -> None:
        with self._lock:
            self._children.discard(child)
            self._started.discard(child)

    def close(self) -> None:
        """End every child (EOF on its stdin: it answers the requests it has, then exits), then
        the threads that talk to them; requests not answered get None."""
        with self._gate:
            self._closed = True
            threads = list(self._threads)
        with self._lock:  # a child started before this is stopped below; none starts after
            children, self._children, self._started = list(self._children), set(), set()
        for child in children:
            _stop(child)
        for _ in threads:
            self._requests.put(None)
        for thread in threads:
            thread.join()
        while True:  # requests that no thread took
            try:
                request = self._requests.get_nowait()
            except Empty:
                return
            if request:
                request[0].set_result(None)


def _child_path() -> str:
    """The child's PYTHONPATH: the project's root (it imports `ledger.signatures`), then this
    process's own path, site packages included, which `-S` leaves out."""
    root = str(CHILD.parent.parent)
    return os.pathsep.join(dict.fromkeys([root, *(p for p in sys.path if p and os.path.exists(p))]))


def _stop(child: subprocess.Popen) -> None:
    """Close its stdin (the child exits), wait a little, kill it if it lingers."""
    try:
        child.stdin.close()
    except OSError:
        pass
    try:
        child.wait(2)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    try:
        child.stdout.close()
    except OSError:
        pass


def _read_frame(stream) -> bytes | None:
    header = stream.read(HEADER)
    if len(header) != HEADER:
        return None
    size = int.from_bytes(header, "big")
    body = stream.read(size)
    return body if len(body) == size else None
