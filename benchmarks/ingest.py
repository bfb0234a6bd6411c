"""Ingest benchmark: signed actions by many authors, in batches, into a fresh SQLite store.

Prints one JSON line. `verify_per_s` is PyNaCl's single-thread Ed25519 verify rate, measured in
the same run on the same actions with the very call the store uses, so `entries_per_s /
verify_per_s` is the figure to judge (targets: 0.8 on one thread, 1.5 with the verification
spread over threads on two cores). The reference is measured window by window beside the ingest
it is compared with (see `ingest`), and the figures add up `--rounds` runs, so load from other
processes slows both alike.

    python benchmarks/ingest.py                     # 20,000 actions by 50 authors
    python benchmarks/ingest.py --entries 1000000   # the memory check (streams the actions)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.actions import sign_action, signature_ok  # noqa: E402
from ledger.membrane import Membrane  # noqa: E402
from ledger.store import IngestResult, Store, gather, submit_precheck  # noqa: E402
from ledger.testing import T0, genesis_payload, identity, order_payload  # noqa: E402

COMMUNITY = "bench"
WINDOW = 10  # batches per window: reference and ingest are measured window by window
Item = tuple[bytes, bytes]


def generate(authors: int, entries: int) -> Iterator[Item]:
    """Yield `(action_bytes, signature)` round-robin over authors, each chain in order."""
    ids = [identity(1000 + i) for i in range(authors)]
    heads: list = [None] * authors
    for n in range(entries):
        i = n % authors
        ident, head = ids[i], heads[i]
        if head is None:
            payload = genesis_payload(COMMUNITY, "g", name=f"agent {i}", household=f"h{i}")
            action = sign_action(ident, 0, None, T0, "genesis", payload)
        else:
            payload = order_payload(head.seq, 100 + head.seq % 50, 15000)
            action = sign_action(ident, head.seq + 1, head.hash, T0 + head.seq, "bid", payload)
        heads[i] = action
        yield action.action_bytes, action.signature


def verify_seconds(items: list[Item]) -> float:
    """Time to verify `items` on one thread with the store's own verify call: the reference."""
    authors = [body[4:36] for body, _ in items]  # array of 7, v, bin8 header: then the key
    start = time.perf_counter()
    for (body, sig), author in zip(items, authors, strict=True):
        if not signature_ok(author, body, sig):
            raise AssertionError("a benchmark action does not verify")
    return time.perf_counter() - start


@dataclass
class Run:
    """One ingest into a fresh store, with its reference measured beside it, window by window."""

    entries: int = 0
    seconds: float = 0.0  # ingesting
    reference: float = 0.0  # verifying the same actions on one thread
    parallel: float = 0.0  # verifying them on the pool's threads: what the cores allow

    def ratio(self) -> float:
        return self.reference / self.seconds

    def add(self, other: Run) -> None:
        self.entries += other.entries
        self.seconds += other.seconds
        self.reference += other.reference
        self.parallel += other.parallel


def ingest(actions: Iterable[Item], threads: int, batch: int) -> Run:
    """Ingest in batches of `batch` into a new store; generation (signing) is not timed.

    The actions come in windows of 10 batches. Each window is first verified on one thread (the
    reference), then ingested, so both figures see the same load from other processes. With
    threads, the next batches are verified on the pool while one is written, as the node does;
    each window is also verified on the pool alone, to show what the cores allowed at the time.
    """
    run = Run()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(threads) as pool:
        store = Store(Path(tmp) / "bench.sqlite3", Membrane(COMMUNITY))
        now = T0 + 10**12
        it = iter(actions)
        while window := list(islice(it, batch * WINDOW)):
            run.reference += verify_seconds(window)
            if threads > 1:
                start = time.perf_counter()
                list(pool.map(verify_seconds, [window[i::threads] for i in range(threads)]))
                run.parallel += time.perf_counter() - start
            chunks = [window[i : i + batch] for i in range(0, len(window), batch)]
            start = time.perf_counter()
            if threads == 1:
                results = [store.ingest(chunk, now) for chunk in chunks]
            else:
                results = _pipelined(store, pool, chunks, now, threads)
            run.seconds += time.perf_counter() - start
            for result in results:
                assert not result.rejected, result.rejected[:3]
                run.entries += result.accepted
        assert store.count() == run.entries
        store.close()
    return run


def _pipelined(
    store: Store, pool: ThreadPoolExecutor, chunks: list[list[Item]], now: int, threads: int
) -> list[IngestResult]:
    """Two batches in flight on the pool while the current one is written."""
    ahead = deque(submit_precheck(pool, chunk, now, threads) for chunk in chunks[:2])
    results = []
    for i, chunk in enumerate(chunks):
        checked = gather(ahead.popleft())
        if i + 2 < len(chunks):
            ahead.append(submit_precheck(pool, chunks[i + 2], now, threads))
        results.append(store.ingest(chunk, now, prechecked=checked))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--authors", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    streaming = args.entries > 20_000  # then never hold all the actions in memory
    sample = [] if streaming else list(generate(args.authors, args.entries))
    one, many = Run(), Run()
    for _ in range(1 if streaming else args.rounds):
        for run, threads in ((one, 1), (many, args.threads)):
            source = generate(args.authors, args.entries) if streaming else sample
            run.add(ingest(source, threads, args.batch))
    verify = (one.entries + many.entries) / (one.reference + many.reference)
    rate = one.entries / one.seconds
    overhead_us = 1e6 / rate - 1e6 / verify  # CPU per action besides the signature check
    speedup = many.reference / many.parallel if many.parallel else 1.0
    # What the threads could reach if nothing but the cores limited them: the signatures go as
    # fast as the pool verified them alone in this run, and the rest of each action's work
    # (decode, hash, placement, SQLite) is spread over the same cores.
    ceiling = speedup / (1 + overhead_us * verify / 1e6)
    figures = {
        "bench": "ingest",
        "entries": args.entries,
        "authors": args.authors,
        "batch": args.batch,
        "verify_per_s": round(verify),
        "entries_per_s": round(rate),
        "ratio_1_thread": round(one.ratio(), 3),
        "threads": 1,  # what `entries_per_s` was measured with; the `_threads` figures use
        "pool_threads": args.threads,  # this many verifying threads beside the writer
        "cores": os.cpu_count(),
        "entries_per_s_threads": round(many.entries / many.seconds),
        "ratio_threads": round(many.ratio(), 3),
        "verify_speedup_threads": round(speedup, 3),
        "overhead_us_per_action": round(overhead_us, 1),
        "ideal_ratio_threads": round(
            min(args.threads, os.cpu_count() or 1) / (1 + overhead_us * verify / 1e6), 3
        ),
        "ceiling_ratio_threads": round(ceiling, 3),
        "efficiency_threads": round(many.ratio() / ceiling, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "targets": {"ratio_1_thread": 0.8, "ratio_threads": 1.5, "rss_mb_at_1m": 64},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
