"""The measured phases of the network simulator (benchmarks/netsim.py), each over a running
`Sim`: convergence of new actions, a partition that heals, the data each node stores, and how
fast a fork becomes known to the whole community."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netsim import Sim


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def convergence(sim: Sim, trials: int, limit_s: float) -> dict:
    """p50/p99 of the time until every node holds a new action posted on a random node."""
    times = []
    for t in range(trials):
        node = sim.net.rng.choice(sim.nodes)
        action = await sim.post(node, 1000 + t)
        times.append(await sim.wait_all([(action.author, action.seq)], limit_s))
    return {"p50_s": round(percentile(times, 0.5), 3), "p99_s": round(percentile(times, 0.99), 3),
            "trials": trials}


async def partition_heals(sim: Sim, cut_s: float, limit_s: float) -> dict:
    """Split the community in two for cut_s, sign an action on each side, heal, and time until
    every node holds both."""
    half = len(sim.nodes) // 2
    sim.net.partition(sim.urls[:half], sim.urls[half:])
    left = await sim.post(sim.nodes[0], 5000)
    right = await sim.post(sim.nodes[-1], 5001)
    await asyncio.sleep(cut_s)
    inside = (sim.holders(left.author, left.seq, sim.nodes[:half]) == half)
    sim.net.heal()
    healed = await sim.wait_all([(left.author, left.seq), (right.author, right.seq)], limit_s)
    return {"cut_s": cut_s, "side_converged_while_cut": inside, "heal_s": round(healed, 3)}


def stored_bytes(sim: Sim) -> dict:
    """Per node, on average: bytes of the store files (database and write-ahead log), bytes of
    signed actions held, and of those the actions of the node's own grid."""
    files = held = own = 0
    for node in sim.nodes:
        files += sum(f.stat().st_size for f in node.cfg.dir.glob("store.sqlite3*"))
        db = sqlite3.connect(f"file:{node.cfg.store_path}?mode=ro", uri=True)
        try:
            for grid, size in db.execute("SELECT grid, SUM(LENGTH(action_bytes) + "
                                         "LENGTH(signature)) FROM actions GROUP BY grid"):
                held += size
                own += size if grid == node.cfg.grid else 0
        finally:
            db.close()
    n = len(sim.nodes)
    return {"store_files": files // n, "actions_held": held // n, "own_grid_actions": own // n,
            "held_over_own_grid": round(held / own, 2) if own else None}


async def fork_spread(sim: Sim, trials: int, limit_s: float) -> dict:
    """Seconds until every node of the community knows of a fork made in one grid (the
    evidence a warrant carries, or the warrant), over `trials` forks, each by another agent and
    in the next grid; `fork_everywhere_s` is the slowest trial."""
    grids = sorted({n.cfg.grid for n in sim.nodes}, key=lambda g: int(g[1:]))
    times = []
    for t in range(trials):
        grid = grids[(1 + t) % len(grids)]
        members = [n for n in sim.nodes if n.cfg.grid == grid]
        if len(members) < 3:
            return {"fork_everywhere_s": None, "why": "a grid needs 3 nodes for this figure"}
        k = (t // len(grids)) % len(members)  # another cheat once every grid has had one
        cheat, first, second = members[k], members[(k + 1) % len(members)], \
            members[(k + 2) % len(members)]
        author = await sim.fork(cheat, first, second)
        times.append(await sim.wait_forked(author, limit_s))
    return {"fork_everywhere_s": round(max(times), 3),
            "p50_s": round(percentile(times, 0.5), 3), "trials": trials,
            "each_s": [round(t, 3) for t in times],
            "alarms_sent": sum(n.metrics["fork_alarms_sent"] for n in sim.nodes)}
