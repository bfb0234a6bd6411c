"""Agents made by `picogrid init`, and running any `picogrid` command (part of `nodeproc`)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nodedata import slug

from ledger.keys import Identity, load_identity
from node.cli.processes import picogrid_argv

PICOGRID = str(Path(sys.executable).with_name("picogrid"))
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


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
    argv = picogrid_argv(*args, program=(PICOGRID,), verbose=verbose)
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
