"""Replication benchmark: two real `picogrid run` processes on loopback.

Node A's store is seeded (while A is stopped) with 20,000 signed actions by 20 authors, members
of A's open community. Both nodes then run. B holds A's own chain (pushed to it as A's gossip
would: a node acts only on the infos of members whose genesis it holds) but does not know where
A listens until we hand it A's own signed agent info (`POST /v1/gossip/peers`, as peer exchange
would): the clock starts there and stops when B's gossip heads show every one of the 20 chains
complete. In between B does what a community's node does with a peer it learns of: it asks A to
prove its key, reconciles heads with it, pulls the chains through the gossip endpoints and
verifies every signature itself.

Prints one JSON line. `verify_per_s` is the single-thread Ed25519 verify rate of this machine on
the same actions, measured in the same run just before and just after the replication (the higher
of the two, so a machine busy with something else cannot flatter the ratio); the target is a
`ratio` (`entries_per_s / verify_per_s`) of at least 1.3 on two cores: replication must beat what
one core could merely verify, so it must verify on both while the next page streams in.

SIGTERM or Ctrl-C stop both nodes before the script exits (`StopSignals`); SIGKILL cannot.

    python benchmarks/replicate.py [--entries 20000] [--authors 20] [--round-ms 100]
                                   [--verify-processes N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import msgpack

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from nodeproc import (  # noqa: E402
    Agent,
    Author,
    Cluster,
    Proc,
    get_msgpack,
    heads,
    post_actions,
    post_msgpack,
    seed,
    wait_until,
)

from ledger.actions import decode_action, signature_ok  # noqa: E402
from node.cli.processes import StopSignals  # noqa: E402
from node.config import load_config  # noqa: E402


def verify_rate(items: list[tuple[bytes, bytes]]) -> tuple[float, float]:
    """Single-thread Ed25519 verifies per second (wall clock), and CPU µs per verify."""
    authors = [decode_action(b, s, check_signature=False).author for b, s in items]
    start, cpu = time.perf_counter(), time.thread_time()
    for (body, sig), author in zip(items, authors, strict=True):
        assert signature_ok(author, body, sig)
    return (
        len(items) / (time.perf_counter() - start),
        (time.thread_time() - cpu) * 1e6 / len(items),
    )


# B is asked for its heads at most every MAX_POLL_S and at least every MIN_POLL_S: in between,
# half the time the copy still needs at the rate seen so far. Each answer costs B about 0.8 ms of
# CPU on a 2-vCPU VM, so a poll every 20 ms took 4 % of a core from the copy; this way a copy of
# a second is asked about 10 times, and its end is seen at most MIN_POLL_S late.
MIN_POLL_S = 0.01
MAX_POLL_S = 0.2


class HeadsWatch:
    """B's gossip heads over one kept-alive connection (cheaper for B than one per request)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)

    def heads(self) -> dict[bytes, list]:
        try:
            self.conn.request("GET", "/v1/gossip/heads")
            resp = self.conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # reconnects at the next request
            raise
        if resp.status != 200:
            raise AssertionError(f"heads: HTTP {resp.status}")
        return msgpack.unpackb(body, raw=False, strict_map_key=False)

    def close(self) -> None:
        self.conn.close()


def tree_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of process `pid` by thread, and of every process below it.

    Read from /proc (Linux): a verifier process of B is a child (or a grandchild, under a fork
    server) that has not exited yet, so RUSAGE_CHILDREN would not count it; the tree does.
    """
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo += [c for c, parent in parents.items() if parent == p and c not in tree]
    by_name: dict[str, float] = {}
    for p in tree:
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                stat = Path(f"/proc/{p}/task/{t}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            name = "children" if p != pid else "event_loop" if t == str(pid) else f"thread {t}"
            by_name[name] = by_name.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return by_name


def wait_held(watch: HeadsWatch, want: dict[bytes, int], started: float, timeout: float,
              logs) -> int:
    """Poll B's heads until they reach `want` (author -> seq); the number of polls made."""
    total = sum(seq + 1 for seq in want.values())
    seen = {"polls": 0, "got": 0}

    def complete() -> bool:
        seen["polls"] += 1
        held = watch.heads()
        seen["got"] = sum(min(held.get(k, [-1])[0], seq) + 1 for k, seq in want.items())
        return seen["got"] >= total

    def pause() -> float:
        got = seen["got"]
        remaining = (total - got) * (time.perf_counter() - started) / got if got else MAX_POLL_S
        return min(MAX_POLL_S, max(MIN_POLL_S, remaining / 2))

    wait_until(complete, timeout, "B holds every chain", interval=pause, logs=logs)
    return seen["polls"]


def make_actions(community: str, authors: int, entries: int) -> tuple[list, list[Author]]:
    members = [Author(community=community, grid="lab", name=f"author {i}") for i in range(authors)]
    per, extra = divmod(entries, authors)
    items = []
    for i, member in enumerate(members):
        items += [(a.action_bytes, a.signature) for a in member.extend(per + (i < extra))]
    return items, members


def run(entries: int, authors: int, round_ms: int, signals: StopSignals,
        verify_processes: int | None = None) -> dict:
    """Measure in a fresh directory; both nodes are stopped at the end, whatever happens (a
    SIGTERM or Ctrl-C arrives as KeyboardInterrupt, see `StopSignals`)."""
    with tempfile.TemporaryDirectory() as tmp:
        c = Cluster(Path(tmp), "bench", round_ms)
        try:
            return measure(c, entries, authors, signals, verify_processes)
        finally:
            signals.stopping()  # a second signal cannot cut the stop short
            c.close()
            signals.restore()


def start(c: Cluster, agent: Agent, signals: StopSignals) -> Proc:
    """Start a node, held by the cluster before any signal can act; wait until it answers."""
    with signals.deferred():
        proc = c.start(agent, wait=False)
    proc.wait_ready()
    return proc


def measure(c: Cluster, entries: int, authors: int, signals: StopSignals,
            verify_processes: int | None = None) -> dict:
    a = c.found("A")
    pa = start(c, a, signals)
    b = c.join("B", via=a)
    pa.terminate()
    cfg = load_config(b.dir)  # B must not know A before the clock starts
    cfg.peers = []
    if verify_processes is not None:
        cfg.extra.setdefault("node", {})["verify_processes"] = verify_processes
    cfg.save()
    items, members = make_actions(a.community, authors, entries)
    sample = items[: min(len(items), 5000)]
    seed(a, items)
    pa = start(c, a, signals)
    pb = start(c, b, signals)
    want = {m.agent: m.actions[-1].seq for m in members}
    a_info = get_msgpack(f"{a.url}/v1/gossip/peers")[0]  # A's own info, signed by A
    # An info counts only once its author is a member whose genesis we hold (a stranger's info
    # is held, never called): B first gets A's own chain, pushed as A's gossip would.
    a_own = get_msgpack(f"{a.url}/v1/gossip/chain/{a.agent_hex}")
    assert post_actions(b.url, a_own)["accepted"] == len(a_own)

    watch = HeadsWatch(b.url)

    assert not any(k in heads(b.url) for k in want), "B must start with none of the chains"
    verify_before, cpu_before = verify_rate(sample)  # with both nodes up and idle, as later
    cpu_b = tree_cpu(pb.pid)
    started = time.perf_counter()
    answer = post_msgpack(f"{b.url}/v1/gossip/peers", [a_info]).msgpack()
    assert answer["accepted"] == 1, answer
    polls = wait_held(watch, want, started, 300, c.logs)
    seconds = time.perf_counter() - started
    watch.close()
    cpu_b_after = tree_cpu(pb.pid)
    verify_after, cpu_after = verify_rate(sample)
    assert pa.alive() and pb.alive()
    # The higher of the two reference rates: a busy machine cannot flatter the ratio.
    verify_per_s = max(verify_before, verify_after)
    # CPU time hardly depends on what else runs: B's CPU per action against one verify's CPU
    # says what two idle cores would allow (each verify on one core, the rest spread over both).
    verify_us = min(cpu_before, cpu_after)
    spent = {k: v - cpu_b.get(k, 0.0) for k, v in cpu_b_after.items()}
    cpu_us = sum(spent.values()) * 1e6 / entries
    return {
        "bench": "replicate",
        "entries": entries,
        "authors": authors,
        "round_ms": c.round_ms,
        "verify_processes": verify_processes,
        "seconds": round(seconds, 3),
        "entries_per_s": round(entries / seconds),
        "verify_per_s": round(verify_per_s),
        "ratio": round(entries / seconds / verify_per_s, 3),
        "cpu_us_per_action": round(cpu_us, 1),
        "verify_us": round(verify_us, 1),
        "ceiling_2_cores": round(2 * verify_us / cpu_us, 3),
        "cpu_s_by_thread": {k: round(v, 2) for k, v in sorted(spent.items()) if v > 0},
        "heads_polls": polls,
        "load_average": round(os.getloadavg()[0], 2),
        "target": "ratio >= 1.3",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=20_000)
    p.add_argument("--authors", type=int, default=20)
    p.add_argument("--round-ms", type=int, default=100)
    p.add_argument("--verify-processes", type=int, default=None,
                   help="B's [node] verify_processes (default: one per core; 0: threads only)")
    args = p.parse_args()
    signals = StopSignals()  # from here on, SIGTERM or Ctrl-C stops both nodes before we exit
    try:
        figures = run(args.entries, args.authors, args.round_ms, signals, args.verify_processes)
    except KeyboardInterrupt:
        sys.exit("replicate: stopped by a signal; both nodes were stopped")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
