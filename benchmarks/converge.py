"""Convergence benchmark: 30 real `picogrid run` processes on loopback, default gossip round (1 s).

Node 0 founds the community; the others join through it and know only it at start. Once every
node knows every other (peer exchange) and holds every chain, each trial posts ONE new action
(by a member without a node) to one random node and times how long it takes until every node
holds it. Every node is polled on its own keep-alive connection every 25 ms; a node is no longer
polled once it holds the action.

Prints one JSON line: p50/p99 over trials of the time until EVERY node holds the action (the
target: p99 under 2 s), and p50/p99 of the single-node arrival times. Nodes are started
`START_BATCH` at a time; on a machine with fewer cores than that takes, each gets
`--start-timeout` seconds to answer (a loaded 2-core machine needs far more than 20 s at 100).
SIGTERM or Ctrl-C stop every node before the script exits (`StopSignals`).

    python benchmarks/converge.py [--nodes 30] [--trials 20] [--round-ms 1000] [--start-timeout 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from nodeproc import Author, Cluster, get_json, heads, post_actions, wait_until  # noqa: E402

from node.cli.processes import StopSignals  # noqa: E402

POLL_S = 0.025
START_BATCH = 10  # processes started at once; each batch answers before the next starts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Watcher:
    """Polls one node's gossip heads until the author's head reaches a seq, on one connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def seq(self, author: bytes) -> int:
        self.conn.request("GET", "/v1/gossip/heads")
        resp = self.conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            return -1
        return msgpack.unpackb(body, raw=False, strict_map_key=False).get(author, [-1])[0]

    def wait_for(self, author: bytes, seq: int, started: float, deadline: float) -> float:
        while time.perf_counter() < deadline:
            try:
                if self.seq(author) >= seq:
                    return time.perf_counter() - started
            except (OSError, http.client.HTTPException):
                self.conn.close()
            time.sleep(POLL_S)
        return float("inf")


def setup(c: Cluster, n: int, start_timeout: float) -> list:
    first = c.found("node 0")
    c.start(first)
    with ThreadPoolExecutor(4) as pool:
        others = list(pool.map(lambda i: c.join(f"node {i}", via=first), range(1, n)))
    nodes = [first, *others]
    for at in range(0, len(others), START_BATCH):  # a loaded machine starts 100 slowly
        c.start_many(
            others[at : at + START_BATCH],
            peers=[first],
            round_ms=c.round_ms,
            ready_timeout=start_timeout,
        )
    everyone = {a.agent for a in nodes}

    def settled() -> bool:
        for a in nodes:
            if not everyone <= set(heads(a.url)):
                return False
            if len(get_json(f"{a.url}/v1/info")["peers"]) < n - 1:
                return False
        return True

    wait_until(
        settled, 180 + 2 * n, "every node knows every peer and chain", interval=1.0, logs=c.logs
    )
    return nodes


def run(
    n: int, trials: int, round_ms: int, signals: StopSignals, start_timeout: float = 20.0
) -> dict:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp, Cluster(Path(tmp), "converge", round_ms) as c:
        try:
            return measure(c, n, trials, round_ms, rng, start_timeout)
        except KeyboardInterrupt:
            signals.stopping()  # a second signal cannot cut the nodes' stop short
            raise


def measure(
    c: Cluster, n: int, trials: int, round_ms: int, rng: random.Random, start_timeout: float
) -> dict:
    nodes = setup(c, n, start_timeout)
    author = Author(community="converge", name="news")
    post_actions(nodes[0].url, [author.genesis()])
    wait_until(
        lambda: all(author.agent in heads(a.url) for a in nodes),
        30,
        "every node holds the author's genesis",
        logs=c.logs,
    )
    watchers = [Watcher(a.port) for a in nodes]
    all_hold, arrivals = [], []
    pool = ThreadPoolExecutor(n)
    for _ in range(trials):
        action = author.next()
        target = rng.choice(nodes)
        started = time.perf_counter()
        post_actions(target.url, [action])
        results = list(
            pool.map(
                lambda w, s=action.seq, t0=started: w.wait_for(author.agent, s, t0, t0 + 10),
                watchers,
            )
        )
        all_hold.append(max(results))
        arrivals += results
        time.sleep(0.5 + rng.random() * round_ms / 1000)  # land anywhere in a round
    pool.shutdown()
    alive = sum(p.alive() for p in c.procs)
    return {
        "bench": "converge",
        "nodes": n,
        "alive": alive,
        "trials": trials,
        "round_ms": round_ms,
        "p50_s": round(statistics.median(all_hold), 3),
        "p99_s": round(percentile(all_hold, 0.99), 3),
        "max_s": round(max(all_hold), 3),
        "node_p50_s": round(percentile(arrivals, 0.5), 3),
        "node_p99_s": round(percentile(arrivals, 0.99), 3),
        "target": "p99_s < 2",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=30)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--round-ms", type=int, default=1000)
    p.add_argument(
        "--start-timeout",
        type=float,
        default=20.0,
        help="seconds each node may take to answer once started",
    )
    args = p.parse_args()
    signals = StopSignals()  # SIGTERM stops the nodes (Cluster's exit), as Ctrl-C does
    try:
        print(json.dumps(run(args.nodes, args.trials, args.round_ms, signals, args.start_timeout)))
    except KeyboardInterrupt:
        print("stopped: every node was stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
