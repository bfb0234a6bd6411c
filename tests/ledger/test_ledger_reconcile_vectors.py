"""tests/vectors/reconcile.json: the file is what its script writes, and every answer holds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ledger import reconcile as rc

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
sys.path.insert(0, str(VECTORS))

import make_reconcile_vectors  # noqa: E402

CASES = json.loads((VECTORS / "reconcile.json").read_text())


def test_the_file_is_what_the_script_writes() -> None:
    assert (VECTORS / "reconcile.json").read_text() == make_reconcile_vectors.render()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector(case: dict) -> None:
    held = {bytes.fromhex(a): (s, bytes.fromhex(h)) for a, (s, h) in case["heads"].items()}
    index = rc.HeadSet.of(held)
    query = bytes.fromhex(case["query_hex"])
    if case["refused"]:
        with pytest.raises(rc.ReconcileError):
            rc.answer(index, query)
    else:
        assert rc.answer(index, query).hex() == case["answer_hex"]


def test_the_vectors_cover_every_rule() -> None:
    answers = [bytes.fromhex(c["answer_hex"]) for c in CASES if not c["refused"]]
    assert b"\x90" in answers  # equal: left out
    assert sum(c["refused"] for c in CASES) >= 5
