"""The network simulator's virtual clock (benchmarks/netsim_clock.py): under a slowdown K, a
virtual second lasts K real seconds for asyncio timers, the time module and the wall clock alike;
a small simulated community converges in the virtual times its links allow; the real clocks come
back afterwards; and the lag probe tells a loop that keeps up from one that does not."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import netsim_clock  # noqa: E402
from netsim import Sim  # noqa: E402
from netsim_phases import percentile  # noqa: E402
from netsim_transport import Net  # noqa: E402

K = 5
REAL_CLOCKS = (time.monotonic, time.time, time.time_ns)


def test_a_virtual_second_lasts_k_real_seconds() -> None:
    async def sleep_one() -> tuple[float, float, float, float]:
        real0, mono0, wall0 = netsim_clock.real_monotonic(), time.monotonic(), time.time()
        loop0 = asyncio.get_running_loop().time()
        await asyncio.sleep(1)
        return (netsim_clock.real_monotonic() - real0, time.monotonic() - mono0,
                time.time() - wall0, asyncio.get_running_loop().time() - loop0)

    real_before = time.time()
    real, mono, wall, loop = netsim_clock.run(sleep_one(), K)
    assert 0.9 * K <= real < 3 * K  # slept about K real seconds (late on a busy machine)
    assert 1.0 <= mono < 3 and 1.0 <= loop < 3 and 0.99 <= wall < 3  # one virtual second
    assert abs(real - K * mono) < 0.1
    # the real clocks are back: the wall clock has advanced by real time since
    assert (time.monotonic, time.time, time.time_ns) == REAL_CLOCKS
    assert time.time() - real_before >= 0.9 * K


def test_the_wall_clock_starts_at_the_real_epoch_and_runs_slow() -> None:
    clock = netsim_clock.Dilation(K)
    real0 = time.time()
    with clock:
        virtual0 = time.time()
        time.sleep(0.5)  # a real half second (the thread's sleep is not dilated)
        virtual1, ns = time.time(), time.time_ns()
    assert abs(virtual0 - real0) < 0.1
    assert 0.5 / K <= virtual1 - virtual0 < 1.5 / K
    assert abs(ns / 1e9 - virtual1) < 0.01
    with pytest.raises(ValueError):
        netsim_clock.Dilation(0.5)


def test_a_simulated_call_takes_its_round_trip_in_virtual_time() -> None:
    async def one_call() -> tuple[float, float, float]:
        n = Net(seed=3, loss=0.0)
        for url in ("a", "b"):
            n.nodes[url] = object()

        async def echo(node) -> bytes:
            return b"answer"

        rtt = n.latency("a", "b")
        real0, virtual0 = netsim_clock.real_monotonic(), time.monotonic()
        assert await n.call("a", "b", b"q", echo) == b"answer"
        return rtt, time.monotonic() - virtual0, netsim_clock.real_monotonic() - real0

    rtt, virtual, real = netsim_clock.run(one_call(), K)
    assert rtt <= virtual < rtt + 0.1
    assert K * rtt <= real < K * (rtt + 0.1) + 1


def test_the_lag_probe_sees_a_loop_that_is_held_up() -> None:
    async def probe_around(block_s: float) -> dict:
        probe = netsim_clock.LagProbe(every_s=0.05)
        probe.phase("free")
        probe.start()
        await asyncio.sleep(0.5)
        probe.phase("held")
        for _ in range(4):
            time.sleep(block_s)  # the loop's thread busy: timers cannot fire
            await asyncio.sleep(0.06)
        await probe.stop()
        return probe.figures()

    figures = netsim_clock.run(probe_around(0.5), 2)
    assert figures["free"]["samples"] >= 3
    assert figures["held"]["max_ms"] >= 150  # 0.5 real s blocked = 250 virtual ms, less 50
    assert figures["after_settle"]["samples"] == figures["held"]["samples"]
    assert netsim_clock.LagProbe.summary([]) == {"samples": 0}


@pytest.mark.timeout(280)
def test_a_small_community_converges_in_virtual_time(tmp_path: Path) -> None:
    async def community() -> tuple[list[float], float, float]:
        sim = Sim(12, 3, tmp_path, round_ms=1000, seed=11, know_all=True, replicate="grid")
        sim.start()
        try:
            assert await sim.settle(60) < float("inf")
            times = []
            real0, virtual0 = netsim_clock.real_monotonic(), time.monotonic()
            for t in range(6):
                action = await sim.post(sim.nodes[t], 100 + t)
                times.append(await sim.wait_all([(action.author, action.seq)], 30))
            return (times, time.monotonic() - virtual0, netsim_clock.real_monotonic() - real0)
        finally:
            await sim.stop()

    times, virtual, real = netsim_clock.run(community(), K)
    # an eager push crosses one link: at least half the shortest round trip (10 ms), and with a
    # lost message and its 2 s timeout still well within a few rounds
    assert all(0.01 <= t < 8 for t in times), times
    assert percentile(times, 0.5) < 3
    assert 0.8 * K * virtual <= real  # the waits took K times as long, in real time
