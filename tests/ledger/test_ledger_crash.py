"""Crash safety: writers killed with SIGKILL at random moments, many times.

A worker process (this file run as a script) appends to, or ingests into, a store in a loop and
prints each acknowledgement only after the call returned. The test kills it after a random short
delay, reopens the store, re-verifies the whole file, and checks that everything acknowledged is
there, unchanged.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger import codec
from ledger.membrane import Membrane
from ledger.store import Store
from ledger.testing import T0, ChainSigner, identity, wire_items

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
OWN = identity(1)


def run_worker(mode: str, path: Path, items: Path | None = None) -> subprocess.Popen:
    args = [sys.executable, str(HERE), mode, str(path)] + ([str(items)] if items else [])
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_after(proc: subprocess.Popen, delay: float) -> list[str]:
    """SIGKILL `proc` after `delay` seconds (once it has started writing); its complete lines."""
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # "ready": the store is open and the loop is starting
    assert first == b"ready\n", proc.stderr.read() or first
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out = proc.stdout.read()  # through the same buffered reader that read the first line
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return out.decode().split("\n")[:-1]  # a line cut off by the kill was never acknowledged


def test_appends_survive_sigkill_at_any_moment(tmp_path):
    path = tmp_path / "own.sqlite3"
    acknowledged: dict[int, str] = {}
    before = -1  # the head when the store was last reopened
    rng = random.Random(20240607)
    for _ in range(18):
        lines = kill_after(run_worker("append", path), rng.uniform(0.0, 0.2))
        for line in lines:
            seq, hash_hex = line.split()
            acknowledged[int(seq)] = hash_hex
        store = Store(path, Membrane("test"))
        try:
            assert store.integrity_problems() == []
            held = {a.seq: a.hash.hex() for a in store.chain(OWN.agent, 0, 10**6)}
            assert acknowledged.items() <= held.items()
            # Nothing held is lost, and at most one action was committed but not yet printed.
            head = store.head(OWN.agent)
            seq = head.seq if head else -1
            floor = max(before, max(acknowledged, default=-1))
            assert floor <= seq <= floor + 1
            before = seq
        finally:
            store.close()
    assert len(acknowledged) > 18  # the kills landed while appends were happening


def test_foreign_batches_survive_sigkill(tmp_path):
    chains = [ChainSigner(identity(50 + n)).chain(120) for n in range(20)]
    rounds = [a for i in range(120) for chain in chains for a in chain[i : i + 1]]
    batches = [rounds[i : i + 150] for i in range(0, len(rounds), 150)]
    items = tmp_path / "batches.msgpack"
    items.write_bytes(codec.encode([wire_items(b) for b in batches]))
    path = tmp_path / "node.sqlite3"
    done: set[int] = set()
    rng = random.Random(7)
    for _ in range(5):
        lines = kill_after(run_worker("ingest", path, items), rng.uniform(0.05, 0.5))
        done.update(int(line) for line in lines)
        store = Store(path, Membrane("test"))
        try:
            assert store.integrity_problems() == []
            held = {h for chain in chains for h in _hashes(store, chain[0].author)}
            for index in done:
                assert {a.hash for a in batches[index]} <= held
        finally:
            store.close()
    assert done


def _hashes(store: Store, author: bytes) -> set[bytes]:
    return {a.hash for a in store.chain(author, 0, 10**6)}


def _append_forever(path: str) -> None:
    from ledger.chain import SourceChain
    from ledger.testing import genesis_payload, order_payload

    store = Store(path, Membrane("test"))
    chain = SourceChain(store, OWN)
    print("ready", flush=True)
    if chain.head() is None:
        g = chain.append("genesis", genesis_payload())
        print(g.seq, g.hash.hex(), flush=True)
    i = 0
    while True:
        a = chain.append("bid", order_payload(i))
        print(a.seq, a.hash.hex(), flush=True)
        i += 1


def _ingest_forever(path: str, items: str) -> None:
    batches = codec.decode(Path(items).read_bytes())
    store = Store(path, Membrane("test"))
    print("ready", flush=True)
    while True:
        for index, batch in enumerate(batches):
            result = store.ingest([tuple(x) for x in batch], T0 + 10**12)
            assert not result.rejected, result.rejected
            print(index, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "append":
        _append_forever(sys.argv[2])
    else:
        _ingest_forever(sys.argv[2], sys.argv[3])
