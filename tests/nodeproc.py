"""Real `picogrid` processes on 127.0.0.1, for tests and benchmarks (a helper, not a test).

    with Cluster(tmp_path) as c:
        a = c.found("A")                          # `picogrid init`: founds the community
        c.start(a)                                # `picogrid run`; returns once it answers
        b = c.join("B", via=a, grid="g2")         # `picogrid init --join A --admin ...`
        c.start(b, peers=[a])
        wait_until(lambda: stored(b.url) >= 2, 10, "B holds both chains")
    # every process the cluster started is stopped (SIGTERM, then SIGKILL) when the block ends

Everything runs as users run it: the console script next to this Python, real data directories,
real SQLite files, loopback only, one free port per node. A node's stdout and stderr go to
`run.out` / `run.err` in its directory (appended across restarts); `Proc.logs()` reads them, and
every timeout raised here carries them, so a failing test shows what the node said.

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

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgpack

from ledger.actions import Action, sign_action
from ledger.chain import SourceChain, now_us
from ledger.keys import Identity, load_identity
from ledger.membrane import Membrane, make_invite
from ledger.store import Store

PICOGRID = str(Path(sys.executable).with_name("picogrid"))
HOST = "127.0.0.1"
START_TIMEOUT = 20.0


# -- small utilities ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(
    predicate: Callable[[], Any],
    timeout: float,
    message: str = "",
    interval: float = 0.05,
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
        time.sleep(interval)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "agent"


# -- HTTP (synchronous, stdlib) ------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def msgpack(self) -> Any:
        return msgpack.unpackb(self.body, raw=False, strict_map_key=False)


def request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Response:
    """One HTTP request; any status is returned, never raised. Connection errors are raised."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        chunked = (headers or {}).get("Transfer-Encoding") == "chunked"
        conn.request(method, path or "/", body=body, headers=headers or {}, encode_chunked=chunked)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def get_json(url: str, timeout: float = 5.0) -> Any:
    """GET a JSON document; AssertionError unless the answer is 200."""
    resp = request("GET", url, timeout=timeout)
    if resp.status != 200:
        raise AssertionError(f"GET {url}: HTTP {resp.status} {resp.body[:300]!r}")
    return resp.json()


def get_msgpack(url: str, timeout: float = 5.0) -> Any:
    resp = request("GET", url, timeout=timeout)
    if resp.status != 200:
        raise AssertionError(f"GET {url}: HTTP {resp.status} {resp.body[:300]!r}")
    return resp.msgpack()


def post_msgpack(url: str, value: Any, timeout: float = 10.0) -> Response:
    body = value if isinstance(value, bytes) else msgpack.packb(value, use_bin_type=True)
    return request("POST", url, body, {"Content-Type": "application/msgpack"}, timeout)


def post_actions(url: str, actions: Iterable[Action | tuple[bytes, bytes]]) -> dict:
    """POST signed actions to a node's gossip endpoint; its answer (accepted, rejected ...)."""
    items = [a.wire() if isinstance(a, Action) else list(a) for a in actions]
    resp = post_msgpack(f"{url}/v1/gossip/actions", items)
    if resp.status != 200:
        raise AssertionError(f"POST actions to {url}: HTTP {resp.status} {resp.body[:300]!r}")
    return resp.msgpack()


def heads(url: str) -> dict[bytes, list]:
    """The node's gossip heads: author -> [seq, hash]."""
    return get_msgpack(f"{url}/v1/gossip/heads")


def head_seq(url: str, author: bytes) -> int:
    """The seq of the author's head at that node, -1 when it holds no such chain."""
    return heads(url).get(author, [-1])[0]


def stored(url: str) -> int:
    """How many valid actions the node holds."""
    return get_json(f"{url}/v1/info")["actions_stored"]


def agents(url: str) -> dict[str, dict]:
    """The node's `/v1/agents`, by agent id."""
    return {a["id"]: a for a in get_json(f"{url}/v1/agents")}


# -- agents and their data directories -----------------------------------------------------------


@dataclass
class Agent:
    """An agent made by `picogrid init`: its directory, port and id."""

    dir: Path
    name: str
    port: int
    grid: str
    community: str
    agent_hex: str
    reachable: bool = True

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def agent(self) -> bytes:
        return bytes.fromhex(self.agent_hex)

    def identity(self) -> Identity:
        return load_identity(self.dir / "agent.key")

    def config(self) -> dict:
        return tomllib.loads((self.dir / "config.toml").read_text())

    @property
    def admin_hex(self) -> str:
        return self.config()["community"]["admin"]


def agent_from_dir(directory: str | Path, port: int | None = None) -> Agent:
    """The Agent of an existing data directory (made by `picogrid init`, here or elsewhere).

    `port` replaces the configured listen port (for a directory initialised with another)."""
    directory = Path(directory)
    cfg = tomllib.loads((directory / "config.toml").read_text())
    listen_port = int(cfg["node"]["listen"].rsplit(":", 1)[1])
    return Agent(
        directory,
        cfg["agent"]["name"],
        port or listen_port,
        cfg["agent"]["grid"],
        cfg["community"]["name"],
        load_identity(directory / "agent.key").agent_hex,
        reachable=cfg["node"].get("public_url") != "",
    )


def picogrid(
    *args: str | Path, timeout: float = 60.0, check: bool = True, verbose: bool = False
) -> subprocess.CompletedProcess:
    """Run one `picogrid` command to completion (stdin closed)."""
    argv = [PICOGRID, *(["-v"] if verbose else []), *map(str, args)]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def init_agent(
    tmp: Path,
    name: str,
    role: str = "consumer",
    household: str | None = None,
    grid: str = "g1",
    community: str = "c1",
    port: int | None = None,
    join: str | Agent | None = None,
    admin: str | None = None,
    invite: str | None = None,
    capacity_wh: int | None = None,
    max_power_w: int = 1000,
    public_url: str | None = None,
    extra: Iterable[str] = (),
) -> Agent:
    """`picogrid init` an agent in `tmp/<name>`: founds `community` unless `join` is given.

    Joining fetches the charter from `join` (a running member) and pins `admin` when given,
    else accepts the fetched admin key (`--yes`). `public_url=""` makes an agent nobody can
    reach (behind a router): it gossips by initiating only.
    """
    port = port or free_port()
    directory = Path(tmp) / slug(name)
    args: list[str] = [
        "init",
        "--dir",
        str(directory),
        "--name",
        name,
        "--role",
        role,
        "--household",
        household or slug(name),
        "--grid",
        grid,
        "--community",
        community,
        "--listen",
        f"{HOST}:{port}",
        "--max-power-w",
        str(max_power_w),
    ]
    if role == "storage":
        args += ["--capacity-wh", str(capacity_wh or 10_000)]
    if join is not None:
        args += ["--join", join.url if isinstance(join, Agent) else join]
        args += ["--admin", admin] if admin else ["--yes"]
    if invite:
        args += ["--invite", invite]
    if public_url is not None:
        args += ["--public-url", public_url]
    picogrid(*args, *extra)
    agent_hex = load_identity(directory / "agent.key").agent_hex
    return Agent(directory, name, port, grid, community, agent_hex, reachable=public_url != "")


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
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(
                    f"{self.agent.name} exited {self.popen.returncode}\n{self.logs()}"
                )
            return request("GET", f"{self.url}/v1/info", timeout=1).status == 200

        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return
            except OSError:
                pass
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
            if self.alive():
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(5)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(5)
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
    argv = [
        PICOGRID,
        *(["-v"] if verbose else []),
        "run",
        "--dir",
        str(agent.dir),
        "--listen",
        f"{HOST}:{agent.port}",
    ]
    for peer in peers:
        argv += ["--peer", peer.url if isinstance(peer, Agent) else peer]
    if round_ms is not None:
        argv += ["--round-ms", str(round_ms)]
    if rate_limit is not None:
        argv += ["--rate-limit", str(rate_limit)]
    argv += list(extra)
    out = open(agent.dir / "run.out", "ab")  # noqa: SIM115 (the child keeps them)
    err = open(agent.dir / "run.err", "ab")  # noqa: SIM115
    try:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    finally:
        out.close()
        err.close()
    proc = Proc(agent, popen, argv)
    if wait:
        try:
            proc.wait_ready()
        except BaseException:
            proc.stop_quietly()
            raise
    return proc


# -- members without a node -----------------------------------------------------------------------


@dataclass
class Author:
    """A member that signs its own chain with no node behind it (for seeding and injecting).

    Its genesis names `community` and `grid` (by default a grid with no market, so no node's
    market loop ever looks at its orders). `actions` holds everything it has signed, in order.
    """

    community: str = "c1"
    grid: str = "lab"
    name: str = "author"
    identity: Identity = field(default_factory=Identity.generate)
    invite: bytes | None = None
    actions: list[Action] = field(default_factory=list)

    @property
    def agent(self) -> bytes:
        return self.identity.agent

    @property
    def agent_hex(self) -> str:
        return self.identity.agent_hex

    def genesis(self, ts: int | None = None) -> Action:
        assert not self.actions, "genesis is the first action"
        payload = {
            "community": self.community,
            "grid": self.grid,
            "name": self.name,
            "role": "consumer",
            "household": slug(self.name),
            "capacity_wh": 0,
            "max_power_w": 1000,
            "invite": self.invite,
        }
        action = sign_action(self.identity, 0, None, ts or now_us(), "genesis", payload)
        self.actions.append(action)
        return action

    def next(
        self, type_: str = "bid", payload: dict | None = None, ts: int | None = None
    ) -> Action:
        """Sign the next action on top of the last one (genesis first if there is none)."""
        if not self.actions:
            self.genesis(ts)
        last = self.actions[-1]
        if payload is None:
            payload = {"interval": last.seq, "energy_wh": 100 + last.seq % 7, "price": 12000}
        action = sign_action(
            self.identity, last.seq + 1, last.hash, max(ts or now_us(), last.ts), type_, payload
        )
        self.actions.append(action)
        return action

    def extend(self, n: int, ts: int | None = None) -> list[Action]:
        """Sign `n` more actions (bids), genesis first when the chain is empty."""
        out = []
        if not self.actions:
            out.append(self.genesis(ts))
            n -= 1
        out += [self.next(ts=ts) for _ in range(n)]
        return out

    def fork(self, seq: int) -> Action:
        """A second, different action at `seq` (which must be > 0): a fork."""
        prev = self.actions[seq - 1]
        payload = {"interval": -seq, "energy_wh": 999, "price": 1}
        return sign_action(self.identity, seq, prev.hash, prev.ts, "bid", payload)


def invited_author(admin_key: Path, community: str, grid: str, name: str = "invited") -> Author:
    """An Author carrying the admin's invite for a closed community."""
    author = Author(community=community, grid=grid, name=name)
    author.invite = make_invite(load_identity(admin_key), community, grid, author.agent)
    return author


def seed(agent: Agent, actions: Iterable[Action | tuple[bytes, bytes]], batch: int = 1000) -> int:
    """Ingest signed actions into a STOPPED node's store (as gossip would); returns accepted."""
    store = Store(agent.dir / "store.sqlite3", Membrane(agent.community))
    accepted = 0
    try:
        items = [
            (a.action_bytes, a.signature) if isinstance(a, Action) else tuple(a) for a in actions
        ]
        for i in range(0, len(items), batch):
            result = store.ingest(items[i : i + batch], now_us())
            assert not result.rejected, result.rejected[:5]
            accepted += result.accepted
    finally:
        store.close()
    return accepted


def append_own(agent: Agent, type_: str, payload: dict) -> Action:
    """Append to a STOPPED node's own chain with its own key (as the node itself would)."""
    store = Store(agent.dir / "store.sqlite3", Membrane(agent.community))
    try:
        return SourceChain(store, agent.identity()).append(type_, payload)
    finally:
        store.close()


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

    def start(self, agent: Agent, peers: Iterable[Agent | str] = (), **kw: Any) -> Proc:
        kw.setdefault("round_ms", self.round_ms)
        proc = start(agent, peers, wait=False, **kw)
        self.procs.append(proc)
        proc.wait_ready()
        return proc

    def start_many(
        self, agents: list[Agent], peers: Iterable[Agent | str] = (), **kw: Any
    ) -> list[Proc]:
        """Start several nodes at once, then wait until each answers."""
        kw.setdefault("round_ms", self.round_ms)
        peers = list(peers)
        procs = []
        for agent in agents:
            proc = start(agent, [p for p in peers if p is not agent], wait=False, **kw)
            self.procs.append(proc)
            procs.append(proc)
        for proc in procs:
            proc.wait_ready()
        return procs

    def logs(self) -> str:
        return "\n".join(p.logs() for p in self.procs)

    def close(self) -> None:
        for proc in self.procs:
            if proc.alive():
                try:
                    proc.popen.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        for proc in self.procs:
            proc.stop_quietly()
