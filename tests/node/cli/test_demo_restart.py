"""`picogrid demo` keeps its PicoGrid running when a node process dies (issue #10).

A real demo runs seven real node processes; the test SIGKILLs one of them (its pid read from the
lock file of its data directory, and checked to be the demo's child) in the middle of the run,
and watches what a user would: the demo names the death and the restart, the node answers again,
the run ends by itself, and no trade is disputed, by the demo's summary and by a node's HTTP API.
A node that keeps dying makes the demo give up with a clear message and exit 1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from nodedemo import SUMMARY, Demo, children_of, get_json

from node.cli.launcher import free_port_run, slug
from node.cli.processes import answers, run_argv, spawn, stop_processes

INTERVAL_S = 3
INTERVALS = 10


def lock_pid(demo: Demo, name: str) -> int | None:
    """The pid the lock of `name`'s data directory names, when that process is a child of the
    demo (a node writes its pid into the lock as it starts); None otherwise."""
    try:
        pid = int((demo.dir / slug(name) / "node.lock").read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid in children_of(demo.proc.pid) else None


def node_pid(demo: Demo, name: str) -> int:
    """The pid of the demo's node `name`, waiting (bounded) for it to have started."""
    return demo.wait_for(lambda: lock_pid(demo, name), 30, f"the pid of {name}'s node")


def kill_node(demo: Demo, name: str) -> int:
    pid = node_pid(demo, name)
    demo.node_pids.add(pid)
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_node_killed_mid_day_is_restarted_and_nothing_is_disputed(run_demo, tmp_path):
    port = free_port_run(7)
    victim = "Home 1"  # the node the demo reads the market from: it must read from another
    demo = run_demo(
        "--intervals",
        str(INTERVALS),
        "--interval-seconds",
        str(INTERVAL_S),
        "--port",
        str(port),
        "--dir",
        str(tmp_path / "demo"),
        "--start-hour",
        "9",
    )
    demo.wait_for(lambda: len(demo.lines()) >= 3, 90, "three settled intervals")
    old = kill_node(demo, victim)

    demo.wait_output(f"node {victim} killed by SIGKILL (pid {old}, port {port})", 20)
    demo.wait_output(f"node {victim} restarted (pid ", 20)
    demo.wait_output(f"node {victim} is back: http://127.0.0.1:{port} answers", 60)
    new = node_pid(demo, victim)
    assert new != old
    info = get_json(f"http://127.0.0.1:{port}/v1/info")
    assert info["name"] == victim

    code = demo.wait(INTERVALS * INTERVAL_S + 90)
    out = demo.stdout()
    assert code == 0, out + demo.stderr()
    shown = [int(m["k"]) for m in demo.lines()]
    assert shown == list(range(shown[0], shown[0] + INTERVALS)), out
    assert not any(m["disputed"] for m in demo.lines()), out
    summary = SUMMARY.search(out)
    assert summary is not None, out
    assert (int(summary["frm"]), int(summary["to"])) == (shown[0], shown[-1]), out
    assert int(summary["disputed"]) == 0, out
    assert int(summary["confirmed"]) >= INTERVALS, out  # the sun is up all run: trades
    assert f"node {victim} died once (killed by SIGKILL) and was restarted" in out
    demo.assert_nothing_left()
    demo.assert_stores_intact()
    demo.assert_no_tracebacks()

    # The victim's own node, started again on its data once the demo is gone, says the same
    # through its HTTP API: every trade of an interval every agent settled is confirmed; the
    # only others are the victim's own, failed, in an interval it could not settle while down.
    trades, settled_by = run_alone_and_read(demo.dir / slug(victim), port, shown)
    assert not [t for t in trades if t["status"] == "disputed"], trades
    victim_id = info["agent"]
    for t in trades:
        if settled_by[t["interval"]] == 7:
            assert t["status"] in ("confirmed", "superseded"), t
        else:
            assert t["status"] == "failed" and victim_id in (t["seller"], t["buyer"]), t
    missed = [k for k, n in settled_by.items() if n < 7]
    assert len(missed) <= 3, settled_by  # it settles again soon after it is back
    assert all(settled_by[k] == 7 for k in shown[-3:]), settled_by
    assert int(summary["confirmed"]) == sum(t["status"] == "confirmed" for t in trades)
    assert int(summary["failed"]) == sum(t["status"] == "failed" for t in trades)


def run_alone_and_read(
    agent_dir: Path, port: int, shown: list[int]
) -> tuple[list[dict], dict[int, int]]:
    """Start `picogrid run` on a data directory the demo left; return the trades of `shown` and,
    per interval, how many agents settled it, as its API says; the node is stopped after."""
    log = agent_dir / "after-demo.log"
    proc = spawn(run_argv(agent_dir), log)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not answers(url):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        got = get_json(f"{url}/v1/trades?from={shown[0]}&to={shown[-1]}")
        settled_by = {k: len(get_json(f"{url}/v1/intervals/{k}")["settlements"]) for k in shown}
        return got["trades"], settled_by
    finally:
        stop_processes([proc])
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_node_that_keeps_dying_makes_the_demo_give_up(run_demo, tmp_path):
    victim = "Home battery"
    demo = run_demo(
        "--intervals",
        "40",
        "--interval-seconds",
        "2",
        "--port",
        str(free_port_run(7)),
        "--dir",
        str(tmp_path / "demo"),
        "--start-hour",
        "10",
    )
    demo.wait_for(lambda: demo.lines(), 90, "a settled interval")
    started = time.monotonic()
    killed = []
    for _ in range(4):  # the 4th death within a minute is one too many
        pid = kill_node(demo, victim)
        killed.append(pid)
        if len(killed) < 4:
            demo.wait_for(lambda: lock_pid(demo, victim) not in (None, *killed), 30, "the restart")
    code = demo.wait(30)
    assert time.monotonic() - started < 60
    out, err = demo.stdout(), demo.stderr()
    assert code == 1, out + err
    assert out.count(f"node {victim} killed by SIGKILL") == 3, out
    assert out.count(f"node {victim} restarted (pid ") == 3, out
    assert f"node {victim} died 4 times within 60 s (last: killed by SIGKILL); giving up" in err
    assert "home-battery" in err and "node.log" in err
    assert "Traceback" not in err, err
    demo.assert_nothing_left()
    demo.assert_stores_intact()
