"""Market endpoints before the market's first interval: defaults that make sense, never a 400."""

from __future__ import annotations

import socket

import aiohttp

from market.scenario import default_scenario
from node.cli import launcher as demo
from node.config import load_config
from node.node import Node


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_summary_and_trades_default_ranges_before_the_first_interval(tmp_path):
    # A PicoGrid whose interval 0 starts in ten minutes: the current interval is negative.
    nodes = demo.prepare(tmp_path, default_scenario(), free_port(), 60, "merit-order",
                         start_in_s=600.0)
    cfg = load_config(nodes[0].dir)
    cfg.listen = f"127.0.0.1:{free_port()}"
    cfg.peers = []
    node = Node(cfg)
    await node.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{cfg.listen}/v1/summary") as resp:
                assert resp.status == 200, await resp.text()
                body = await resp.json()
            assert body["current"] < 0
            assert body["from"] == body["to"] == body["current"]
            assert body["series"] == [] and body["kpis"] is None
            async with http.get(f"http://{cfg.listen}/v1/trades") as resp:
                assert resp.status == 200
                assert (await resp.json())["trades"] == []
            async with http.get(f"http://{cfg.listen}/v1/trades?from=5&to=1") as resp:
                assert resp.status == 400
                assert "after" in (await resp.json())["error"]
    finally:
        await node.stop()
