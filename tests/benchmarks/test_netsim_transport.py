"""The network simulator's transport (benchmarks/netsim_transport.py): latency per link, loss,
partitions and churn; and a 50-node simulated community of real node cores that converges after
a partition heals."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from netsim import Sim  # noqa: E402
from netsim_transport import Net  # noqa: E402

from node.p2p.client import PeerError  # noqa: E402


def net(**options) -> Net:
    n = Net(seed=3, **options)
    for url in ("a", "b", "c"):
        n.nodes[url] = object()
    return n


async def echo(node) -> bytes:
    return b"answer"


def test_each_link_draws_one_latency_between_20_and_300_ms() -> None:
    n = Net(seed=5)
    drawn = [n.latency(f"x{i}", f"y{i}") for i in range(500)]
    assert all(0.020 <= d <= 0.300 for d in drawn)
    assert max(drawn) - min(drawn) > 0.2  # spread over the range, not one value
    assert n.latency("x1", "y1") == n.latency("y1", "x1") == drawn[1]


async def test_a_call_takes_the_round_trip_of_its_link() -> None:
    n = net(loss=0.0)
    rtt = n.latency("a", "b")
    started = time.monotonic()
    assert await n.call("a", "b", b"q", echo) == b"answer"
    took = time.monotonic() - started
    assert rtt <= took < rtt + 0.1
    assert n.sent["a"] == 1 and n.sent["b"] == 6


async def test_about_one_message_in_a_hundred_is_lost() -> None:
    n = net(timeout=0.0, latency=(0.0, 0.0))
    failed = 0
    for _ in range(3000):
        try:
            await n.call("a", "b", b"", echo)
        except PeerError:
            failed += 1
    # request or answer lost: 1 - 0.99**2, about 2 %
    assert 0.01 < failed / 3000 < 0.035
    assert n.lost == failed


async def test_partitions_cut_and_heal() -> None:
    n = net(loss=0.0, timeout=0.05, latency=(0.0, 0.0))
    n.partition(["a"], ["b", "c"])
    with pytest.raises(PeerError):
        await n.call("a", "b", b"", echo)
    assert await n.call("b", "c", b"", echo) == b"answer"
    n.heal()
    assert await n.call("a", "b", b"", echo) == b"answer"


async def test_a_node_that_is_down_times_out() -> None:
    n = net(loss=0.0, timeout=0.05, latency=(0.0, 0.0))
    n.down.add("b")
    started = time.monotonic()
    with pytest.raises(PeerError):
        await n.call("a", "b", b"", echo)
    assert time.monotonic() - started >= 0.05
    n.down.clear()
    assert await n.call("a", "b", b"", echo) == b"answer"


@pytest.mark.timeout(240)
async def test_fifty_simulated_nodes_converge_after_a_partition_heals(tmp_path: Path) -> None:
    sim = Sim(50, 5, tmp_path, round_ms=250, seed=7, know_all=True)
    sim.start()
    try:
        assert await sim.settle(120) < float("inf")
        half = 25
        sim.net.partition(sim.urls[:half], sim.urls[half:])
        left = await sim.post(sim.nodes[0], 1)
        right = await sim.post(sim.nodes[-1], 2)
        await asyncio.sleep(1.5)
        assert sim.holders(left.author, left.seq) <= half  # the cut holds
        assert sim.holders(right.author, right.seq) <= 50 - half
        sim.net.heal()
        healed = await sim.wait_all([(left.author, left.seq), (right.author, right.seq)], 90)
        assert healed < float("inf")
        assert sim.holders(left.author, left.seq) == sim.holders(right.author, right.seq) == 50
    finally:
        await sim.stop()


@pytest.mark.timeout(240)
def test_the_benchmark_prints_one_json_line_with_every_figure() -> None:
    import json
    import subprocess

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "netsim.py"
    done = subprocess.run(
        [sys.executable, str(script), "--nodes", "6", "--grids", "2", "--trials", "2",
         "--window", "1", "--cut", "1", "--quiet", "1", "--round-ms", "250", "--know-all",
         "--limit", "60", "--replicate", "grid"],
        capture_output=True, text=True, timeout=200, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert figures["convergence"]["p99_s"] < 60
    assert figures["partition"]["heal_s"] < 60
    for key in ("gossip_idle", "gossip_kit_pace"):
        assert figures[key]["by_endpoint"]["reconcile"] > 0
    assert figures["warrants"]["fork_everywhere_s"] < 60  # a fork in one grid reaches all
    stored = figures["stored_bytes_per_node"]
    assert stored["store_files"] > 0 and figures["rss_bytes_per_node"] > 0
    assert stored["own_grid_actions"] < stored["actions_held"]  # other grids: geneses only
    assert figures["holochain_reference"] == {"wind_tunnel_mean_sync_lag_s": 49, "peers": 10}
    clock = figures["clock"]  # 6 nodes: the real clock by default, and how late its timers fired
    assert clock["slowdown"] == 1 and clock["real_s"] > 0
    assert clock["loop_lag"]["quiet"]["samples"] > 0
