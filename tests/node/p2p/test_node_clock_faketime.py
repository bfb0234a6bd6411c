"""Clocks set off, on real `picogrid run` processes under Debian's libfaketime.

Four agents of the default kit at demo pace: two with a right clock, one 10 minutes ahead and
one 10 minutes behind (libfaketime preloaded into their processes). Each measures its offset from
its peers; the two off name it in /v1/info, /metrics and `picogrid status`, refuse to sign
orders and say so once, not every second; the others name the one whose actions they reject as
bad-time. Then the node that was ahead runs with its clock set right: its last action is stamped
ten minutes ahead of its clock, and it signs nothing rather than stamp ahead of real time.
"""

from __future__ import annotations

import dataclasses
import glob
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

from market.scenario import default_scenario
from node.cli import launcher
from node.cli.processes import get_json as try_get_json
from node.cli.processes import run_argv, spawn, stop_processes

INTERVAL_S = 2
OFF_S = 600
LIBS = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
NAMES = ("Home 1", "Home solar", "Home 2", "Home 3")  # right, right, ahead, behind
AHEAD, BEHIND = "Home 2", "Home 3"

pytestmark = pytest.mark.skipif(
    not (shutil.which("faketime") and LIBS),
    reason="libfaketime is not installed (Debian package `faketime`; `make test` installs it "
           "when run as root with apt)",
)


def faked(offset: str) -> dict[str, str]:
    """The environment that runs a process with its wall clock moved by `offset`."""
    return {"LD_PRELOAD": LIBS[0], "FAKETIME": offset,
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}  # asyncio's timers keep their pace


def get_json(url: str):
    """A JSON answer; a node slow to answer under load is asked again (for up to 30 s)."""
    return wait_for(lambda: try_get_json(url, timeout=10), 30, f"GET {url}")


def metrics(url: str) -> dict[str, float]:
    """The samples of /metrics by `name{labels}`."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def wait_for(predicate, timeout: float, what: str, logs=lambda: ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # not yet
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last error {last!r}\n{logs()}")


def refusals(url: str) -> float:
    """Own actions not signed for the clock. The node ahead refuses its orders (`clock-off`);
    the node behind finds its genesis, made by the right clock, ahead of its own clock and signs
    nothing at all (`clock-behind-chain`), orders first."""
    m = metrics(url)
    return sum(m[f'picogrid_not_signed_total{{reason="{r}"}}']
               for r in ("clock-off", "clock-behind-chain"))


def own_actions(url: str, agent: str) -> list[dict]:
    """The agent's chain as its own node serves it."""
    out: list[dict] = []
    start = 0
    while start is not None:
        page = get_json(f"{url}/v1/agents/{agent}/chain?from={start}&limit=1000")
        out += page["actions"]
        start = page["next"]
    return out


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    base = tmp_path_factory.mktemp("clocks")
    kit = default_scenario()
    scenario = dataclasses.replace(kit, agents=tuple(a for a in kit.agents if a.name in NAMES))
    port = launcher.free_port_run(len(scenario.agents))
    # The community's first interval is long past (20 days of intervals ago, at the same hour),
    # so the node behind still finds a market open by its clock.
    nodes = launcher.prepare(base, scenario, port, INTERVAL_S, "merit-order", start_in_s=3.0,
                             first_interval=10 + 24 * 20, round_ms=300)
    env = {AHEAD: faked(f"+{OFF_S}s"), BEHIND: faked(f"-{OFF_S}s")}
    for node in nodes:
        node.proc = spawn(run_argv(node.dir), node.dir / "node.log", env=env.get(node.name))
    by_name = {n.name: n for n in nodes}
    try:
        assert not launcher.wait_ready(nodes), "nodes did not start"
        yield by_name
    finally:
        stop_processes([n.proc for n in nodes if n.proc is not None])


def logs(grid) -> str:
    return "\n".join(f"--- {n.name}\n{(n.dir / 'node.log').read_text()[-3000:]}"
                     for n in grid.values())


def test_each_node_knows_its_offset_and_the_off_ones_refuse_orders(grid):
    # Under load a peer may time out and be backed off for a while: the wait is generous.
    expected = {AHEAD: ("ahead", OFF_S), BEHIND: ("behind", -OFF_S), "Home 1": ("ok", 0),
                "Home solar": ("ok", 0)}
    for name, (state, off) in expected.items():
        def judged(n=name, state=state, off=off) -> bool:
            clock = get_json(grid[n].url + "/v1/info")["clock"]
            return clock["state"] == state and abs(clock["offset_s"] - off) < 5

        wait_for(judged, 90, f"{name}'s clock judged {state}, {off:+} s", lambda: logs(grid))
    for name, state in ((AHEAD, "ahead"), (BEHIND, "behind")):
        url = grid[name].url
        info = get_json(url + "/v1/info")["clock"]
        assert info["state"] == state and info["signing_orders"] is False
        m = metrics(url)
        assert m["picogrid_clock_off"] == 1
        assert abs(m["picogrid_clock_offset_seconds"] - (OFF_S if state == "ahead" else -OFF_S)) < 5
        wait_for(lambda u=url: refusals(u) >= 2, 30, f"{name} refusing to sign",
                 lambda: logs(grid))
        agent = get_json(url + "/v1/info")["agent"]
        orders = [a for a in own_actions(url, agent) if a["type"] in ("offer", "bid")]
        time.sleep(3 * INTERVAL_S)  # three more intervals: no order is signed in any of them
        again = [a for a in own_actions(url, agent) if a["type"] in ("offer", "bid")]
        assert len(again) == len(orders), f"{name} signed orders with its clock {state}"

        def status(u=url) -> str:  # `picogrid status` waits 2 s for an answer: asked again
            out = subprocess.run([sys.executable, "-m", "node.cli", "status", u],
                                 capture_output=True, text=True, timeout=30).stdout
            return out if "cannot reach" not in out else ""

        shown = wait_for(status, 60, f"`picogrid status` of {name}", lambda: logs(grid))
        assert "CLOCK OFF" in shown and f"({state}," in shown, shown
    for name in ("Home 1", "Home solar"):
        m = metrics(grid[name].url)
        assert m["picogrid_clock_off"] == 0


def test_the_right_clocks_name_the_node_whose_actions_they_reject(grid):
    ahead = get_json(grid[AHEAD].url + "/v1/info")
    for name in ("Home 1", "Home solar"):
        url = grid[name].url

        def named(u=url) -> bool:
            return get_json(u + "/v1/info")["clock"]["bad_time_by_author"].get(
                ahead["agent"], 0) > 0

        wait_for(named, 90, f"{name} naming {AHEAD}'s bad-time actions", lambda: logs(grid))
        info = get_json(url + "/v1/info")
        assert info["counters"]["rejected:bad-time"] > 0

        def peer_clocks(u=url) -> dict[str, tuple[str, float]]:
            peers = get_json(u + "/v1/info")["peers"]
            return {p["url"]: (p["clock"], p["clock_offset_s"]) for p in peers}

        wait_for(lambda u=url: peer_clocks(u)[grid[AHEAD].url][0] == "ahead"
                 and peer_clocks(u)[grid[BEHIND].url][0] == "behind", 90,
                 f"{name} showing the peers' clocks off", lambda: logs(grid))
        assert abs(peer_clocks(url)[grid[AHEAD].url][1] - OFF_S) < 5
        assert metrics(url)[f'picogrid_peer_clock_offset_seconds{{peer="{grid[AHEAD].url}"}}'] \
            > OFF_S - 5
    # The node ahead hears that its own actions are rejected, and counts them by reason.
    wait_for(lambda: metrics(grid[AHEAD].url)['picogrid_own_rejected_total{reason="bad-time"}']
             > 0, 90, "the node ahead counting its rejected actions", lambda: logs(grid))
    assert get_json(grid[AHEAD].url + "/v1/info")["clock"]["own_rejected_bad_time"] > 0


def test_the_off_nodes_say_so_without_flooding_the_log(grid):
    for name in (AHEAD, BEHIND):
        def said(n=name) -> list[str]:
            log = (grid[n].dir / "node.log").read_text()
            return [line for line in log.splitlines() if "clock error" in line]

        # This test may run first on its worker (tests of a module can be spread over workers),
        # so the nodes may only be starting: wait for the first line rather than assume it.
        wait_for(said, 90, f"{name} logging its clock error", lambda: logs(grid))
        log = (grid[name].dir / "node.log").read_text()
        assert "Traceback" not in log, log[-3000:]
        assert 1 <= len(said()) <= 6, "\n".join(said())


def test_after_the_clock_is_set_right_nothing_is_stamped_ahead_of_it(grid):
    node = grid[AHEAD]
    agent = get_json(node.url + "/v1/info")["agent"]
    stop_processes([node.proc])
    # The head it left, read from its store once it is stopped (a head read over HTTP before the
    # stop may be followed by one more action signed under the fake clock).
    with sqlite3.connect(f"file:{node.dir / 'store.sqlite3'}?mode=ro", uri=True) as db:
        (seq,) = db.execute("SELECT max(seq) FROM actions JOIN agents ON agents.id = actions.agent"
                            " WHERE author = ?", (bytes.fromhex(agent),)).fetchone()
    node.proc = spawn(run_argv(node.dir), node.dir / "node.log")  # the clock is right now
    assert not launcher.wait_ready([node]), "the node did not start again"

    def refusing() -> bool:
        clock = get_json(node.url + "/v1/info")["clock"]
        return clock["chain_ahead_of_clock_s"] > OFF_S - 120

    wait_for(refusing, 30, "the restarted node reporting its head ahead of its clock",
             lambda: logs(grid))
    head_before = own_actions(node.url, agent)[seq]
    assert head_before["seq"] == seq
    assert head_before["ts"] > time.time_ns() // 1000 + (OFF_S - 60) * 1_000_000
    time.sleep(3 * INTERVAL_S)
    now_us = time.time_ns() // 1000
    actions = own_actions(node.url, agent)
    assert actions[-1]["seq"] == head_before["seq"] or all(
        a["ts"] <= now_us for a in actions if a["seq"] > head_before["seq"]
    ), "an action was stamped ahead of the clock"
    assert actions[-1]["seq"] == head_before["seq"], "signed over a head stamped in the future"
    m = metrics(node.url)
    assert m['picogrid_not_signed_total{reason="clock-behind-chain"}'] > 0
    assert abs(m["picogrid_clock_offset_seconds"]) < 5 and m["picogrid_clock_off"] == 0
    log = (node.dir / "node.log").read_text()
    assert re.search(r"stamped \d+\.\d s ahead of the clock", log), log[-2000:]
    assert "Traceback" not in log, log[-3000:]
