"""`picogrid demo`: a whole PicoGrid on one machine, one real `picogrid run` process per agent.

The demo founds a community whose charter runs the scenario's day at demo pace (each interval of
a few seconds stands for one hour), creates each agent's directory (key, config, genesis), starts
the nodes on consecutive ports, and follows the market through the first node's API.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ledger.charter import Charter
from market.scenario import Scenario
from node.cli.community import create_admin, create_identity, write_genesis
from node.cli.processes import answers, get_json, run_argv, spawn, stop_processes
from node.config import NodeConfig

log = logging.getLogger(__name__)
GRID = "kit"
COMMUNITY = "picogrid-demo"


def slug(name: str) -> str:
    """The name as a folder name: lower case, letters and digits, words joined by '-'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "agent"


@dataclass
class DemoNode:
    name: str
    dir: Path
    port: int
    proc: subprocess.Popen | None = None
    charter: Charter | None = None  # the charter its genesis holds (the demo's deadlines)

    @property
    def url(self) -> str:
        """The node's base URL on 127.0.0.1."""
        return f"http://127.0.0.1:{self.port}"


def prepare(
    base: Path,
    scenario: Scenario,
    port: int,
    interval_s: int,
    mechanism: str,
    start_in_s: float,
    scenario_path: str = "",
    round_ms: int = 1000,
    first_interval: int = 0,
    hardware: bool = False,
) -> list[DemoNode]:
    """Create every agent's directory; the founder's also holds the admin key.

    Interval `first_interval` (hour of the day = interval mod 24) starts in `start_in_s`.
    With `hardware`, each node drives its own agent's LEDs, the first node also the status LED,
    and the homes read the kit's INA219 sensors (see `kit_meters`).
    """
    base.mkdir(parents=True, exist_ok=True)
    admin = create_admin(base)
    epoch = (
        time.time_ns() // 1000
        + int(start_in_s * 1_000_000)
        - first_interval * interval_s * 1_000_000
    )
    rules = scenario.rules.__class__(**{**scenario.rules.to_map(), "mechanism": mechanism})
    interval_ms = interval_s * 1000
    charter = Charter(
        community=COMMUNITY,
        admin=admin.agent,
        version=1,
        effective_from=0,
        open=True,
        epoch_us=epoch,
        interval_ms=interval_ms,
        lead_ms=interval_ms * 2 // 5,
        grace_ms=interval_ms // 5,
        grids={GRID: rules},
    ).sign(admin)
    nodes = [
        DemoNode(spec.name, base / slug(spec.name), port + i, charter=charter)
        for i, spec in enumerate(scenario.agents)
    ]
    meters = kit_meters(scenario, interval_s) if hardware else {}
    for i, (spec, node) in enumerate(zip(scenario.agents, nodes, strict=True)):
        extra: dict = {}
        if hardware:
            extra["hardware"] = {"status_led": i == 0}
            if spec.name in meters:
                extra["meter"] = meters[spec.name]
        identity = create_identity(node.dir)
        cfg = NodeConfig(
            dir=node.dir,
            name=spec.name,
            role=spec.role,
            household=spec.household,
            grid=GRID,
            community=COMMUNITY,
            admin=admin.agent.hex(),
            capacity_wh=spec.capacity_wh,
            max_power_w=spec.max_power_w,
            listen=f"127.0.0.1:{node.port}",
            peers=[n.url for n in nodes if n is not node],
            round_ms=round_ms,
            scenario=scenario_path,
            strategy=spec.strategy or "",
            hardware=hardware,
            extra=extra,
        )
        cfg.save()
        write_genesis(cfg, identity, charter, None)
    return nodes


KIT_SENSORS = (0x40, 0x41, 0x44)
KIT_HOME_WATTS_X10 = 1  # a home of the kit draws about 0.1 W through its sensor


def kit_meters(scenario: Scenario, interval_s: int) -> dict[str, dict]:
    """The kit's three INA219 sensors measure its homes, in order. `energy_scale` makes about
    0.1 W over one demo interval read as the home's average Wh (change it in each home's
    config.toml `[meter]` for another load)."""
    homes = [a for a in scenario.agents if a.role == "consumer"][: len(KIT_SENSORS)]
    out = {}
    for address, home in zip(KIT_SENSORS, homes, strict=False):
        avg = home.consumption_wh if isinstance(home.consumption_wh, int) else \
            sum(home.consumption_wh) // len(home.consumption_wh)
        scale = max(1, avg * 3600 * 10 // (KIT_HOME_WATTS_X10 * interval_s))
        out[home.name] = {"energy_scale": scale,
                          "sensor": {"address": address, "shunt_ohms": 0.1,
                                     "max_expected_amps": 0.4}}
    return out


def start(nodes: list[DemoNode], hardware: bool = False) -> None:
    """Start a `picogrid run` process for every node; its output goes to its `node.log`."""
    for node in nodes:
        start_one(node, hardware)


def start_one(node: DemoNode, hardware: bool = False) -> None:
    """Start (or start again) the node's `picogrid run`, appending to its `node.log`."""
    node.proc = spawn(run_argv(node.dir, hardware=hardware), node.dir / "node.log")


def stop(nodes: list[DemoNode], timeout: float = 10.0) -> None:
    """SIGTERM every node (each commits its writes and exits), then SIGKILL stragglers."""
    stop_processes([n.proc for n in nodes if n.proc is not None], timeout)


def wait_ready(nodes: list[DemoNode], timeout: float = 30.0) -> list[str]:
    """Names of nodes that did not answer in time (empty when all are up)."""
    deadline = time.monotonic() + timeout
    waiting = list(nodes)
    while waiting and time.monotonic() < deadline:
        waiting = [n for n in waiting if not answers(n.url)]
        for n in waiting:
            if n.proc is not None and n.proc.poll() is not None:
                return [n.name for n in waiting]
        if waiting:
            time.sleep(0.2)
    return [n.name for n in waiting]


def first_open_interval(url: str, k: int, margin_s: float = 0.5) -> int:
    """The first interval from `k` on whose gate closes more than `margin_s` from now.

    Called once every node answers: a node that started after an interval's gate closure signs
    no orders and no settlement for it, so the demo follows the market from the next one.
    """
    view = get_json(f"{url}/v1/intervals/{k}")
    if not view:
        return k
    gate, length = view["gate_us"], view["end_us"] - view["start_us"]
    soon = time.time_ns() // 1000 + int(margin_s * 1_000_000)
    while gate <= soon:
        k, gate = k + 1, gate + length
    return k


def interval_settled(view: dict, agents: int) -> bool:
    """True when the interval's view shows every agent's settlement."""
    return len(view.get("settlements", {})) >= agents and not any(
        t["status"] == "pending" for t in view.get("trades", [])
    )


def home_supply(view: dict) -> tuple[int, int]:
    """(locally supplied Wh, demand Wh) of the homes in a settled interval's view.

    Local supply is what a home got from generators and storage, capped at its demand: the
    numerator and denominator of DESIGN's self-sufficiency.
    """
    local = demand = 0
    for f in view.get("agents", {}).values():
        if "demand_wh" in f:
            demand += f["demand_wh"]
            local += min(
                f["demand_wh"], f.get("from_generation_wh", 0) + f.get("from_storage_wh", 0)
            )
    return local, demand


LINE_WIDTH = 100
LEGEND = "each line: the hour, energy made and used, battery levels by name, trades, local share"


def interval_line(view: dict, self_sufficiency: float | None, note: str = "") -> str:
    """One line of at most `LINE_WIDTH` columns for a settled interval; `self_sufficiency` is
    over the demo's intervals so far. Battery levels are listed by name, or summed when
    there are too many to fit; a note that does not fit goes on a line of its own."""
    figures = view.get("agents", {})
    gen = sum(f.get("generation_wh", 0) for f in figures.values())
    demand = sum(f.get("demand_wh", 0) for f in figures.values())
    socs = [f["soc_wh"] for _, f in sorted(figures.items(), key=lambda kv: (
        str(kv[1].get("name", "")), kv[0])) if "soc_wh" in f]
    trades = view.get("trades", [])
    confirmed = sum(t["status"] == "confirmed" for t in trades)
    disputed = sum(t["status"] == "disputed" for t in trades)
    failed = sum(t["status"] == "failed" for t in trades)  # a side never settled (it was down)
    ss_text = f"{self_sufficiency * 100:.0f}%" if self_sufficiency is not None else "-"
    head = f"interval {view['interval']:>3} ({view['interval'] % 24:02d}:00)  made {gen:>5} Wh  " \
        f"used {demand:>5} Wh  "
    trades_part = f"trades {confirmed}" + (f", {disputed} DISPUTED" if disputed else "") \
        + (f", {failed} failed" if failed else "")
    stored = "stored " + ("+".join(map(str, socs)) if socs else "-") + " Wh"
    parts = [head.rstrip(), stored, trades_part, f"local {ss_text}"]
    if len("  ".join(parts)) > LINE_WIDTH:
        parts[1] = f"stored {sum(socs)} Wh"
    if note:
        parts.append(f"({note})")
    lines = [parts[0]]
    for part in parts[1:]:  # what does not fit goes on an indented line of its own
        if len(lines[-1]) + 2 + len(part) <= LINE_WIDTH:
            lines[-1] += "  " + part
        else:
            lines.append("    " + part)
    return "\n".join(lines)


def free_port_run(count: int) -> int:
    """The first of `count` consecutive ports free on 127.0.0.1, below the ephemeral range (ports
    there are not handed out to other programs' outgoing connections meanwhile). For tests and
    benchmarks that run a demo beside others."""
    try:
        top = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        top = 32768
    low = max(1024, top - 12000)
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(low, top - count)
        if not busy_ports(base, count) and _bindable(base, count):
            return base
    raise RuntimeError("no run of free ports on 127.0.0.1")


def _bindable(base: int, count: int) -> bool:
    try:
        for port in range(base, base + count):
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def busy_ports(port: int, count: int, host: str = "127.0.0.1") -> list[int]:
    """The ports of `port`..`port+count-1` that something on `host` already listens on."""
    busy = []
    for p in range(port, port + count):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the nodes bind
            try:
                s.bind((host, p))
            except OSError:
                busy.append(p)
    return busy


def progress_bar(done: int, total: int, width: int = 30) -> str:
    """A text bar of `width` characters, `done` of `total` filled."""
    filled = width * done // max(1, total)
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total} intervals"


def is_tty() -> bool:
    """True when standard output is a terminal (progress bars and colours make sense)."""
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
