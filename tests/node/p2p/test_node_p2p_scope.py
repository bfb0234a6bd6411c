"""Replication scoped by grid (node.p2p.scoping, node.p2p.community) on real node cores in the
network simulator: a node holds its grid's chains whole and only the genesis of the others, its
grid's actions still reach every node of the grid, and a fork in another grid still reaches
every node of the community."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from netsim import Sim  # noqa: E402


def grid_nodes(sim: Sim, grid: str) -> list:
    return [n for n in sim.nodes if n.cfg.grid == grid]


@pytest.mark.timeout(240)
async def test_a_node_holds_its_grid_whole_and_of_other_grids_the_genesis(tmp_path: Path) -> None:
    sim = Sim(12, 3, tmp_path, round_ms=200, seed=21, loss=0.0, know_all=True, replicate="grid")
    sim.start()
    try:
        assert await sim.settle(90) < float("inf")
        posted = [await sim.post(node, 1) for node in sim.nodes]
        assert await sim.wait_all([(a.author, a.seq) for a in posted], 90) < float("inf")
        for node in sim.nodes:
            for action, author_node in zip(posted, sim.nodes, strict=True):
                head = node.store.head(action.author)
                if author_node.cfg.grid == node.cfg.grid:
                    assert head.seq == 1
                else:
                    assert head.seq == 0  # the genesis only ...
        for _ in range(600):  # ... and the head as a pointer, once a round has compared
            if all(node.gossip.scope.heads()[a.author][0] == 1
                   for node in sim.nodes for a in posted):
                break
            await sim.net_idle(0.1)
        assert all(node.gossip.scope.heads()[a.author][0] == 1
                   for node in sim.nodes for a in posted)
    finally:
        await sim.stop()


@pytest.mark.timeout(240)
async def test_scoped_replication_still_detects_a_fork_in_another_grid(tmp_path: Path) -> None:
    sim = Sim(12, 3, tmp_path, round_ms=200, seed=23, loss=0.0, know_all=True, replicate="grid")
    sim.start()
    try:
        assert await sim.settle(90) < float("inf")
        g1 = grid_nodes(sim, "g1")
        cheat = await sim.fork(g1[0], g1[1], g1[2])
        assert await sim.wait_forked(cheat, 90) < float("inf")
        others = [n for n in sim.nodes if n.cfg.grid != "g1"]
        for node in others:
            assert node.store.head(cheat).seq == 0  # it never held the cheat's chain ...
            evidence = node.store.fork_evidence(cheat)
            assert len(evidence) == 2 and evidence[0].seq == evidence[1].seq == 1
        # Each learned it once: from the evidence (the fork alarm, the forks set), or from a
        # warrant of the cheat's grid, which a node holds whatever its scope (that path is not
        # counted in forks_learned; which one comes first is a race, seen under load).
        assert all(n.metrics["forks_learned"] <= 1 for n in others)
    finally:
        await sim.stop()
