"""The fork alarm (node.p2p.forkpush) on real node cores in the network simulator, with every
node keeping its own grid only: a fork found in one grid reaches the nodes of another grid by
the push alone (anti-entropy rounds stopped), each node raises the alarm once, and pushed pairs
that are forged, or not a member's, are never kept."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from netsim import Sim  # noqa: E402

from ledger.errors import BAD_SIGNATURE  # noqa: E402
from ledger.testing import ChainSigner, identity, order_payload  # noqa: E402
from node.p2p import wire  # noqa: E402
from node.p2p.forkpush import FANOUT, MAX_EVIDENCE_PER_BATCH  # noqa: E402


async def settled_without_rounds(tmp_path: Path, seed: int) -> Sim:
    """6 scoped nodes in grids g0 and g1 that know each other, their rounds then stopped."""
    sim = Sim(6, 2, tmp_path, round_ms=200, seed=seed, loss=0.0, know_all=True,
              replicate="grid")
    sim.start()
    assert await sim.settle(90) < float("inf")
    for _ in range(300):  # every node knows every peer's agent (so, its grid)
        if all(p.agent is not None for n in sim.nodes for p in n.peers.all()):
            break
        await asyncio.sleep(0.05)
    for task in sim.tasks:  # no more anti-entropy: what moves now is pushed
        task.cancel()
    for node in sim.nodes:  # nor a round started by news (a fork learned, a new peer)
        node.gossip.start_round = lambda peer=None: None
    await asyncio.gather(*sim.tasks, *(t for n in sim.nodes for t in n.gossip._round_tasks),
                         return_exceptions=True)
    return sim


def forked_pair(signer: ChainSigner, base) -> tuple[list[bytes], list[bytes]]:
    one = signer.at(base, payload=order_payload(interval=base.seq + 1, price=1))
    two = signer.at(base, payload=order_payload(interval=base.seq + 1, price=2))
    return one.wire(), two.wire()


async def push(sim: Sim, node, items: list[list[bytes]]) -> dict:
    """What `node` answers to a pushed batch (the code behind POST /v1/gossip/actions)."""
    answers = sim.net.nodes[node.cfg.url]
    return wire.unpack(await answers.actions(wire.pack(items), False))


@pytest.mark.timeout(240)
async def test_a_fork_reaches_another_grid_by_the_alarm_alone(tmp_path: Path) -> None:
    sim = await settled_without_rounds(tmp_path, seed=31)
    try:
        g1 = [n for n in sim.nodes if n.cfg.grid == "g1"]
        g0 = [n for n in sim.nodes if n.cfg.grid == "g0"]
        rounds = [n.metrics["gossip_rounds"] for n in sim.nodes]
        cheat = await sim.fork(g1[0], g1[1], g1[2])
        assert await sim.wait_forked(cheat, 30) < float("inf")
        assert [n.metrics["gossip_rounds"] for n in sim.nodes] == rounds  # no round ran
        for node in g0:
            assert node.store.head(cheat).seq == 0  # it never held the cheat's chain ...
            evidence = node.store.fork_evidence(cheat)  # ... but keeps the evidence
            assert len(evidence) == 2 and evidence[0].seq == evidence[1].seq == 1
            assert node.metrics["forks_learned"] == 1
        await asyncio.sleep(1.0)  # let every alarm end
        sent = [n.metrics["fork_alarms_sent"] for n in sim.nodes]
        assert sum(sent) > 0
        # Each node raised the alarm once at most: the alarm dies out.
        assert all(n.metrics["fork_alarms_raised"] <= 1 for n in sim.nodes)
        assert all(s <= FANOUT for s in sent)
        await asyncio.sleep(1.0)
        assert [n.metrics["fork_alarms_sent"] for n in sim.nodes] == sent
        # The same evidence pushed again is not news: no second alarm.
        pair = sim.nodes[0].gossip.forkpush.evidence(cheat)
        answer = await push(sim, g0[0], [list(i) for i in pair])
        assert answer["rejected"] == []
        assert g0[0].metrics["fork_alarms_raised"] <= 1
    finally:
        await sim.stop()


@pytest.mark.timeout(240)
async def test_a_forged_or_strangers_pair_is_not_kept(tmp_path: Path) -> None:
    sim = await settled_without_rounds(tmp_path, seed=33)
    try:
        g0 = [n for n in sim.nodes if n.cfg.grid == "g0"]
        g1 = [n for n in sim.nodes if n.cfg.grid == "g1"]
        receiver, member = g0[0], g1[0]
        signer = ChainSigner(member.identity)
        base = member.store.get_by_seq(member.identity.agent, 0)
        one, two = forked_pair(signer, base)
        forged = [two[0], bytes(64)]  # the same action with a signature that is not its author's
        answer = await push(sim, receiver, [one, forged])
        assert sorted(r for _, r in answer["rejected"]) == [BAD_SIGNATURE, BAD_SIGNATURE]
        assert member.identity.agent not in receiver.store.forked_authors()
        assert receiver.store.fork_evidence(member.identity.agent) == []
        assert receiver.metrics["fork_alarms_raised"] == 0

        # A stranger (no genesis held) gets nothing kept, nor does its pair make it a member.
        stranger = identity(4242)
        s_signer = ChainSigner(stranger)
        s_genesis = s_signer.genesis("other-community", "g1", name="x")
        s_one, s_two = forked_pair(s_signer, s_genesis)
        answer = await push(sim, receiver, [s_one, s_two])
        assert answer["accepted"] == 0
        assert receiver.store.head(stranger.agent) is None
        assert stranger.agent not in receiver.store.forked_authors()
        # With its genesis of another community in the batch: refused at the membrane.
        answer = await push(sim, receiver, [s_genesis.wire(), s_one, s_two])
        assert answer["accepted"] == 0
        assert receiver.store.head(stranger.agent) is None
        assert receiver.store.fork_evidence(stranger.agent) == []

        # Many pairs in one batch: at most MAX_EVIDENCE_PER_BATCH are even checked.
        many = []
        for n in range(MAX_EVIDENCE_PER_BATCH + 3):
            ident = identity(5000 + n)
            sig = ChainSigner(ident)
            many += forked_pair(sig, sig.genesis("sim", "g1", name=f"s{n}"))
        candidates = receiver.gossip.forkpush.candidates(
            [(i, (body, sig)) for i, (body, sig) in enumerate(many)])
        assert len(candidates) == MAX_EVIDENCE_PER_BATCH

        # The member's real pair is kept, and raises the alarm once.
        answer = await push(sim, receiver, [one, two])
        assert answer["accepted"] == 2 and answer["rejected"] == []
        assert member.identity.agent in receiver.store.forked_authors()
        assert len(receiver.store.fork_evidence(member.identity.agent)) == 2
        assert receiver.metrics["fork_alarms_raised"] == 1
    finally:
        await sim.stop()
