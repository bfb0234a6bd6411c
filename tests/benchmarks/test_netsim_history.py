"""The simulator's history (`netsim.py --history`): every agent has traded a while, and under
scoped replication a node stores its own grid's chains whole and, of the other grids, the
geneses only, also after gossip has run."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from netsim import Sim, parse  # noqa: E402
from netsim_phases import stored_bytes  # noqa: E402

ORDERS = 15


def held_by_grid(node) -> dict[str, tuple[int, int]]:
    """grid -> (actions held, the highest seq held) in the node's store."""
    db = sqlite3.connect(f"file:{node.cfg.store_path}?mode=ro", uri=True)
    try:
        return {grid: (count, top) for grid, count, top in db.execute(
            "SELECT grid, COUNT(*), MAX(seq) FROM actions GROUP BY grid")}
    finally:
        db.close()


@pytest.mark.timeout(120)
async def test_a_node_holds_its_grids_history_and_the_other_grids_geneses(tmp_path: Path):
    sim = Sim(9, 3, tmp_path, round_ms=250, seed=5, know_all=True, replicate="grid")
    try:
        await sim.preload(ORDERS)
        sim.start()
        await asyncio.sleep(2)  # gossip rounds: nothing of another grid's history comes
        for node in sim.nodes:
            held = held_by_grid(node)
            assert held.pop(node.cfg.grid) == (3 * (1 + ORDERS), ORDERS)  # 3 agents, whole
            assert held == {grid: (3, 0) for grid in ("g0", "g1", "g2") if grid != node.cfg.grid}
        stored = stored_bytes(sim)
        assert 1 < stored["held_over_own_grid"] < 2
    finally:
        await sim.stop()


def test_history_needs_the_preload():
    with pytest.raises(SystemExit):
        parse(["--history", "30"])
    assert parse(["--preload", "--history", "30"]).history == 30
