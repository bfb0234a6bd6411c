"""The agent loop feeds its meter each interval's contracted flows: in-process nodes trade at one
interval a second, and a battery's signed readings must be what its own settlements agreed,
interval by interval, with its charge carried from one reading to the next."""

from __future__ import annotations

from nodeinproc import SOLAR, community, eventually, start_all

from ledger.store import Store

# The community's own battery: merit-order charges it with the community's solar surplus.
BATTERY = ("Neighbourhood battery", "storage", "community", 20_000, 5000)


def own_chain(cfg) -> list:
    """Every action of the agent's own chain, read from its (stopped) node's store."""
    store = Store(cfg.store_path)
    try:
        me = next(r["author"] for r in store.agents() if r["name"] == cfg.name)
        return list(store.chain(me, 0, 10_000))
    finally:
        store.close()


def bought_sold(agent: bytes, settlement: dict) -> tuple[int, int]:
    """(Wh bought, Wh sold) by `agent` in a settlement payload's trades."""
    bought = sum(t[2] for t in settlement["trades"] if t[1] == agent)
    sold = sum(t[2] for t in settlement["trades"] if t[0] == agent)
    return bought, sold


async def test_a_batterys_readings_are_its_settled_flows(tmp_path):
    cfgs = community(tmp_path, [SOLAR, BATTERY], hour=12)  # a sunny noon: surplus to store
    nodes = await start_all(cfgs)
    battery = nodes[1]
    try:
        await eventually(lambda: len(battery.agent.read) >= 5, 30, "five readings signed")
    finally:
        for node in nodes:
            await node.stop()
    chain = own_chain(cfgs[1])
    me = chain[0].author
    settled = {a.payload["interval"]: a.payload for a in chain if a.type == "settlement"}
    readings = [a.payload for a in chain if a.type == "reading"]
    assert len(readings) >= 5
    moved = 0
    previous_soc = 0  # a new battery is empty
    for reading in readings:
        k = reading["interval"]
        flows = bought_sold(me, settled[k]) if k in settled else (0, 0)
        assert (reading["import_wh"], reading["export_wh"]) == flows, k
        assert reading["soc_wh"] == max(0, min(20_000, previous_soc + flows[0] - flows[1])), k
        assert reading["sensor"] == "sim" and reading["samples"] == 0
        previous_soc = reading["soc_wh"]
        moved += flows[0] + flows[1]
    assert moved > 0, "the battery never traded: nothing was checked"
