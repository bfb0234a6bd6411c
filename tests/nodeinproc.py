"""A small community of in-process nodes, for tests that need real `Node` objects (a helper,
not a test): the kit's agents trade at one interval a second on 127.0.0.1.

    cfgs = community(tmp_path, [HOME1, SOLAR, HOME2])   # keys, configs, genesis; one charter
    nodes = await start_all(cfgs)                       # Node(cfg).start() for each
    await eventually(lambda: ..., 20, "what we wait for")
    # ... and `await node.stop()` for each at the end
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from pathlib import Path

from ledger.chain import now_us
from node.cli.community import create_admin, create_identity, default_charter, write_genesis
from node.config import NodeConfig
from node.node import Node

HOST = "127.0.0.1"
HOME1 = ("Home 1", "consumer", "home1", 0, 1000)
HOME2 = ("Home 2", "consumer", "home2", 0, 1000)
SOLAR = ("Community solar", "generator", "community", 0, 1000)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def community(
    root: Path, agents: list[tuple], influx: dict | None = None, hour: int = 10
) -> list[NodeConfig]:
    """Agents of the kit's scenario in grid "kit", intervals of 1 s, hour `hour` now (sunny);
    the first agent exports to InfluxDB when `influx` is given."""
    admin = create_admin(root)
    epoch = now_us() - hour * 1_000_000
    charter = default_charter("c", admin.agent, "kit", interval_ms=1000, epoch_us=epoch)
    charter = charter.sign(admin)
    cfgs = []
    for name, role, household, capacity, power in agents:
        d = root / name.lower().replace(" ", "-")
        identity = create_identity(d)
        cfg = NodeConfig(
            dir=d,
            name=name,
            role=role,
            household=household,
            grid="kit",
            community="c",
            admin=admin.agent.hex(),
            capacity_wh=capacity,
            max_power_w=power,
            listen=f"{HOST}:{free_port()}",
            round_ms=200,
        )
        write_genesis(cfg, identity, charter, None)
        cfgs.append(cfg)
    for cfg in cfgs:
        cfg.peers = [c.url for c in cfgs if c is not cfg]
    if influx is not None:
        cfgs[0].influx_url = influx["url"]
        cfgs[0].extra = {"influx": influx}
    return cfgs


async def start_all(cfgs: list[NodeConfig]) -> list[Node]:
    """Start a node for each config, in order (stop them with `Node.stop`)."""
    nodes = []
    for cfg in cfgs:
        node = Node(cfg)
        await node.start()
        nodes.append(node)
    return nodes


async def eventually(predicate, timeout: float, what: str):
    """Await until `predicate()` is truthy; an exception in it counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
        except Exception as exc:  # not yet (a database not created yet, ...)
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}; last error: {last!r}"
            )
        await asyncio.sleep(0.1)
