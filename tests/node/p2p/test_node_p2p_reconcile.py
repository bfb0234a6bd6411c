"""POST /v1/gossip/reconcile (heads) and /v1/gossip/reconcile/infos (agent infos) on a real node,
and gossip rounds that reconcile both (falling back to the whole lists with a peer that does not
know the endpoints)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nodeproc import Author, Cluster, heads, post_actions, request

from ledger import reconcile as rc
from ledger.chain import now_us
from node.p2p import peers as table

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from netsim import Sim  # noqa: E402


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("reconcile")) as c:
        a = c.found("A")
        c.start(a, rate_limit=100_000)
        post_actions(a.url, Author(name="r").extend(3))
        yield a


def ask(url: str, query: bytes):
    return request("POST", f"{url}/v1/gossip/reconcile", query,
                   {"Content-Type": "application/msgpack"})


def test_a_synced_peer_gets_an_empty_answer(node) -> None:
    mine = {a: (s, h) for a, (s, h) in heads(node.url).items()}
    resp = ask(node.url, rc.start(rc.HeadSet.of(mine)))
    assert resp.status == 200 and resp.body == b"\x90"
    assert resp.headers["picogrid-charter-version"].isdigit()


def test_an_empty_peer_learns_every_head(node) -> None:
    mine = {a: (s, h) for a, (s, h) in heads(node.url).items()}
    out = rc.reconcile({}, lambda q: ask(node.url, q).body)
    assert out.pull == mine and out.push == {}


@pytest.mark.parametrize("body", [b"", b"\xc1", b"\x90\x90", rc.encode([[b"", None, b"x"]])])
def test_a_bad_query_gets_400_with_a_json_error(node, body: bytes) -> None:
    resp = ask(node.url, body)
    assert resp.status == 400 and "error" in resp.json()


def ask_infos(url: str, query: bytes):
    return request("POST", f"{url}/v1/gossip/reconcile/infos", query,
                   {"Content-Type": "application/msgpack"})


def test_an_empty_peer_learns_the_agent_info_and_fetches_it(node) -> None:
    out = rc.reconcile({}, lambda q: ask_infos(node.url, q).body)
    assert len(out.pull) == 1 and out.push == {}
    (agent, (created, _)), = out.pull.items()
    resp = request("POST", f"{node.url}/v1/gossip/infos", msgpack.packb([agent, bytes(32)]),
                   {"Content-Type": "application/msgpack"})
    assert resp.status == 200
    infos = resp.msgpack()
    assert len(infos) == 1 and len(infos[0]) == 2  # the unknown agent is left out
    synced = rc.reconcile(out.pull, lambda q: ask_infos(node.url, q).body)
    assert synced.pull == {} and synced.push == {} and synced.exchanges == 1


@pytest.mark.parametrize("body", [b"\xc1", msgpack.packb([b"short"]), msgpack.packb({})])
def test_a_bad_infos_request_gets_400(node, body: bytes) -> None:
    resp = request("POST", f"{node.url}/v1/gossip/infos", body,
                   {"Content-Type": "application/msgpack"})
    assert resp.status == 400 and "error" in resp.json()
    assert ask_infos(node.url, body).status == 400


async def only_fingerprints_cross(sim: Sim) -> None:
    """Over 3 idle seconds, no agent info crosses the wire: infos exchanges are 24-byte
    fingerprints only."""
    await asyncio.sleep(1.5)  # let exchanges that started before the last info finish
    before = dict(sim.net.by_kind)
    await asyncio.sleep(3)
    spent = {k: v - before.get(k, 0) for k, v in sim.net.by_kind.items()}
    assert spent.get("peers", 0) == 0 and spent.get("infos", 0) == 0, spent
    assert spent["reconcile_infos"] > 0 and spent["reconcile_infos"] % 24 == 0, spent


@pytest.mark.timeout(180)
async def test_an_idle_community_exchanges_no_infos_only_fingerprints(tmp_path: Path) -> None:
    """Peer exchange reconciles infos: once every node holds every info, an exchange is one
    24-byte query and an empty answer, and no info crosses the wire."""
    sim = Sim(10, 2, tmp_path, round_ms=100, seed=17, loss=0.0)  # discovery from node 0
    sim.start()
    try:
        assert await sim.settle(90) < float("inf")
        for _ in range(300):
            if all(len(n.peers.infos) == 9 for n in sim.nodes):
                break
            await asyncio.sleep(0.1)
        await only_fingerprints_cross(sim)
    finally:
        await sim.stop()


@pytest.mark.timeout(180)
async def test_past_the_peer_tables_size_every_node_holds_every_info(tmp_path: Path,
                                                                     monkeypatch) -> None:
    """A community larger than the peer table (MAX_PEERS, 256; 6 here): each node calls at most
    6 learned peers, its own grid's first, yet holds and passes on every member's info, so the
    infos sets agree and an idle exchange is a fingerprint. (When nodes passed on only the
    infos whose URL proved itself to them, each held a different share, for good.)"""
    monkeypatch.setattr(table, "MAX_PEERS", 6)
    sim = Sim(15, 3, tmp_path, round_ms=100, seed=19, loss=0.0, replicate="grid")
    sim.start()
    try:
        assert await sim.settle(120) < float("inf")  # every info held, every candidate asked
        shared = {n.identity.agent: {i.agent for i in n.infos.held(now_us())} for n in sim.nodes}
        assert all(len(held) == 15 for held in shared.values())
        for node in sim.nodes:
            learned = [p for p in node.peers.by_url.values() if not p.given]
            assert len(learned) <= 6
            ours = {n.cfg.url for n in sim.nodes if n.cfg.grid == node.cfg.grid} - {node.cfg.url}
            assert ours <= {p.url for p in node.peers.by_url.values() if p.proven}, (
                node.cfg.name, [(p.url, p.proven, p.given, p.source) for p in node.peers.all()],
                node.peers.waiting, node.peers.disproved)
        await only_fingerprints_cross(sim)
    finally:
        await sim.stop()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("speaks", [True, False])
async def test_gossip_converges_with_and_without_the_endpoint(tmp_path: Path, speaks) -> None:
    """Peers that answer 404 (older nodes) are synced through the heads list instead."""
    sim = Sim(12, 3, tmp_path, round_ms=250, seed=11, loss=0.0, reconcile=speaks, know_all=True)
    sim.start()
    try:
        assert await sim.settle(60) < float("inf")
        action = await sim.post(sim.nodes[5], 1)
        assert await sim.wait_all([(action.author, action.seq)], 60) < float("inf")
        fallbacks = sum(len(n.gossip._old_peers) for n in sim.nodes)
        assert (fallbacks == 0) is speaks
        counted = sum(n.metrics["gossip_heads_fallback"] for n in sim.nodes)
        assert (counted == 0) is speaks
    finally:
        await sim.stop()


@pytest.mark.timeout(180)
async def test_idle_reconciliation_costs_the_same_for_8_and_40_nodes(tmp_path: Path) -> None:
    """Heads and forks are reconciled every round: an exchange between synced nodes is a 23-byte
    query and the 1-byte empty answer, whatever the number of nodes."""
    per_exchange = {}
    for n in (8, 40):
        sim = Sim(n, 4, tmp_path / str(n), round_ms=250, seed=13, loss=0.0, know_all=True)
        sim.start()
        try:
            assert await sim.settle(90) < float("inf")
            net = sim.net
            kinds = ("reconcile", "reconcile_forks")
            before = {k: (net.exchanges[k], net.exchange_bytes[k]) for k in kinds}
            await asyncio.sleep(3)
            for k in kinds:
                calls = net.exchanges[k] - before[k][0]
                assert calls >= n, (k, calls)  # about one a round per node
                per_exchange[n, k] = (net.exchange_bytes[k] - before[k][1]) / calls
        finally:
            await sim.stop()
    # 24 bytes a synced exchange; a little more when a genesis or a loss is still in flight
    assert all(24 <= x < 60 for x in per_exchange.values()), per_exchange
    assert per_exchange[8, "reconcile_forks"] == per_exchange[40, "reconcile_forks"] == 24


ranges = st.lists(st.tuples(st.binary(max_size=33), st.none() | st.binary(max_size=33),
                            st.binary(min_size=14, max_size=17) | st.just([])), max_size=70)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200) | ranges.map(lambda r: rc.encode([list(x) for x in r])))
def test_random_queries_never_get_500(node, body: bytes) -> None:
    resp = ask(node.url, body)
    assert resp.status in (200, 400), resp.body[:200]
    if resp.status == 400:
        assert "error" in resp.json()
