"""The figures a node shows, checked on seven real `picogrid run` processes against what the
agents signed: a battery's level against its own signed readings, and an interval's clearing
price against the clearing recomputed from the book the node shows.

One PicoGrid (the default kit, pay-as-clear, starting at 10:00 so the sun charges the batteries)
serves the module.
"""

from __future__ import annotations

import time

import pytest

from ledger.actions import decode_action
from market.clearing import clear
from market.orders import Order
from market.participants import Participant
from market.scenario import default_scenario
from node.cli import launcher as demo

INTERVAL_S = 2
FIRST = 10
BATTERIES = ("Home battery", "Neighbourhood battery")


def battery_ids(rows: list[dict], names) -> dict[str, str]:
    return {r["name"]: r["id"] for r in rows if r["name"] in names}


def view_figures(view: dict, agent_hex: str, name: str) -> dict:
    """An agent's figures in a view: keyed by its id, its name beside them."""
    fig = view["agents"][agent_hex]
    assert fig["name"] == name
    return fig


def settled(url: str, k: int) -> dict | None:
    view = demo.get_json(f"{url}/v1/intervals/{k}")
    return view if view and demo.interval_settled(view, 7) else None


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    base = tmp_path_factory.mktemp("kit-pac")
    port = demo.free_port_run(7)
    nodes = demo.prepare(base, default_scenario(), port, INTERVAL_S, "pay-as-clear",
                         start_in_s=4.0, first_interval=FIRST, round_ms=300)
    demo.start(nodes)
    try:
        assert not demo.wait_ready(nodes), "nodes did not start"
        # A loaded machine may start the nodes after 10:00's gate: follow from the first hour
        # every node settled.
        url = nodes[0].url
        start = demo.first_open_interval(url, FIRST)
        yield nodes, wait_for(lambda: next((k for k in range(start - 2, start + 6)
                                            if settled(url, k)), None), 60, "a settled hour")
    finally:
        demo.stop(nodes)


def signed_readings(url: str, agent_hex: str) -> dict[int, dict]:
    """interval -> the agent's `reading` payload, from its chain with every signature checked."""
    from nodehttp import get_msgpack

    out = {}
    for action_bytes, signature in get_msgpack(f"{url}/v1/gossip/chain/{agent_hex}?limit=1000"):
        action = decode_action(action_bytes, signature, check_signature=True)
        if action.type == "reading":
            out[action.payload["interval"]] = action.payload
    return out


def test_battery_level_shown_is_the_batterys_signed_reading(kit):
    kit, first = kit
    url = kit[0].url
    ids = battery_ids(demo.get_json(f"{url}/v1/agents"), BATTERIES)
    last = first + 3
    # Readings of `last` are signed once `last` has ended.
    wait_for(lambda: all(last in signed_readings(n.url, ids[n.name])
                         for n in kit if n.name in ids), 60, f"readings of {last}")
    summary = demo.get_json(f"{url}/v1/summary?from={first}&to={last}")
    series = {row["interval"]: row for row in summary["series"]}
    moved = 0
    for n in kit:
        if n.name not in ids:
            continue
        readings = signed_readings(n.url, ids[n.name])
        for k in range(first, last + 1):
            view = demo.get_json(f"{url}/v1/intervals/{k}")
            fig = view_figures(view, ids[n.name], n.name)
            signed = readings[k]["soc_wh"]
            assert fig["soc_wh"] == signed, (n.name, k, fig, readings[k])
            assert series[k]["soc_wh"][ids[n.name]] == signed, (n.name, k, series[k])
            if k - 1 in readings:  # what it charged is what its readings say moved
                assert signed - readings[k - 1]["soc_wh"] == \
                    fig["charged_wh"] - fig["discharged_wh"], (n.name, k)
            moved += fig["charged_wh"] + fig["discharged_wh"]
    assert moved > 0, "no battery traded: the test would prove nothing"


def test_interval_clearing_price_is_the_clearing_of_the_book(kit):
    kit, first = kit
    url = kit[0].url
    rows = demo.get_json(f"{url}/v1/agents")
    participants = {
        bytes.fromhex(r["id"]): Participant(bytes.fromhex(r["id"]), r["name"], r["role"],
                                            r["household"], r["capacity_wh"], r["max_power_w"])
        for r in rows
    }
    scenario = default_scenario()
    rules = scenario.rules.__class__(**{**scenario.rules.to_map(), "mechanism": "pay-as-clear"})
    priced = 0
    for k in range(first, first + 3):
        view = wait_for(lambda k=k: (v := demo.get_json(f"{url}/v1/intervals/{k}"))
                        and demo.interval_settled(v, 7) and v, 60, f"interval {k} settled")
        book = [Order(bytes.fromhex(o["hash"]), bytes.fromhex(o["author"]), 0, o["side"], k,
                      o["energy_wh"], o["price"], o["ts"]) for o in view["book"]]
        # The hour's energy: the demo's intervals each stand for an hour.
        expected = clear(book, participants, rules, interval_ms=3_600_000)
        assert view["clearing_price"] == expected.clearing_price, (k, view["clearing_price"])
        assert view["mechanism"] == "pay-as-clear"
        if expected.clearing_price is not None:
            priced += 1
            assert {t["price"] for t in view["trades"]} == {expected.clearing_price}
    assert priced, "no interval cleared at a price: the test would prove nothing"
