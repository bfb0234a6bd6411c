"""The heads item of an author known to have forked (node.p2p.scoping): fixed, the same on every
node that knows the fork, so nodes holding different branches of the chain stop finding a
difference (and pulling) every round."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from netsim import Sim  # noqa: E402

from ledger import reconcile as rc  # noqa: E402
from node.p2p.scoping import forked_hash  # noqa: E402


def test_forked_item_vector() -> None:
    """A test vector for implementers: author 00 01 .. 1f, found forked at seq 5."""
    author = bytes(range(32))
    h = forked_hash(author)
    assert h == rc.blake2b256(b"picogrid-forked" + author)
    assert h.hex() == "12f9d8b4c60f9e68b914d1bd07812a0df4fe9c69d0976c1a0c95b6c52cf0f8ce"
    fp = rc.HeadSet.of({author: (5, h)}).fingerprint(rc.FULL)
    assert fp.hex() == "0f7ce354bf207b01ae740d206f374fd0"


def traffic_marks(sim: Sim) -> tuple[int, int, int]:
    """Chain bytes pulled, push bytes sent, and duplicate actions received, community-wide."""
    return (sim.net.by_kind["chain"], sim.net.by_kind["actions"],
            sum(n.metrics["actions_duplicate"] for n in sim.nodes))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("replicate", ["community", "grid"])
async def test_nodes_on_different_branches_of_a_fork_agree(tmp_path: Path, replicate: str) -> None:
    sim = Sim(8, 2, tmp_path, round_ms=200, seed=41, loss=0.0, know_all=True,
              replicate=replicate)
    sim.start()
    try:
        assert await sim.settle(90) < float("inf")
        g1 = [n for n in sim.nodes if n.cfg.grid == "g1"]
        cheat = await sim.fork(g1[0], g1[1], g1[2])
        assert await sim.wait_forked(cheat, 60) < float("inf")
        # g1[1] and g1[2] hold different actions at the fork's seq, for good.
        assert g1[1].store.head(cheat).hash != g1[2].store.head(cheat).hash
        agreed = False
        for _ in range(300):  # the warrants spread; then every node announces the same heads
            heads = [n.gossip.scope.heads() for n in sim.nodes]
            if all(h == heads[0] for h in heads):
                agreed = True
                break
            await sim.net_idle(0.1)
        assert agreed
        assert heads[0][cheat] == (1, forked_hash(cheat))
        # Warrants, alarms and rounds already under way land (on a loaded machine a push can
        # arrive a second late): wait for a second with no pull, no push and no duplicate. Nodes
        # that pulled or pushed a branch again every round (0.2 s) would never be that quiet.
        marks = traffic_marks(sim)
        quiet_since = time.monotonic()
        for _ in range(600):
            await sim.net_idle(0.1)
            if traffic_marks(sim) != marks:
                marks, quiet_since = traffic_marks(sim), time.monotonic()
            elif time.monotonic() - quiet_since >= 1.0:
                break
        else:
            pytest.fail(f"the community kept pulling or pushing: {marks}")
        await sim.net_idle(2.0)  # about 10 rounds each
        assert traffic_marks(sim) == marks  # nothing is pulled or pushed again
    finally:
        await sim.stop()
