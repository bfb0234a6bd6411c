"""Network simulator: N real node cores in one process over an in-memory transport.

Each simulated node is a real `Node` (its own SQLite store on tmpfs, the real `ingest` with every
signature checked, the real `Gossip` with its eager push, anti-entropy rounds and peer exchange)
whose gossip talks through `netsim_transport.Net` instead of aiohttp: 20-300 ms per link, 1 %
message loss, partitions and churn. The agent loop is replaced by a load generator that signs
orders at the kit's pace (4 actions per agent per interval: offer or bid, settlement, reading).

Adapter: a Node is built but not started (no HTTP server, no hardware, no agent loop); its
journal's verify pool and store writer are shared by all nodes (two verify threads, one writer
thread, instead of three threads per node); its gossip gets the simulator's transport through
`connect` (the way `Gossip` takes any `PeerTransport`), and peers' requests are answered by its
own `GossipAnswers`, the code behind the HTTP handlers.

Virtual clock (benchmarks/netsim_clock.py): with `--slowdown K` the whole simulation runs on a
clock K times slower than real time, so each node gets K times this process's CPU; every figure is
in virtual seconds. The default K is one per 100 nodes; `--slowdown 1` is the real clock.
`clock.loop_lag` says whether K sufficed: how late a 100 ms timer fired, in virtual ms.

Prints one JSON line; the phases it measures are in benchmarks/netsim_phases.py. Every node
starts knowing node 0 only and finds the others by peer exchange.

    python benchmarks/netsim.py [--nodes 100] [--grids 10] [--trials 20] [--round-ms 1000]
                                [--forks 10] [--know-all] [--replicate grid] [--slowdown K]
                                [--preload [--history MINUTES]]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import netsim_clock  # noqa: E402
from netsim_phases import convergence, fork_spread, partition_heals, stored_bytes  # noqa: E402
from netsim_transport import HTTP_HEADERS, Net  # noqa: E402

from ledger.chain import now_us  # noqa: E402
from ledger.testing import ChainSigner, genesis_payload, identity, order_payload  # noqa: E402
from node.config import NodeConfig  # noqa: E402
from node.node import Node, cancel_all  # noqa: E402
from node.p2p.answers import GossipAnswers  # noqa: E402

HOLOCHAIN_REFERENCE = {"wind_tunnel_mean_sync_lag_s": 49, "peers": 10}
ADMIN = "00" * 32
POLL_S = 0.02


def unproven(node: Node) -> list:
    """The candidates in `node`'s peer table that have not proved their key yet (a URL the
    operator gave is called meanwhile, so it does not count)."""
    return [p for p in node.peers.by_url.values()
            if p.agent is not None and not p.proven and not p.given]


def rss_bytes() -> int:
    """This process's resident set, now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Sim:
    """A community of simulated nodes over one Net."""

    def __init__(self, n: int, grids: int, directory: Path, round_ms: int, seed: int = 1,
                 know_all: bool = False, replicate: str = "community", **net_options) -> None:
        self.net = Net(seed=seed, **net_options)
        self.replicate = replicate
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
                         peers=[] if i == 0 else ["http://n0.sim"], round_ms=round_ms,
                         replicate=self.replicate)
        cfg.dir.mkdir(parents=True)
        node = Node(cfg, identity(seed * 100_000 + i))
        journal = node.journal
        journal.pool.shutdown(), journal.writer.shutdown()
        journal.pool, journal.writer = self.pool, self.writer
        if journal.workers is not None:  # a hundred nodes in one process: no processes each
            journal.workers.close()
            journal.workers = None
        node.peers.rng.seed(seed * 100_000 + i)
        node.chain.append("genesis", genesis_payload("sim", grid, name=cfg.name))
        node.refresh_own_info()
        # 1,000 stores in one process: SQLite's page cache and the log between checkpoints
        # (4 MB and 16 MB each on a node) would fill the memory; smaller here, same data
        node.store._db.execute("PRAGMA cache_size=-512")
        node.store._db.execute("PRAGMA wal_autocheckpoint=256")
        answers = GossipAnswers(node.store, node.book, journal, node.gossip, node.infos,
                                node.metrics)
        node.gossip.connect = self.net.add(url, answers)
        return node

    async def preload(self, orders_each: int = 0) -> None:
        """Give every node every genesis and every agent info, as in a community that has run
        a while: a cold start of N nodes checks N * N signatures of each kind. With
        `orders_each`, every agent has also signed that many orders, and every node holds those
        of its own grid (checked on ingest, as any): the history of a community that has
        traded for a while, which is what the stored-data figure is about."""
        geneses = [(g.action_bytes, g.signature) for g in
                   (n.store.get_by_seq(n.identity.agent, 0) for n in self.nodes)]
        infos = [list(n.infos.own.wire()) for n in self.nodes]
        for node in self.nodes:
            await node.ingest(geneses, forward=False)
            node.infos.take(infos, now_us())
        if not orders_each:
            return
        history: dict[str, list[tuple[bytes, bytes]]] = {}
        for node in self.nodes:
            orders = [node.chain.append("bid", order_payload(interval=k + 1))
                      for k in range(orders_each)]
            history.setdefault(node.cfg.grid, []).extend(o.wire() for o in orders)
        for node in self.nodes:  # its own orders are in its grid's list: duplicates, skipped
            await node.ingest(history[node.cfg.grid], forward=False)

    def start(self) -> None:
        """Start every node's gossip loop."""
        for node in self.nodes:
            self.tasks.append(asyncio.create_task(node.gossip.run()))

    async def stop(self) -> None:
        """Stop gossip, close stores and pools. Every node's gossip is closed at once: closed
        one after the other, each close gave the loop to the rest of the community's rounds
        (at 1,000 nodes the stop had not ended after 20 minutes)."""
        await cancel_all(self.tasks)
        await asyncio.gather(*(node.gossip.close() for node in self.nodes),
                             return_exceptions=True)
        for node in self.nodes:
            node.store.close()
        self.pool.shutdown()
        self.writer.shutdown()

    def holders(self, author: bytes, seq: int, nodes: list[Node] | None = None) -> int:
        """How many nodes hold `author`'s chain up to `seq`."""
        return sum(1 for n in nodes or self.nodes
                   if (h := n.store.head(author)) is not None and h.seq >= seq)

    def should_hold(self, author: bytes, seq: int) -> list[Node]:
        """The nodes that should hold `author`'s action at `seq`: every node, or under grid
        scope (beyond the genesis) the nodes of the author's grid."""
        if self.replicate != "grid" or seq == 0:
            return self.nodes
        grid = next(n.cfg.grid for n in self.nodes if n.identity.agent == author)
        return [n for n in self.nodes if n.cfg.grid == grid]

    async def wait_all(self, pairs: list[tuple[bytes, int]], limit_s: float) -> float:
        """Seconds until every node that should hold every (author, seq) holds it; inf after
        limit_s."""
        started = time.monotonic()
        wanted = [(a, s, self.should_hold(a, s)) for a, s in pairs]
        while time.monotonic() - started < limit_s:
            if all(self.holders(a, s, nodes) == len(nodes) for a, s, nodes in wanted):
                return time.monotonic() - started
            await asyncio.sleep(POLL_S)
        return float("inf")

    async def wait_forked(self, author: bytes, limit_s: float) -> float:
        """Seconds until every node knows `author` forked; inf after limit_s."""
        started = time.monotonic()
        while time.monotonic() - started < limit_s:
            if all(author in n.store.forked_authors() for n in self.nodes):
                return time.monotonic() - started
            await asyncio.sleep(POLL_S)
        return float("inf")

    async def fork(self, victim: Node, first: Node, second: Node):
        """Make `victim`'s agent sign two actions after its head, one taken by `first`, the
        other by `second` (as a cheating agent would); its agent id."""
        signer = ChainSigner(victim.identity)
        base = victim.store.get_by_seq(victim.identity.agent, victim.store.head(
            victim.identity.agent).seq)
        one = signer.at(base, payload=order_payload(interval=base.seq + 1, price=1))
        two = signer.at(base, payload=order_payload(interval=base.seq + 1, price=2))
        await first.ingest([(one.action_bytes, one.signature)])
        await second.ingest([(two.action_bytes, two.signature)])
        return victim.identity.agent

    async def net_idle(self, seconds: float) -> None:
        """Let the community run for `seconds`."""
        await asyncio.sleep(seconds)

    async def settle(self, limit_s: float) -> float:
        """Wait until every node holds every genesis and every other node's agent info, and
        has asked every candidate in its peer table for its proof (as in a community that has
        run a while: until then a node rounds and pushes with fewer peers)."""
        started = time.monotonic()
        held = await self.wait_all([(n.identity.agent, 0) for n in self.nodes], limit_s)
        while time.monotonic() - started < limit_s:
            if all(len(n.peers.infos) >= len(self.nodes) - 1 and not unproven(n)
                   for n in self.nodes):
                return time.monotonic() - started
            await asyncio.sleep(POLL_S * 10)
        return held if held == float("inf") else float("inf")

    def peer_table(self) -> dict:
        """Per node, on average: peers it calls (proven or given), candidates still unproven,
        members' URLs waiting for room in its table."""
        n = len(self.nodes)
        now = time.monotonic()
        return {"live": round(sum(len(x.peers.live(now)) for x in self.nodes) / n, 1),
                "unproven": round(sum(len(unproven(x)) for x in self.nodes) / n, 1),
                "waiting": round(sum(len(x.peers.waiting) for x in self.nodes) / n, 1)}

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


async def main(args: argparse.Namespace) -> dict:
    """Build the community, measure, print one JSON line."""
    rss0, real0, cpu0 = rss_bytes(), netsim_clock.real_monotonic(), time.process_time()
    probe = netsim_clock.LagProbe()

    async def phase(name: str, measure):
        probe.phase(name)
        result = await measure
        print(f"netsim: {name} done at {time.monotonic() - virtual0:.1f} virtual s, "
              f"{netsim_clock.real_monotonic() - real0:.0f} real s", file=sys.stderr, flush=True)
        return result

    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as d:
        sim = Sim(args.nodes, args.grids, Path(d), args.round_ms, seed=args.seed,
                  know_all=args.know_all, replicate=args.replicate,
                  reconcile=not args.heads_list)
        if args.preload:
            await sim.preload(round(args.history * 60 / args.pace))
        virtual0 = time.monotonic()
        probe.phase("settle")
        probe.start()
        sim.start()
        try:
            settle_s = await phase("settle", sim.settle(args.limit))
            figures = {
                "nodes": args.nodes, "grids": args.grids, "round_ms": args.round_ms,
                "anti_entropy": "heads list" if args.heads_list else "reconcile",
                "replicate": args.replicate, "history_min": args.history,
                "latency_ms": [20, 300], "loss": sim.net.loss, "settle_s": round(settle_s, 2),
                "peer_table": sim.peer_table(),
                "convergence": await phase("convergence",
                                           convergence(sim, args.trials, args.limit)),
                "quiet_s": await phase("quiet", sim.net_idle(args.quiet)) or args.quiet,
                "gossip_idle": await phase("idle", sim.traffic(args.window, None)),
                "gossip_kit_pace": await phase("kit_pace", sim.traffic(args.window, args.pace)),
                "partition": await phase("partition",
                                         partition_heals(sim, args.cut, args.limit)),
                "warrants": await phase("warrants", fork_spread(sim, args.forks, args.limit)),
                "stored_bytes_per_node": stored_bytes(sim),
                "rss_bytes_per_node": (rss_bytes() - rss0) // args.nodes,
                "messages_lost": sim.net.lost, "messages_delivered": sim.net.delivered,
                "holochain_reference": HOLOCHAIN_REFERENCE,
            }
            real_s = netsim_clock.real_monotonic() - real0
            figures["clock"] = {"slowdown": args.slowdown, "real_s": round(real_s, 1),
                                "cpu_cores_used": round((time.process_time() - cpu0) / real_s, 2),
                                "load_average": [round(x, 1) for x in os.getloadavg()],
                                "loop_lag": probe.figures()}
            # printed before the stop: a run of an hour is not lost to a stop that fails
            print(json.dumps(figures), flush=True)
            return figures
        finally:
            await probe.stop()
            await sim.stop()


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
    p.add_argument("--quiet", type=float, default=10.0,
                   help="seconds left for the last heads to spread before the idle figure")
    p.add_argument("--cut", type=float, default=5.0, help="seconds the partition lasts")
    p.add_argument("--forks", type=int, default=1,
                   help="fork trials: each time an agent of the next grid signs two actions at "
                        "one seq, and the time until every node knows it is measured")
    p.add_argument("--limit", type=float, default=120.0, help="give up waiting after this")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="error",
                   help="the nodes' log on stderr (warning: every node's line on every fork)")
    p.add_argument("--heads-list", action="store_true",
                   help="nodes do not offer reconcile: every round sends the whole heads list")
    p.add_argument("--know-all", action="store_true", help="skip discovery by peer exchange")
    p.add_argument("--replicate", choices=("community", "grid"), default="community",
                   help="grid: each node holds its own grid's chains whole (scoped replication)")
    p.add_argument("--preload", action="store_true",
                   help="every node starts with every genesis and agent info (no cold start)")
    p.add_argument("--history", type=float, default=0.0,
                   help="with --preload: minutes of trading every agent has behind it, at "
                        "--pace (its orders, held by every node of its grid)")
    p.add_argument("--slowdown", type=float, default=0.0,
                   help="run the clock K times slower than real time, so that each node gets K "
                        "times the CPU (1: the real clock; default: one per 100 nodes)")
    args = p.parse_args(argv)
    if args.history and not args.preload:
        p.error("--history needs --preload")
    if args.history < 0:
        p.error("--history must be 0 or more")
    if not args.slowdown:
        args.slowdown = netsim_clock.auto_slowdown(args.nodes)
    if args.slowdown < 1:
        p.error("--slowdown must be at least 1")
    return args


if __name__ == "__main__":
    arguments = parse()
    logging.basicConfig(level=arguments.log_level.upper(),
                        format="%(levelname)s %(name)s: %(message)s")
    netsim_clock.run(main(arguments), arguments.slowdown)
