"""The code against the published test vectors (tests/vectors/actions.json)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from ledger import codec
from ledger.actions import split_signed
from ledger.charter import GridRules
from ledger.errors import REASONS, Invalid
from ledger.membrane import Membrane
from ledger.store import Store

HERE = Path(__file__).resolve().parents[1] / "vectors"
VECTORS = json.loads((HERE / "actions.json").read_text())


def verdict(store: Store, signed: bytes, now_us: int) -> tuple[str | None, str]:
    """`(reason, outcome)` of one signed action arriving at `store`, as a node judges it."""
    try:
        item = split_signed(codec.decode(signed))
    except codec.CodecError:
        return "bad-encoding", "rejected"
    except Invalid as exc:
        return exc.reason, "rejected"
    result = store.ingest([item], now_us)
    if result.rejected:
        return result.rejected[0][1], "rejected"
    if result.forks:
        return None, "fork"
    for outcome in ("accepted", "duplicate", "pending"):
        if getattr(result, outcome):
            return None, outcome
    raise AssertionError(f"no outcome: {result}")


def test_the_vectors_cover_every_reason_and_enough_valid_cases():
    assert {v["reason"] for v in VECTORS if not v["valid"]} == set(REASONS)
    assert sum(v["valid"] for v in VECTORS) >= 5
    assert sum(not v["valid"] for v in VECTORS) >= 10
    assert len({v["name"] for v in VECTORS}) == len(VECTORS)
    for v in VECTORS:
        assert v["valid"] == (v["reason"] is None)
        assert set(v) >= {"name", "signed_hex", "valid", "reason", "context"}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector, tmp_path):
    admin = bytes.fromhex(vector["admin"]) if vector["admin"] else None
    limits = GridRules(**vector["limits"]) if vector.get("limits") else None
    members = frozenset(bytes.fromhex(m) for m in vector.get("members", []))
    store = Store(
        tmp_path / "vectors.sqlite3",
        Membrane(vector["community"], admin, vector["open"], members),
        (lambda grid, k: limits) if limits else None,
    )
    try:
        for signed_hex in vector["context"]:
            reason, _ = verdict(store, bytes.fromhex(signed_hex), vector["now_us"])
            assert reason is None, f"context action refused: {reason}"
        reason, outcome = verdict(store, bytes.fromhex(vector["signed_hex"]), vector["now_us"])
        assert (reason, outcome) == (vector["reason"], vector["outcome"])
        assert store.integrity_problems() == []
    finally:
        store.close()


def test_the_generator_reproduces_the_file_byte_for_byte():
    generator = runpy.run_path(str(HERE / "make_vectors.py"))
    assert generator["render"]() == (HERE / "actions.json").read_text()
