"""Settlement benchmark (protocol 2): how long after gate closure every trade is confirmed.

Two grids of real `picogrid run` processes on this machine:
- `kit`: the default kit (7 nodes) at the demo's pace, over `--intervals` intervals;
- `grid`: `--agents` sybil homes (members without nodes, signed in this process: they join,
  bid 1 Wh each, a majority of them sign views, all of them settle) and 4 real nodes (community
  solar, the neighbourhood battery, two homes), over `--grid-intervals` intervals; community
  solar's settlement then holds about `--agents` trades, carried as a digest.
For each interval, node 0 is asked from the gate on until every trade of the interval is
confirmed: `*_p50_s` and `*_p99_s` are over the intervals (nearest rank). `disputed` counts the
trades of every measured interval that node 0 shows as disputed after the final deadline: it
must be 0. `verify_per_s`, measured in the same run, is PyNaCl's single-thread Ed25519 verify
rate: the machine's reference (the confirmation time is mostly the charter's deadlines, so it
moves little with it; the grid's posting time moves with it).

Prints one JSON line. SIGTERM or Ctrl-C stop every node before the script exits (`StopSignals`).

    python benchmarks/settle.py                       # the full run (about 5 minutes)
    python benchmarks/settle.py --intervals 2 --agents 20 --grid-interval-s 10
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from nodemarket import Kit, Sybils, counts, now_us, sleep_until  # noqa: E402

from ledger.keys import Identity, verify  # noqa: E402
from market.scenario import default_scenario  # noqa: E402
from node.cli.processes import StopSignals  # noqa: E402

GRID_NODES = ("Community solar", "Neighbourhood battery", "Home 1", "Home 2")


def verify_rate(n: int = 2000) -> float:
    """Ed25519 verifies per second on one thread (the reference)."""
    me = Identity.generate()
    message = bytes(200)
    sig = me.sign(message)
    start = time.perf_counter()
    for _ in range(n):
        if not verify(me.agent, message, sig):
            raise AssertionError("the reference signature does not verify")
    return n / (time.perf_counter() - start)


def confirmed_after(kit: Kit, k: int, agents: int, every: float) -> float:
    """Seconds from `k`'s gate until node 0 shows every trade of `k` confirmed (and every
    agent's settlement held); the final deadline plus 30 s at most."""
    gate = kit.deadlines(k).gate_us
    stop = kit.deadlines(k).final_us + 30_000_000
    sleep_until(gate)
    while now_us() < stop:
        view = kit.view(k)
        trades = view["trades"] if view else []
        if (
            view
            and len(view["settlements"]) >= agents
            and trades
            and all(t["status"] == "confirmed" for t in trades)
        ):
            return (now_us() - gate) / 1e6
        time.sleep(every)
    raise AssertionError(f"interval {k}: trades not all confirmed by the final deadline + 30 s")


def disputed(kit: Kit, ks: list[int]) -> int:
    """Disputed trades of intervals `ks` on node 0, after their final deadlines."""
    return sum(
        counts(v).get("disputed", 0) for k in ks for v in kit.final(k, nodes=[0], timeout=120)
    )


def kit_run(base: Path, intervals: int, interval_s: int) -> tuple[list[float], int]:
    """The default kit over `intervals` intervals: confirmation times and disputed trades."""
    with Kit(base / "kit", interval_s=interval_s) as kit:
        first = kit.next_interval(margin_s=0.5)
        ks = list(range(first, first + intervals))
        times = [confirmed_after(kit, k, len(kit.nodes), 0.05) for k in ks]
        return times, disputed(kit, ks)


def grid_run(
    base: Path, agents: int, intervals: int, interval_s: int
) -> tuple[list[float], int, int]:
    """`agents` sybils and 4 nodes: confirmation times, disputed trades, the largest
    settlement's trade count."""
    kit_scenario = default_scenario()
    scenario = dataclasses.replace(
        kit_scenario, agents=[a for a in kit_scenario.agents if a.name in GRID_NODES]
    )
    with Kit(
        base / "grid", interval_s=interval_s, scenario=scenario, first=11, round_ms=500
    ) as kit:
        sybils = Sybils(kit, agents)
        sybils.join()
        times, ks, largest = [], [], 0
        for _ in range(intervals):
            k = kit.next_interval(margin_s=0.6 * kit.charter.lead_ms / 1000)
            sleep_until(kit.deadlines(k).gate_us - int(kit.charter.lead_ms * 300))
            sybils.bid(k)
            sybils.view(k, voters=agents // 2 + 1, early=True)
            sybils.settle(k)
            times.append(confirmed_after(kit, k, agents + len(GRID_NODES), 0.5))
            ks.append(k)
            view = kit.view(k)
            largest = max([largest] + [s["trades"] for s in view["settlements"].values()])
        return times, disputed(kit, ks), largest


def rank(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--intervals", type=int, default=12, help="kit intervals measured")
    p.add_argument("--interval-s", type=int, default=5, help="the kit's interval (the demo's)")
    p.add_argument("--agents", type=int, default=1000, help="sybil agents of the grid")
    p.add_argument("--grid-intervals", type=int, default=2)
    p.add_argument("--grid-interval-s", type=int, default=40)
    args = p.parse_args()
    StopSignals()  # SIGTERM, like Ctrl-C, unwinds through the kits' exits: their nodes stop
    try:
        reference = verify_rate()
        with tempfile.TemporaryDirectory(prefix="picogrid-settle-") as tmp:
            kit_times, kit_disputed = kit_run(Path(tmp), args.intervals, args.interval_s)
            grid_times, grid_disputed, largest = grid_run(
                Path(tmp), args.agents, args.grid_intervals, args.grid_interval_s
            )
    except KeyboardInterrupt:
        print("stopped: every node was stopped", file=sys.stderr)
        return 130
    print(
        json.dumps(
            {
                "bench": "settle",
                "kit_nodes": 7,
                "kit_intervals": args.intervals,
                "kit_interval_s": args.interval_s,
                "kit_p50_s": round(rank(kit_times, 0.5), 3),
                "kit_p99_s": round(rank(kit_times, 0.99), 3),
                "grid_agents": args.agents + len(GRID_NODES),
                "grid_nodes": len(GRID_NODES),
                "grid_intervals": args.grid_intervals,
                "grid_interval_s": args.grid_interval_s,
                "grid_p50_s": round(rank(grid_times, 0.5), 3),
                "grid_p99_s": round(rank(grid_times, 0.99), 3),
                "grid_largest_settlement_trades": largest,
                "disputed": kit_disputed + grid_disputed,
                "verify_per_s": round(reference),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
