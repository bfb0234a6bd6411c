"""Network simulator: N real node cores in one process over an in-memory transport.

Each simulated node is a real `Node` (its own SQLite store on tmpfs, the real `ingest` with every
signature checked, the real `Gossip` with its eager push, anti-entropy rounds and peer exchange)
whose gossip talks through `netsim_transport.Net` instead of aiohttp: 20-300 ms per link, 1 %
message loss, partitions and churn. The agent loop is replaced by a load generator that signs
orders at the kit's pace (4 actions per agent per interval: offer or bid, settlement, reading).

Adapter (the smallest one that works with today's code): a Node is built but not started (no HTTP
server, no hardware, no agent loop); its verify pool and store writer are shared by all nodes
(two verify threads, one writer thread, instead of three threads per node); `gossip.client` is
replaced by the simulator's; `session` is set to a placeholder so that gossip pushes.

Real clock, not virtual: the code under test reads time.monotonic and the wall clock itself.

Prints one JSON line. Every node starts knowing node 0 only and finds the others by peer exchange.

    python benchmarks/netsim.py [--nodes 100] [--grids 10] [--trials 20] [--round-ms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from netsim_transport import HTTP_HEADERS, Net  # noqa: E402

from ledger.testing import genesis_payload, identity, order_payload  # noqa: E402
from node.config import NodeConfig  # noqa: E402
from node.node import Node  # noqa: E402

HOLOCHAIN_REFERENCE = {"wind_tunnel_mean_sync_lag_s": 49, "peers": 10}
ADMIN = "00" * 32
POLL_S = 0.02


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def rss_bytes() -> int:
    """This process's resident set, now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Sim:
    """A community of simulated nodes over one Net."""

    def __init__(self, n: int, grids: int, directory: Path, round_ms: int, seed: int = 1,
                 know_all: bool = False, **net_options) -> None:
        self.net = Net(seed=seed, **net_options)
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="verify")
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="store")
        self.nodes: list[Node] = []
        self.tasks: list[asyncio.Task] = []
        for i in range(n):
            self.nodes.append(self._node(i, f"g{i % grids}", directory, round_ms, seed))
        self.urls = [node.cfg.url for node in self.nodes]
        if know_all:  # skip discovery: every node starts knowing every URL
            for node in self.nodes:
                for url in self.urls:
                    node.peers.add_url(url, bootstrap=True)

    def _node(self, i: int, grid: str, directory: Path, round_ms: int, seed: int) -> Node:
        url = f"http://n{i}.sim"  # agent infos carry http(s) URLs only
        cfg = NodeConfig(dir=directory / f"n{i}", name=f"n{i}", role="consumer",
                         household=f"h{i}", grid=grid, community="sim", admin=ADMIN,
                         listen=f"127.0.0.1:{i + 1}", public_url=url,
                         peers=[] if i == 0 else ["http://n0.sim"], round_ms=round_ms)
        cfg.dir.mkdir(parents=True)
        node = Node(cfg, identity(seed * 100_000 + i))
        node.pool.shutdown(), node.writer.shutdown()
        node.pool, node.writer = self.pool, self.writer
        node.peers.rng.seed(seed * 100_000 + i)
        node.session = object()  # gossip pushes only when it has a session
        node.chain.append("genesis", genesis_payload("sim", grid, name=cfg.name))
        node.refresh_own_info()
        self.net.add(url, node)
        return node

    def start(self) -> None:
        """Start every node's gossip loop."""
        for node in self.nodes:
            self.tasks.append(asyncio.create_task(node.gossip.run()))

    async def stop(self) -> None:
        """Stop gossip, close stores and pools."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for node in self.nodes:
            await node.gossip.close()
        for node in self.nodes:
            node.store.close()
        self.pool.shutdown()
        self.writer.shutdown()

    def holders(self, author: bytes, seq: int, nodes: list[Node] | None = None) -> int:
        """How many nodes hold `author`'s chain up to `seq`."""
        return sum(1 for n in nodes or self.nodes
                   if (h := n.store.head(author)) is not None and h.seq >= seq)

    async def wait_all(self, pairs: list[tuple[bytes, int]], limit_s: float) -> float:
        """Seconds until every node holds every (author, seq); inf after limit_s."""
        started = time.monotonic()
        while time.monotonic() - started < limit_s:
            if all(self.holders(a, s) == len(self.nodes) for a, s in pairs):
                return time.monotonic() - started
            await asyncio.sleep(POLL_S)
        return float("inf")

    async def settle(self, limit_s: float) -> float:
        """Wait until every node holds every genesis."""
        return await self.wait_all([(n.identity.agent, 0) for n in self.nodes], limit_s)

    async def post(self, node: Node, k: int):
        """Sign one new order on `node` (eager push included), as its agent loop would."""
        return await node.append("bid", order_payload(interval=k))

    def gossip_bytes(self) -> tuple[int, int]:
        """Body bytes sent by all nodes, and requests made, so far."""
        return sum(self.net.sent.values()), sum(self.net.requests.values())

    async def traffic(self, seconds: float, pace_s: float | None) -> dict:
        """Gossip bytes per node per second over `seconds`, with every agent signing one order
        per `pace_s` (None: idle)."""
        b0, r0 = self.gossip_bytes()
        kinds0 = dict(self.net.by_kind)
        started, k = time.monotonic(), 10_000
        while time.monotonic() - started < seconds:
            if pace_s is not None:
                k += 1
                node = self.nodes[k % len(self.nodes)]
                await self.post(node, k)
                await asyncio.sleep(pace_s / len(self.nodes))
            else:
                await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        b1, r1 = self.gossip_bytes()
        per_node = len(self.nodes) * elapsed
        return {"body_bytes_per_node_s": round((b1 - b0) / per_node, 1),
                "with_http_headers_est": round((b1 - b0 + 2 * HTTP_HEADERS * (r1 - r0))
                                               / per_node, 1),
                "requests_per_node_s": round((r1 - r0) / per_node, 2),
                "by_endpoint": {k: round((v - kinds0.get(k, 0)) / per_node, 1)
                                for k, v in sorted(self.net.by_kind.items())}}


async def convergence(sim: Sim, trials: int, limit_s: float) -> dict:
    """p50/p99 of the time until every node holds a new action posted on a random node."""
    times = []
    for t in range(trials):
        node = sim.net.rng.choice(sim.nodes)
        action = await sim.post(node, 1000 + t)
        times.append(await sim.wait_all([(action.author, action.seq)], limit_s))
    return {"p50_s": round(percentile(times, 0.5), 3), "p99_s": round(percentile(times, 0.99), 3),
            "trials": trials}


async def partition_heals(sim: Sim, cut_s: float, limit_s: float) -> dict:
    """Split the community in two for cut_s, sign an action on each side, heal, and time until
    every node holds both."""
    half = len(sim.nodes) // 2
    sim.net.partition(sim.urls[:half], sim.urls[half:])
    left = await sim.post(sim.nodes[0], 5000)
    right = await sim.post(sim.nodes[-1], 5001)
    await asyncio.sleep(cut_s)
    inside = (sim.holders(left.author, left.seq, sim.nodes[:half]) == half)
    sim.net.heal()
    healed = await sim.wait_all([(left.author, left.seq), (right.author, right.seq)], limit_s)
    return {"cut_s": cut_s, "side_converged_while_cut": inside, "heal_s": round(healed, 3)}


def stored_bytes(sim: Sim) -> int:
    """Mean bytes of a node's store files (database and write-ahead log)."""
    total = 0
    for node in sim.nodes:
        for f in node.cfg.dir.glob("store.sqlite3*"):
            total += f.stat().st_size
    return total // len(sim.nodes)


async def main(args: argparse.Namespace) -> dict:
    """Build the community, measure, print one JSON line."""
    rss0 = rss_bytes()
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as d:
        sim = Sim(args.nodes, args.grids, Path(d), args.round_ms, seed=args.seed,
                  know_all=args.know_all, reconcile=not args.heads_list)
        sim.start()
        try:
            settle_s = await sim.settle(args.limit)
            figures = {
                "nodes": args.nodes, "grids": args.grids, "round_ms": args.round_ms,
                "anti_entropy": "heads list" if args.heads_list else "reconcile",
                "latency_ms": [20, 300], "loss": sim.net.loss, "settle_s": round(settle_s, 2),
                "convergence": await convergence(sim, args.trials, args.limit),
                "gossip_idle": await sim.traffic(args.window, None),
                "gossip_kit_pace": await sim.traffic(args.window, args.pace),
                "partition": await partition_heals(sim, args.cut, args.limit),
                "stored_bytes_per_node": stored_bytes(sim),
                "rss_bytes_per_node": (rss_bytes() - rss0) // args.nodes,
                "messages_lost": sim.net.lost, "messages_delivered": sim.net.delivered,
                "holochain_reference": HOLOCHAIN_REFERENCE,
            }
        finally:
            await sim.stop()
    return figures


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--grids", type=int, default=10)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--round-ms", type=int, default=1000)
    p.add_argument("--window", type=float, default=10.0, help="seconds per traffic figure")
    p.add_argument("--pace", type=float, default=15.0,
                   help="seconds between two actions of one agent (the kit: 4 per minute)")
    p.add_argument("--cut", type=float, default=5.0, help="seconds the partition lasts")
    p.add_argument("--limit", type=float, default=120.0, help="give up waiting after this")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--heads-list", action="store_true",
                   help="nodes do not offer reconcile: every round sends the whole heads list")
    p.add_argument("--know-all", action="store_true", help="skip discovery by peer exchange")
    return p.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse()))))
