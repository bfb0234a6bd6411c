"""Ingest benchmark: signed actions by many authors, in batches, into a fresh SQLite store.

Prints one JSON line. `verify_per_s` is PyNaCl's single-thread Ed25519 verify rate measured in the
same run on the same actions, so `entries_per_s / verify_per_s` is the figure to judge.

    python benchmarks/ingest.py                     # 20,000 actions by 50 authors
    python benchmarks/ingest.py --entries 1000000   # the memory check (streams the actions)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.actions import sign_action, signature_ok  # noqa: E402
from ledger.keys import Identity  # noqa: E402
from ledger.membrane import Membrane  # noqa: E402
from ledger.store import Store, gather, submit_precheck  # noqa: E402

COMMUNITY = "bench"
T0 = 1_700_000_000_000_000


def generate(authors: int, entries: int):
    """Yield `(action_bytes, signature)` round-robin over authors, each chain in order."""
    ids = [Identity.from_seed(bytes([i % 256, i // 256]) + bytes(30)) for i in range(authors)]
    heads: list = [None] * authors
    for n in range(entries):
        i = n % authors
        ident, head = ids[i], heads[i]
        if head is None:
            payload = {"community": COMMUNITY, "grid": "g", "name": f"agent {i}",
                       "role": "consumer", "household": f"h{i}", "capacity_wh": 0,
                       "max_power_w": 1000, "invite": None}
            action = sign_action(ident, 0, None, T0, "genesis", payload)
        else:
            payload = {"interval": head.seq, "energy_wh": 100 + head.seq % 50, "price": 15000}
            action = sign_action(ident, head.seq + 1, head.hash, T0 + head.seq, "bid", payload)
        heads[i] = action
        yield action.action_bytes, action.signature


def verify_rate(sample: list[tuple[bytes, bytes]]) -> float:
    from ledger.actions import decode_action

    authors = [decode_action(b, s, check_signature=False).author for b, s in sample]
    start = time.perf_counter()
    for (body, sig), author in zip(sample, authors, strict=True):
        assert signature_ok(author, body, sig)
    return len(sample) / (time.perf_counter() - start)


def ingest(actions, threads: int, batch: int) -> tuple[int, float]:
    """Ingest in batches; returns (accepted, seconds spent ingesting, generation excluded).

    With threads, batch N+1 is verified on the pool while batch N is written, as the node does.
    """
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite3", Membrane(COMMUNITY))
        now = T0 + 10**12
        total, elapsed = 0, 0.0
        it = iter(actions)
        if threads == 1:
            while chunk := list(islice(it, batch)):
                start = time.perf_counter()
                result = store.ingest(chunk, now)
                elapsed += time.perf_counter() - start
                assert not result.rejected, result.rejected[:3]
                total += result.accepted
        else:
            with ThreadPoolExecutor(threads) as pool:
                chunks = []
                while chunk := list(islice(it, batch)):
                    chunks.append(chunk)
                    if len(chunks) * batch >= 20_000:
                        total, elapsed = _pipelined(store, pool, chunks, now, total, elapsed,
                                                    threads)
                        chunks = []
                if chunks:
                    total, elapsed = _pipelined(store, pool, chunks, now, total, elapsed, threads)
        assert store.count() == total
        store.close()
    return total, elapsed


def _pipelined(store, pool, chunks, now, total, elapsed, threads):
    start = time.perf_counter()
    ahead = submit_precheck(pool, chunks[0], now, threads)
    for i, chunk in enumerate(chunks):
        checked = gather(ahead)
        if i + 1 < len(chunks):
            ahead = submit_precheck(pool, chunks[i + 1], now, threads)
        result = store.ingest(chunk, now, prechecked=checked)
        assert not result.rejected, result.rejected[:3]
        total += result.accepted
    return total, elapsed + time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--authors", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    sample = list(generate(args.authors, min(args.entries, 20_000)))
    verify = max(verify_rate(sample) for _ in range(3))
    figures = {"bench": "ingest", "entries": args.entries, "authors": args.authors,
               "batch": args.batch, "verify_per_s": round(verify)}
    if args.entries <= len(sample):
        n1, t1 = ingest(sample, 1, args.batch)
        nt, tt = ingest(sample, args.threads, args.batch)
    else:  # stream: never hold all actions in memory
        del sample
        n1, t1 = ingest(generate(args.authors, args.entries), 1, args.batch)
        nt, tt = n1, t1
        if args.threads > 1:
            nt, tt = ingest(generate(args.authors, args.entries), args.threads, args.batch)
    figures |= {
        "entries_per_s": round(n1 / t1),
        "ratio_1_thread": round(n1 / t1 / verify, 3),
        "threads": args.threads,
        "entries_per_s_threads": round(nt / tt),
        "ratio_threads": round(nt / tt / verify, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "targets": {"ratio_1_thread": 0.8, "ratio_threads": 1.5, "rss_mb_at_1m": 64},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
