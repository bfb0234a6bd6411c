"""Rate limits per address block on four real trading nodes, flooded from 16 loopback addresses.

The attack it answers: limits were per address only, so 16 loopback addresses together got
2,282 requests/s with no 429 (and every bucket was cleared once 10,000 addresses were held).
Now 127.0.0.2 ... 127.0.0.17 share their /24's bucket and get 429 with Retry-After beyond it,
while the members' pushes (their own fresh actions) go on through the members' lane, so the
settlement books still agree.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from dataclasses import replace

import msgpack
from nodeproc import Author, wait_until

from market.scenario import default_scenario
from node.cli import launcher as demo

INTERVAL_S = 2
FIRST = 10
RATE = 50  # requests/s per address block (bursts of 100): the flood is well above it
ATTACKERS = [f"127.0.0.{n}" for n in range(2, 18)]
FLOOD_S = 8.0
KIT = ("Home 1", "Home 2", "Community solar", "Neighbourhood battery")


def flood(port: int, source: str, until: float, codes: list, retry_after: list) -> None:
    """GET heads (and now and then POST a stranger's genesis) as fast as one connection can."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    stranger = msgpack.packb([Author(community=demo.COMMUNITY).genesis().wire()],
                             use_bin_type=True)
    n = 0
    try:
        while time.monotonic() < until:
            n += 1
            if n % 10:
                conn.request("GET", "/v1/gossip/heads")
            else:
                conn.request("POST", "/v1/gossip/actions", stranger,
                             {"Content-Type": "application/msgpack"})
            resp = conn.getresponse()
            resp.read()
            codes.append(resp.status)
            if resp.status == 429:
                retry_after.append(resp.getheader("Retry-After"))
    except OSError as exc:
        codes.append(repr(exc))
    finally:
        conn.close()


def books(url: str, k: int, agents: int) -> bool | None:
    view = demo.get_json(f"{url}/v1/intervals/{k}")
    if not view or len(view.get("settlements", {})) < agents:
        return None
    return len({s["book"] for s in view["settlements"].values()}) == 1


def settled(url: str, k: int, agents: int) -> bool:
    """Whether the agents settled `k` on one book, once all settled it (read once)."""
    verdict = wait_until(lambda: (lambda v: None if v is None else [v])(books(url, k, agents)),
                         40, f"interval {k} settled by every agent")
    return verdict[0]


def test_16_loopback_addresses_get_429_while_members_gossip_keeps_flowing(tmp_path):
    kit = default_scenario()
    scenario = replace(kit, agents=tuple(a for a in kit.agents if a.name in KIT))
    nodes = demo.prepare(tmp_path, scenario, demo.free_port_run(len(KIT)), INTERVAL_S,
                         "merit-order", start_in_s=6.0, first_interval=FIRST, round_ms=300)
    for node in nodes:
        config = node.dir / "config.toml"
        text, count = re.subn(r"rate_limit = \d+", f"rate_limit = {RATE}", config.read_text())
        assert count == 1
        config.write_text(text)
    demo.start(nodes)
    try:
        assert not demo.wait_ready(nodes), "nodes did not start"
        first = nodes[0].url
        start = demo.first_open_interval(first, FIRST)
        wait_until(lambda: books(first, start, len(KIT)) is not None, 40, "trading started")
        port = int(first.rsplit(":", 1)[1])
        codes: list = []
        retry_after: list = []
        until = time.monotonic() + FLOOD_S
        flooded_from = demo.first_open_interval(first, start)
        threads = [threading.Thread(target=flood, args=(port, s, until, codes, retry_after))
                   for s in ATTACKERS]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(FLOOD_S + 30)
        elapsed = time.monotonic() - started
        flooded = range(flooded_from, flooded_from + int(FLOOD_S // INTERVAL_S))
        verdicts = [settled(first, k, len(KIT)) for k in flooded]
    finally:
        demo.stop(nodes)
    logs = "\n".join((n.dir / "node.log").read_text()[-2000:] for n in nodes)
    assert not [c for c in codes if isinstance(c, str)], codes[-5:]
    ok, refused = codes.count(200), codes.count(429)
    assert set(codes) <= {200, 429}, set(codes)
    rate = len(codes) / elapsed
    assert refused > 0, f"{len(codes)} requests ({rate:.0f}/s) from 16 addresses, no 429"
    # one /24 bucket for all 16 (plus what the members spent of it): burst + rate x time
    assert ok <= 2 * RATE + RATE * elapsed + 50, (ok, refused, elapsed)
    assert retry_after and all(r is not None and int(r) >= 1 for r in retry_after)
    assert verdicts == [True] * len(verdicts), f"books agreed: {verdicts}\n{logs}"
