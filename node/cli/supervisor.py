"""The demo's watch over its nodes: a node process that dies while the demo runs is restarted.

A PicoGrid node is built to survive a crash: its store holds every action it signed, and on
start it catches up with its peers before it settles anything (`node.trading.agent`). So when
one of the demo's nodes dies (a crash, the kernel's OOM killer, someone's `kill -9`), the demo
says which one and how, starts it again on the same data directory and port after
`RESTART_DELAY_S`, and says when it answers again. A node that keeps dying (more than
`MAX_RESTARTS` restarts within `WINDOW_S`) is a fault a restart will not mend: the demo gives
up with `NodeKeepsDying`, which names the node and its log.

The supervisor never blocks for long: `check` looks at every node once (a dead one is only
noted, its restart is due a little later), `sleep` waits while checking every `TICK_S`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from node.cli.launcher import DemoNode
from node.cli.processes import answers

RESTART_DELAY_S = 1.0  # a dead node is started again this long after its death is seen
MAX_RESTARTS = 3  # restarts of one node allowed within WINDOW_S; one more death: give up
WINDOW_S = 60.0
TICK_S = 0.2  # how often `sleep` looks at the nodes
SLOW_START_S = 30.0  # a restarted node silent this long is named (once); the demo goes on


class NodeKeepsDying(Exception):
    """A node died more than `MAX_RESTARTS` times within `WINDOW_S`: the message says which."""


def how_it_ended(returncode: int) -> str:
    """A process's end in words: 'killed by SIGKILL', 'exited with code 1'."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


@dataclass
class _Watch:
    """What the supervisor knows of one node."""

    deaths: list[float] = field(default_factory=list)  # monotonic times, within WINDOW_S
    ends: list[str] = field(default_factory=list)  # how each death happened, for the summary
    died_at: float | None = None  # the latest death not yet answered by a live node
    restart_at: float | None = None  # a restart is due at this time
    started_at: float | None = None  # restarted, not answering yet
    slow_said: bool = False


class Supervisor:
    """Watches `nodes`; `start(node)` starts one again (it sets `node.proc`); `say` prints."""

    def __init__(
        self,
        nodes: Sequence[DemoNode],
        start: Callable[[DemoNode], None],
        say: Callable[[str], None] = print,
        *,
        delay_s: float = RESTART_DELAY_S,
        max_restarts: int = MAX_RESTARTS,
        window_s: float = WINDOW_S,
    ) -> None:
        self.nodes = list(nodes)
        self.start = start
        self.say = say
        self.delay_s = delay_s
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.watch = {id(n): _Watch() for n in self.nodes}

    def check(self) -> None:
        """Look at every node once: note a death, restart a node whose delay is over, say when a
        restarted node answers. Raises `NodeKeepsDying`."""
        for node in self.nodes:
            w = self.watch[id(node)]
            now = time.monotonic()
            if w.restart_at is not None:
                if now >= w.restart_at:
                    self._restart(node, w)
            elif node.proc is not None and node.proc.poll() is not None:
                self._died(node, w, now)
            elif w.started_at is not None:
                self._starting(node, w, now)

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, looking at the nodes every `TICK_S` meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(TICK_S, left))

    def up(self, node: DemoNode) -> bool:
        """Whether `node` is running and not in the middle of a restart."""
        w = self.watch[id(node)]
        return w.died_at is None and node.proc is not None and node.proc.poll() is None

    def url(self) -> str:
        """The URL of the first node that is up (the first node's while none is)."""
        return next((n.url for n in self.nodes if self.up(n)), self.nodes[0].url)

    def restarts(self) -> dict[str, list[str]]:
        """Per node that died during the demo: how each of its deaths happened."""
        return {n.name: self.watch[id(n)].ends for n in self.nodes if self.watch[id(n)].ends}

    def _died(self, node: DemoNode, w: _Watch, now: float) -> None:
        assert node.proc is not None
        how = how_it_ended(node.proc.returncode)
        log = node.dir / "node.log"
        w.deaths = [t for t in w.deaths if now - t < self.window_s] + [now]
        w.ends.append(how)
        w.started_at = None
        if len(w.deaths) > self.max_restarts:
            raise NodeKeepsDying(
                f"node {node.name} died {len(w.deaths)} times within {self.window_s:.0f} s "
                f"(last: {how}); giving up. See {log}"
            )
        w.died_at = w.died_at if w.died_at is not None else now
        w.restart_at = now + self.delay_s
        self.say(
            f"node {node.name} {how} (pid {node.proc.pid}, port {node.port}); "
            f"restarting it in {self.delay_s:g} s"
        )

    def _restart(self, node: DemoNode, w: _Watch) -> None:
        self.start(node)
        w.restart_at = None
        w.started_at = time.monotonic()
        w.slow_said = False
        pid = node.proc.pid if node.proc is not None else "?"
        self.say(f"node {node.name} restarted (pid {pid}); it catches up before it settles")

    def _starting(self, node: DemoNode, w: _Watch, now: float) -> None:
        if answers(node.url, timeout=0.5):
            down = now - (w.died_at if w.died_at is not None else now)
            self.say(f"node {node.name} is back: {node.url} answers, {down:.1f} s after it died")
            w.died_at = w.started_at = None
        elif not w.slow_said and w.started_at is not None and now - w.started_at > SLOW_START_S:
            w.slow_said = True
            self.say(
                f"node {node.name} does not answer {SLOW_START_S:.0f} s after its restart; "
                f"its log:\n    {node.dir / 'node.log'}"
            )
