"""The benchmarks still run and print the figures their docs promise (small sizes; no speed checked).

Each benchmark is a script a maker runs by hand; without this, one could break unnoticed (a
renamed function, a changed fixture) until somebody wants a number from it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


GRACE_S = 20.0  # after SIGTERM, for a benchmark to stop its nodes (10 s each at most) and exit


def run_bench(name: str, *args: str, timeout: float = 120) -> dict:
    """Run a benchmark in a process group of its own; on timeout the group gets SIGTERM (the
    benchmark stops its nodes), then SIGKILL for whatever is left."""
    proc = subprocess.Popen(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _, err = stop_group(proc)
        pytest.fail(f"{name} took over {timeout} s; it was stopped\n{err[-6000:]}")
    finally:
        if proc.poll() is None:  # interrupted some other way
            stop_group(proc)
    assert proc.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out  # one JSON line, nothing else on stdout
    figures = json.loads(lines[0])
    assert figures["bench"] == name
    return figures


def stop_group(proc: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM the process group `proc` leads, SIGKILL it GRACE_S later; its output."""
    signal_group(proc, signal.SIGTERM)
    try:
        return proc.communicate(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        signal_group(proc, signal.SIGKILL)
        return proc.communicate()


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass  # the whole group is gone already


def test_ingest_prints_its_figures_and_the_reference():
    f = run_bench("ingest", "--entries", "1200", "--authors", "4", "--batch", "100", "--rounds", "1")
    assert f["entries"] == 1200 and f["threads"] == 1 and f["pool_threads"] == 2
    for key in ("verify_per_s", "entries_per_s", "entries_per_s_threads", "peak_rss_mb"):
        assert f[key] > 0, key
    assert f["ratio_1_thread"] > 0 and f["ratio_threads"] > 0  # each against its own windows
    # The ceiling is what the measured speed-up allows once the other work is shared out.
    expected = f["verify_speedup_threads"] / (
        1 + f["overhead_us_per_action"] * f["verify_per_s"] / 1e6
    )
    assert f["ceiling_ratio_threads"] == pytest.approx(expected, rel=0.02)
    assert f["efficiency_threads"] == pytest.approx(
        f["ratio_threads"] / f["ceiling_ratio_threads"], rel=0.02
    )
    assert f["targets"] == {"ratio_1_thread": 0.8, "ratio_threads": 1.5, "rss_mb_at_1m": 64}


def test_clearing_prints_its_figures():
    f = run_bench("clearing")
    for key in ("pay_as_clear_ms", "pay_as_bid_ms", "merit_order_ms", "scaling_10x"):
        assert f[key] > 0, key


def test_replicate_copies_every_entry_between_two_real_nodes():
    f = run_bench("replicate", "--entries", "200", "--authors", "2")
    assert f["entries"] == 200 and f["entries_per_s"] > 0 and f["verify_per_s"] > 0


def test_replicate_stops_its_nodes_when_it_is_terminated(tmp_path):
    # Its temporary directory under tmp_path names its nodes: `picogrid run --dir <tmp_path>/...`
    proc = subprocess.Popen(
        [sys.executable, str(BENCHMARKS / "replicate.py"), "--entries", "20000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        assert wait_for(lambda: nodes_under(tmp_path), 60), "no node of replicate.py started"
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=GRACE_S)
        assert proc.returncode != 0 and "both nodes were stopped" in err, err
        assert wait_for(lambda: not nodes_under(tmp_path), 5), nodes_under(tmp_path)
    finally:
        if proc.poll() is None:
            stop_group(proc)
        for pid in nodes_under(tmp_path):  # what the benchmark left behind, if anything
            os.kill(pid, signal.SIGKILL)


def nodes_under(root) -> list[int]:
    """The pids of the `picogrid run` processes whose data directory is under `root`."""
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if b"run" in argv and any(a.startswith(str(root).encode()) for a in argv):
            pids.append(int(entry))
    return pids


def wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() >= deadline:
            return value
        time.sleep(0.02)
    return value


def test_converge_reaches_every_live_node():
    f = run_bench("converge", "--nodes", "3", "--trials", "2")
    assert f["alive"] == 3 and f["trials"] == 2
    assert 0 < f["p50_s"] <= f["p99_s"] <= f["max_s"]


def test_settle_times_confirmation_on_real_nodes_with_no_dispute():
    f = run_bench("settle", "--intervals", "2", "--agents", "20", "--grid-intervals", "1",
                  "--grid-interval-s", "10", timeout=280)
    assert f["kit_nodes"] == 7 and f["grid_agents"] == 24 and f["grid_nodes"] == 4
    assert 0 < f["kit_p50_s"] <= f["kit_p99_s"] and 0 < f["grid_p50_s"] <= f["grid_p99_s"]
    assert f["grid_largest_settlement_trades"] >= 20  # community solar sold to every sybil
    assert f["disputed"] == 0 and f["verify_per_s"] > 0


def test_demo_disputes_counts_a_short_day_with_a_node_killed():
    f = run_bench("demo_disputes", "--runs", "1", "--intervals", "4", "--interval-seconds", "2",
                  "--busy", "0", "--kill", "Home 2", "--kill-after", "1", timeout=200)
    (run,) = f["runs"]
    assert f["all_exit_0"] and f["all_summarised"] and run["intervals_shown"] == 4
    assert run["killed"] == "Home 2" and run["restarts"] == 1 and run["back_after_s"] > 0
    assert run["confirmed"] > 0
    assert f["disputed_total"] == 0 and f["lines_disputed_total"] == 0
