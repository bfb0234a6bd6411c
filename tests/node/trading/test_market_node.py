"""The market on real nodes: seven `picogrid run` processes trade through settled intervals.

One PicoGrid (the default kit at demo pace, starting at 10:00 so the sun shines) serves the
whole module; the tests run in file order: first everything is valid, then a late order and a
forked agent are injected and must be kept out of the market.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import msgpack
import pytest

from ledger.actions import sign_action
from ledger.keys import Identity
from market.intervals import gate_closure_us
from market.scenario import default_scenario
from node.cli import launcher as demo

INTERVAL_S = 2
FIRST = 10




def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = resp.read()
        if resp.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(body)
        return body.decode()


def post_actions(url: str, actions) -> dict:
    body = msgpack.packb([a.wire() for a in actions], use_bin_type=True)
    req = urllib.request.Request(url + "/v1/gossip/actions", data=body, method="POST",
                                 headers={"Content-Type": "application/msgpack"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return msgpack.unpackb(resp.read(), raw=False)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def settled(url: str, k: int, agents: int = 7) -> dict | None:
    view = demo.get_json(f"{url}/v1/intervals/{k}")
    return view if view and demo.interval_settled(view, agents) else None


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    base = tmp_path_factory.mktemp("kit")
    port = demo.free_port_run(7)
    nodes = demo.prepare(base, default_scenario(), port, INTERVAL_S, "merit-order",
                         start_in_s=4.0, first_interval=FIRST, round_ms=300)
    demo.start(nodes)
    try:
        assert not demo.wait_ready(nodes), "nodes did not start"
        yield nodes
    finally:
        demo.stop(nodes)
        for n in nodes:
            log = (n.dir / "node.log").read_text()
            assert "Traceback" not in log, f"{n.name} logged a traceback:\n{log[-3000:]}"


@pytest.fixture(scope="module")
def first(grid) -> int:
    """The first interval every node could order for (a loaded machine starts them late)."""
    return demo.first_open_interval(grid[0].url, FIRST)


def test_seven_agents_settle_confirm_and_audit(grid, first):
    url = grid[0].url
    views = [wait_for(lambda k=k: settled(url, k), 40, f"interval {k} settled")
             for k in range(first, first + 4)]
    for view in views:
        assert len(view["settlements"]) == 7
        assert view["trades"], f"no trades at hour {view['interval']}"
        assert {t["status"] for t in view["trades"]} == {"confirmed"}
        # Every node cleared the same book.
        assert len({s["book"] for s in view["settlements"].values()}) == 1
        figures = {f["name"]: f for f in view["agents"].values()}  # keyed by agent id
        assert figures["Community solar"]["generation_wh"] > 0
        assert view["leds"]["Community solar"] == "flashing"
    # Another node reports the same trades for the same interval.
    other = wait_for(lambda: settled(grid[3].url, first), 10, "node 4 view")
    assert other["trades"] == views[0]["trades"]

    # The auditor recomputes every settlement and finds them all as signed.
    out = subprocess.run([sys.executable, "-m", "node.cli", "audit", url, "--json"],
                         capture_output=True, text=True, timeout=60)
    report = json.loads(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    market = report["market"]
    assert market["problems"] == []
    assert market["settlements_checked"] >= 4 * 7
    assert market["settlements_matching"] == market["settlements_checked"]
    assert market["disputed"] == 0 and market["confirmed"] > 0

    # Trades as CSV, and a home's bill adds up over its intervals.
    csv_text = get(f"{url}/v1/trades?from={first}&to={first + 3}&format=csv")
    assert csv_text.splitlines()[0].startswith("interval,seller_name,buyer_name,energy_wh")
    assert len(csv_text.splitlines()) == 1 + sum(len(v["trades"]) for v in views)
    home = next(a for a in get(f"{url}/v1/agents") if a["name"] == "Home 3")
    bill = get(f"{url}/v1/agents/{home['id']}/bill?from={first}&to={first + 3}")
    assert bill["intervals"], bill
    assert bill["total"]["spent"] == sum(r["spent"] for r in bill["intervals"])
    assert bill["total"]["bought_wh"] > 0


def test_late_order_and_forked_agent_are_excluded(grid, first):
    url, other = grid[0].url, grid[4].url
    charter = demo.get_json(f"{url}/v1/community")["charter"]
    from ledger.charter import Charter

    timing = Charter(community=charter["community"], admin=bytes.fromhex(charter["admin"]),
                     epoch_us=charter["epoch_us"], interval_ms=charter["interval_ms"],
                     lead_ms=charter["lead_ms"], grace_ms=charter["grace_ms"])
    genesis = {"community": charter["community"], "grid": demo.GRID, "role": "consumer",
               "capacity_wh": 0, "max_power_w": 0, "invite": None}
    late, forker = Identity.from_seed(b"L" * 32), Identity.from_seed(b"F" * 32)
    now = time.time_ns() // 1000
    g_late = sign_action(late, 0, None, now, "genesis",
                         {**genesis, "name": "Late", "household": "late"})
    g_fork = sign_action(forker, 0, None, now, "genesis",
                         {**genesis, "name": "Forker", "household": "fork"})
    assert post_actions(url, [g_late, g_fork])["accepted"] == 2

    # Sleep until just after the gate of the next interval closes: a bid signed now is late.
    now = time.time_ns() // 1000
    k = next(j for j in range(first, first + 10_000) if gate_closure_us(timing, j) > now + 100_000)
    time.sleep((gate_closure_us(timing, k) - now) / 1e6 + 0.05)
    t = time.time_ns() // 1000
    assert gate_closure_us(timing, k) < t
    late_bid = sign_action(late, 1, g_late.hash, t, "bid",
                           {"interval": k, "energy_wh": 300, "price": 30000})
    assert post_actions(url, [late_bid])["accepted"] == 1

    # The forker signs two different bids at seq 1 for the next open interval.
    k2 = k + 1
    bid_a = sign_action(forker, 1, g_fork.hash, t, "bid",
                        {"interval": k2, "energy_wh": 100, "price": 30000})
    bid_b = sign_action(forker, 1, g_fork.hash, t, "bid",
                        {"interval": k2, "energy_wh": 200, "price": 30000})
    post_actions(url, [bid_a])
    post_actions(other, [bid_b])

    # Protocol 2 settles once the views are in (bounded by the final deadline): on a loaded Pi
    # that can take several intervals of this sped-up day.
    view = wait_for(lambda: settled(url, k), 60, f"interval {k} settled")
    assert late_bid.hash.hex() not in {o["hash"] for o in view["book"]}
    assert view["late_or_excluded"] >= 1
    assert "Late" not in {t["buyer_name"] for t in view["trades"]}

    def forked_everywhere() -> bool:
        for node in grid:
            agents = demo.get_json(f"{node.url}/v1/agents") or []
            if not any(a["name"] == "Forker" and a["forked"] for a in agents):
                return False
        return True

    wait_for(forked_everywhere, 20, "the fork to reach every node")
    view2 = wait_for(lambda: settled(url, k2), 60, f"interval {k2} settled")
    hashes = {o["hash"] for o in view2["book"]}
    assert bid_a.hash.hex() not in hashes and bid_b.hash.hex() not in hashes
    assert {t["status"] for t in view2["trades"]} <= {"confirmed"}

    out = subprocess.run([sys.executable, "-m", "node.cli", "audit", url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout
    assert "forked" in out.stdout
