"""Ingest benchmark: signed actions by many authors, in batches, into a fresh SQLite store.

Prints one JSON line. `verify_per_s` is PyNaCl's single-thread Ed25519 verify rate, measured in
the same run on the same actions with the very call the store uses, so `entries_per_s /
verify_per_s` is the figure to judge (targets: 0.8 on one thread, 1.5 with the verification
spread over threads on two cores). Each figure is the best of `--rounds` runs, the reference
included: load from other processes can only slow a run down.

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
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.actions import sign_action, signature_ok  # noqa: E402
from ledger.membrane import Membrane  # noqa: E402
from ledger.store import Store, gather, submit_precheck  # noqa: E402
from ledger.testing import T0, genesis_payload, identity, order_payload  # noqa: E402

COMMUNITY = "bench"
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


def verify_rate(sample: list[Item]) -> float:
    """Signatures verified per second on one thread, with the store's own verify call."""
    authors = [body[4:36] for body, _ in sample]  # array of 7, v, bin8 header: then the key
    start = time.perf_counter()
    for (body, sig), author in zip(sample, authors, strict=True):
        if not signature_ok(author, body, sig):
            raise AssertionError("a benchmark action does not verify")
    return len(sample) / (time.perf_counter() - start)


def ingest(actions: Iterable[Item], threads: int, batch: int) -> tuple[int, float]:
    """Ingest in batches into a new store: (actions accepted, seconds spent ingesting).

    With threads, the next batches are verified on the pool while one is written, as the node
    does; the time counted then includes every wait for the pool.
    """
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite3", Membrane(COMMUNITY))
        now = T0 + 10**12
        batches = _batches(actions, batch)
        total, elapsed = 0, 0.0
        if threads == 1:
            for chunk in batches:
                start = time.perf_counter()
                result = store.ingest(chunk, now)
                elapsed += time.perf_counter() - start
                assert not result.rejected, result.rejected[:3]
                total += result.accepted
        else:
            with ThreadPoolExecutor(threads) as pool:
                total, elapsed = _pipelined(store, pool, batches, now, threads)
        assert store.count() == total
        store.close()
    return total, elapsed


def _batches(actions: Iterable[Item], size: int) -> Iterator[list[Item]]:
    it = iter(actions)
    while chunk := list(islice(it, size)):
        yield chunk


def _pipelined(
    store: Store, pool: ThreadPoolExecutor, batches: Iterator[list[Item]], now: int, threads: int
) -> tuple[int, float]:
    """Two batches in flight on the pool while the current one is written.

    Generating actions (signing) is not part of the figure: each batch is taken from the
    generator before the clock runs, up to 40 batches at a time, so the stream stays bounded.
    """
    total, elapsed = 0, 0.0
    while window := list(islice(batches, 40)):
        start = time.perf_counter()
        ahead: deque[tuple[list[Item], list[Future]]] = deque()
        for chunk in window[:2]:
            ahead.append((chunk, submit_precheck(pool, chunk, now, threads)))
        for i in range(len(window)):
            chunk, futures = ahead.popleft()
            checked = gather(futures)
            if i + 2 < len(window):
                nxt = window[i + 2]
                ahead.append((nxt, submit_precheck(pool, nxt, now, threads)))
            result = store.ingest(chunk, now, prechecked=checked)
            assert not result.rejected, result.rejected[:3]
            total += result.accepted
        elapsed += time.perf_counter() - start
    return total, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--authors", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    sample = list(generate(args.authors, min(args.entries, 20_000)))
    streaming = args.entries > len(sample)
    verify, one, many = 0.0, 0.0, 0.0
    for _ in range(1 if streaming else args.rounds):
        verify = max(verify, verify_rate(sample))
        if streaming:  # never hold all the actions in memory
            source = lambda: generate(args.authors, args.entries)  # noqa: E731
        else:
            source = lambda: sample  # noqa: E731
        n, t = ingest(source(), 1, args.batch)
        one = max(one, n / t)
        if args.threads > 1:
            n, t = ingest(source(), args.threads, args.batch)
            many = max(many, n / t)
        verify = max(verify, verify_rate(sample))
    many = many or one
    overhead_us = 1e6 / one - 1e6 / verify  # CPU per action besides the signature check
    figures = {
        "bench": "ingest",
        "entries": args.entries,
        "authors": args.authors,
        "batch": args.batch,
        "verify_per_s": round(verify),
        "entries_per_s": round(one),
        "ratio_1_thread": round(one / verify, 3),
        "threads": args.threads,
        "cores": os.cpu_count(),
        "entries_per_s_threads": round(many),
        "ratio_threads": round(many / verify, 3),
        "overhead_us_per_action": round(overhead_us, 1),
        "ideal_ratio_threads": round(
            min(args.threads, os.cpu_count() or 1) / (1 + overhead_us * verify / 1e6), 3
        ),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "targets": {"ratio_1_thread": 0.8, "ratio_threads": 1.5, "rss_mb_at_1m": 64},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
