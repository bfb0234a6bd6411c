"""Real `picogrid` processes on 127.0.0.1, for tests and benchmarks (a helper, not a test).

    with Cluster(tmp_path) as c:
        a = c.found("A")                          # `picogrid init`: founds the community
        c.start(a)                                # `picogrid run`; returns once it answers
        b = c.join("B", via=a, grid="g2")         # `picogrid init --join A --admin ...`
        c.start(b, peers=[a])
        wait_until(lambda: stored(b.url) >= 2, 10, "B holds both chains")
    # every process the cluster started is stopped (SIGTERM, then SIGKILL) when the block ends

Processes are started and stopped by `node.cli.processes`, the launcher that `picogrid demo`
uses too. Everything runs as users run it: the console script next to this Python, real data
directories, real SQLite files, loopback only, one free port per node. A node's stdout and
stderr go to `run.out` / `run.err` in its directory (appended across restarts); `Proc.logs()`
reads them, and every timeout raised here carries them, so a failing test shows what the node
said.

`Author` is a community member without a node: it signs its own chain, so tests can make traffic
that no market loop of a node can interfere with. Its actions go into a running node with
`post_actions(url, actions)` (the gossip endpoint) or into a stopped node's store with `seed`.

The pieces, for tests of your own:
- agents: `init_agent` (`picogrid init`), `agent_from_dir`, `Agent` (dir, port, url, agent id,
  `identity()`, `config()`, `admin_hex`), `picogrid(*args)` for any other command;
- processes: `start` -> `Proc` (`terminate`, `kill`, `logs`, `alive`), `sigterm`, `sigkill`,
  `Cluster` (`found`, `join`, `start`, `start_many`, `close`);
- HTTP: `request`, `get_json`, `get_msgpack`, `post_msgpack`, `post_actions`, `heads`,
  `head_seq`, `stored`, `agents`;
- data: `Author`, `invited_author`, `seed` and `append_own` (stopped nodes only);
- time: `wait_until(predicate, timeout)` (every wait here has a deadline), `free_port`.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeagent import HOST, PICOGRID, Agent, agent_from_dir, free_port, init_agent, picogrid
from nodedata import Author, append_own, invited_author, seed, slug
from nodehttp import (
    Response,
    agents,
    get_json,
    get_msgpack,
    head_seq,
    heads,
    owner_headers,
    post_actions,
    post_msgpack,
    request,
    signed_request,
    stored,
)

from node.cli.processes import answers, run_argv, spawn, stop_processes

__all__ = [  # the toolkit in one import (also from nodeagent, nodehttp, nodedata)
    "Agent",
    "Author",
    "Cluster",
    "Proc",
    "Response",
    "agent_from_dir",
    "agents",
    "append_own",
    "free_port",
    "get_json",
    "get_msgpack",
    "head_seq",
    "heads",
    "init_agent",
    "invited_author",
    "owner_headers",
    "picogrid",
    "post_actions",
    "post_msgpack",
    "request",
    "seed",
    "signed_request",
    "sigkill",
    "sigterm",
    "slug",
    "start",
    "stored",
    "wait_until",
]

START_TIMEOUT = 20.0


# -- small utilities ---------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], Any],
    timeout: float,
    message: str = "",
    interval: float | Callable[[], float] = 0.05,
    logs: Callable[[], str] | None = None,
) -> Any:
    """Call `predicate` until it returns something truthy (returned) or `timeout` s pass.

    Exceptions inside `predicate` (a node still starting, a connection refused) count as "not
    yet". On timeout an AssertionError names `message`, the last exception and, when given,
    `logs()`.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # not yet
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_exc!r}" if last_exc else ""
            tail = f"\n--- logs ---\n{logs()}" if logs else ""
            raise AssertionError(f"timed out after {timeout} s: {message}{detail}{tail}")
        time.sleep(interval() if callable(interval) else interval)


# -- running nodes --------------------------------------------------------------------------------


@dataclass
class Proc:
    """One `picogrid run` process."""

    agent: Agent
    popen: subprocess.Popen
    argv: list[str]

    @property
    def url(self) -> str:
        return self.agent.url

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def logs(self) -> str:
        parts = []
        for name in ("run.out", "run.err"):
            path = self.agent.dir / name
            if path.exists():
                parts.append(
                    f"[{self.agent.name} {name}]\n{path.read_text(errors='replace')[-6000:]}"
                )
        return "\n".join(parts)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise AssertionError(
                    f"{self.agent.name} exited {self.popen.returncode}\n{self.logs()}"
                )
            if answers(self.url):
                return
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.agent.name} did not answer within {timeout} s\n{self.logs()}"
                )
            time.sleep(0.05)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait for the exit code (SIGKILL if it overstays `timeout`)."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
                raise AssertionError(f"{self.agent.name} ignored SIGTERM\n{self.logs()}") from None
        return self.popen.returncode

    def kill(self) -> int:
        """SIGKILL: no chance to clean up, as when the power goes."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        return self.popen.wait(10)

    def stop_quietly(self) -> None:
        """For finalizers: SIGTERM, then SIGKILL; never raises."""
        try:
            stop_processes([self.popen], timeout=5)
        except Exception:
            pass


def sigterm(proc: Proc, timeout: float = 15.0) -> int:
    return proc.terminate(timeout)


def sigkill(proc: Proc) -> int:
    return proc.kill()


def start(
    agent: Agent | str | Path,
    peers: Iterable[Agent | str] = (),
    round_ms: int | None = 200,
    rate_limit: int | None = None,
    verbose: bool = False,
    extra: Iterable[str] = (),
    wait: bool = True,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> Proc:
    """`picogrid run` the agent on its port; returns once `/v1/info` answers (unless `wait`).

    `agent` is an Agent or a data directory (then `port`, or the configured one, is used). The
    caller owns the process: stop it (`Proc.terminate`, `Proc.kill`) or start it through a
    `Cluster`, which stops all of its processes at the end.
    """
    if not isinstance(agent, Agent):
        agent = agent_from_dir(agent, port)
    argv = run_argv(
        agent.dir,
        program=(PICOGRID,),
        listen=f"{HOST}:{agent.port}",
        peers=[peer.url if isinstance(peer, Agent) else peer for peer in peers],
        round_ms=round_ms,
        rate_limit=rate_limit,
        verbose=verbose,
        extra=extra,
    )
    popen = spawn(argv, agent.dir / "run.out", agent.dir / "run.err", env)
    proc = Proc(agent, popen, argv)
    if wait:
        try:
            proc.wait_ready()
        except BaseException:
            proc.stop_quietly()
            raise
    return proc


# -- clusters -------------------------------------------------------------------------------------


class Cluster:
    """Agents of one community under `root`, and the processes running them.

    Use it as a context manager (or call `close()` in a finalizer): every process it started is
    stopped at the end, whatever happened.
    """

    def __init__(self, root: Path, community: str = "c1", round_ms: int = 200) -> None:
        self.root = Path(root)
        self.community = community
        self.round_ms = round_ms
        self.procs: list[Proc] = []
        self.founder: Agent | None = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def found(self, name: str = "A", grid: str = "g1", **kw: Any) -> Agent:
        agent = init_agent(self.root, name, grid=grid, community=self.community, **kw)
        self.founder = self.founder or agent
        return agent

    def join(self, name: str, via: Agent | None = None, grid: str = "g1", **kw: Any) -> Agent:
        via = via or self.founder
        assert via is not None, "found the community first"
        kw.setdefault("admin", via.admin_hex)
        return init_agent(self.root, name, grid=grid, community=self.community, join=via, **kw)

    def start(
        self, agent: Agent, peers: Iterable[Agent | str] = (), wait: bool = True, **kw: Any
    ) -> Proc:
        """Start the agent's node, held by the cluster at once; returns once it answers (unless
        `wait`: then call `Proc.wait_ready`)."""
        kw.setdefault("round_ms", self.round_ms)
        proc = start(agent, peers, wait=False, **kw)
        self.procs.append(proc)
        if wait:
            proc.wait_ready()
        return proc

    def start_many(
        self, agents: list[Agent], peers: Iterable[Agent | str] = (),
        ready_timeout: float = START_TIMEOUT, **kw: Any
    ) -> list[Proc]:
        """Start several nodes at once, then wait until each answers (`ready_timeout` each)."""
        kw.setdefault("round_ms", self.round_ms)
        peers = list(peers)
        procs = []
        for agent in agents:
            proc = start(agent, [p for p in peers if p is not agent], wait=False, **kw)
            self.procs.append(proc)
            procs.append(proc)
        for proc in procs:
            proc.wait_ready(ready_timeout)
        return procs

    def logs(self) -> str:
        return "\n".join(p.logs() for p in self.procs)

    def close(self) -> None:
        """SIGTERM every process started here, then SIGKILL those that overstay; never raises."""
        try:
            stop_processes([p.popen for p in self.procs], timeout=10)
        except Exception:
            pass
