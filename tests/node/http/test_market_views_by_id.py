"""Views key agents by id: members with the same name are told apart, never merged or
overwritten (`/v1/intervals/{k}`, `/v1/summary`); `/v1/summary` is computed once per interval
and new data, not once per poll. Real in-process nodes on 127.0.0.1 with real stores."""

from __future__ import annotations

import aiohttp
from nodeinproc import HOST, eventually, free_port, start_all

from ledger.chain import now_us
from market.participants import Participant, labels
from market.scenario import default_scenario
from node.cli import launcher as demo
from node.cli.community import create_admin, create_identity, default_charter, write_genesis
from node.config import NodeConfig, load_config
from node.node import Node

# Three members called "Home 1" (two in one household), a solar and a battery.
AGENTS = [
    ("Home 1", "consumer", "home1", 0, 0),
    ("Home 1", "consumer", "home2", 0, 0),
    ("Home 1", "consumer", "home2", 0, 0),
    ("Community solar", "generator", "community", 0, 0),
    ("Neighbourhood battery", "storage", "community", 20000, 5000),
]


def test_labels_tell_equal_names_apart():
    ids = [bytes([i]) * 32 for i in range(4)]
    who = {ids[0]: Participant(ids[0], "Home", "consumer", "a"),
           ids[1]: Participant(ids[1], "Home", "consumer", "b"),
           ids[2]: Participant(ids[2], "Home", "consumer", "b"),
           ids[3]: Participant(ids[3], "Solar", "generator", "a")}
    shown = labels(who)
    assert shown[ids[0]] == "Home (a)" and shown[ids[3]] == "Solar"
    assert shown[ids[1]] == f"Home (b, {ids[1].hex()[:8]})"
    assert len(set(shown.values())) == 4


def same_names(root) -> list[NodeConfig]:
    admin = create_admin(root)
    charter = default_charter("c", admin.agent, "kit", interval_ms=1000,
                              epoch_us=now_us() - 10 * 1_000_000).sign(admin)
    cfgs = []
    for i, (name, role, household, capacity, power) in enumerate(AGENTS):
        d = root / f"agent-{i}"
        identity = create_identity(d)
        cfg = NodeConfig(dir=d, name=name, role=role, household=household, grid="kit",
                         community="c", admin=admin.agent.hex(), capacity_wh=capacity,
                         max_power_w=power, listen=f"{HOST}:{free_port()}", round_ms=200)
        write_genesis(cfg, identity, charter, None)
        cfgs.append(cfg)
    for cfg in cfgs:
        cfg.peers = [c.url for c in cfgs if c is not cfg]
    return cfgs


async def test_members_with_one_name_are_never_merged(tmp_path):
    nodes = await start_all(same_names(tmp_path))
    url = nodes[0].cfg.url
    homes = {n.identity.agent_hex for n in nodes if n.cfg.name == "Home 1"}
    try:
        async with aiohttp.ClientSession() as http:
            async def get(path):
                async with http.get(url + path) as resp:
                    assert resp.status == 200, await resp.text()
                    return await resp.json()

            async def metered():
                now = (await get("/v1/summary"))["current"]
                for k in range(now - 1, now - 6, -1):
                    view = await get(f"/v1/intervals/{k}")
                    # Settled and metered by all five: on a loaded machine the settlements of
                    # an interval may come after its readings, or a node may abstain from one.
                    if (len(view["readings"]) == len(view["settlements"]) == len(AGENTS)
                            and view["kpis"]):
                        return view
                return None

            view = await eventually(metered, 60, "an interval settled and metered by all five")
            assert homes <= set(view["agents"]) and len(view["agents"]) == len(AGENTS)
            assert {view["agents"][h]["name"] for h in homes} == {"Home 1"}
            shown = {view["names"][h] for h in homes}
            assert len(shown) == 3 and "Home 1 (home1)" in shown, shown
            assert set(view["settlements"]) == set(view["readings"]) == set(view["agents"])
            demands = [view["agents"][h]["demand_wh"] for h in homes]  # each its own figure
            assert len(demands) == 3 and len(set(demands)) == 1 and demands[0] > 0
            bills = view["kpis"]["bills"]
            assert homes <= set(bills)
            summary = await get(f"/v1/summary?from={view['interval']}&to={view['interval']}")
            assert homes <= set(summary["kpis"]["bills"])
            assert homes <= set(summary["kpis"]["savings"]["per_agent"])
            assert homes <= set(summary["kpis"]["home_shares"])
            assert summary["kpis"]["bills"] == bills  # one interval: the same bills
            assert {summary["names"][h] for h in homes} == shown
            for t in view["trades"]:  # trades name their sides as the view does
                assert t["buyer_name"] == view["names"][t["buyer"]]
    finally:
        for node in nodes:
            await node.stop()


async def test_summary_is_computed_once_per_interval_and_new_data(tmp_path):
    # A PicoGrid whose interval 0 starts in ten minutes: nothing new arrives while it waits.
    prepared = demo.prepare(tmp_path, default_scenario(), free_port(), 2, "merit-order",
                            start_in_s=600.0)
    cfg = load_config(prepared[0].dir)
    cfg.listen = f"{HOST}:{free_port()}"
    cfg.peers = []
    node = Node(cfg)
    await node.start()
    try:
        async with aiohttp.ClientSession() as http:
            async def poll():
                async with http.get(f"http://{cfg.listen}/v1/summary") as resp:
                    assert resp.status == 200
                    return await resp.json()

            # (the store is read before the first poll: an action it takes while that poll is
            # computed makes the next poll compute again, and counts as new)
            stored = node.store.latest_rowid()
            first = await poll()
            computed = node.metrics["summary_computed"]
            seen, polls = {first["current"]}, 20
            for _ in range(polls):
                seen.add((await poll())["current"])
            # A poll computes only when the interval moved on or the store took an action.
            new_actions = node.store.latest_rowid() - stored
            extra = node.metrics["summary_computed"] - computed
            assert extra <= len(seen) - 1 + new_actions, (extra, seen, new_actions)
            assert extra < polls
            # Once the interval moves on (every 2 s here), the next poll computes it afresh.
            before = node.metrics["summary_computed"]
            moved = await eventually(_next_interval(poll, max(seen)), 10, "the next interval")
            assert moved["current"] > max(seen)
            assert node.metrics["summary_computed"] > before
    finally:
        await node.stop()


def _next_interval(poll, current):
    async def check():
        body = await poll()
        return body if body["current"] > current else None
    return check
