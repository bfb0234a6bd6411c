"""Writes tests/vectors/reconcile.json: set-reconciliation queries and the answer a node must give
(docs/protocol.md, "Heads by set reconciliation" and "Infos and forks by set reconciliation"). Deterministic; the suite checks the file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ledger import reconcile as rc  # noqa: E402
from ledger.actions import blake2b256  # noqa: E402
from ledger.codec import encode  # noqa: E402

HERE = Path(__file__).resolve().parent


def heads(n: int, salt: bytes = b"") -> dict[bytes, tuple[int, bytes]]:
    """n heads: author = BLAKE2b-256(salt || i as 4 bytes), seq = i, hash = BLAKE2b-256(author)."""
    out = {}
    for i in range(n):
        author = blake2b256(salt + i.to_bytes(4, "big"))
        out[author] = (i, blake2b256(author))
    return out


def forked(n: int) -> dict[bytes, tuple[int, bytes]]:
    """The forks set of n forked authors: author -> (0, BLAKE2b-256("picogrid-forked" || author))."""
    authors = [blake2b256(b"forked" + i.to_bytes(4, "big")) for i in range(n)]
    return {a: (0, blake2b256(b"picogrid-forked" + a)) for a in authors}


def infos(n: int) -> dict[bytes, tuple[int, bytes]]:
    """An infos set: agent -> (created_us, BLAKE2b-256 of the signed info, here made up)."""
    agents = [blake2b256(b"agent" + i.to_bytes(4, "big")) for i in range(n)]
    return {a: (1_700_000_000_000_000 + i, blake2b256(b"info" + a)) for i, a in enumerate(agents)}


def case(name: str, note: str, held: dict, query: bytes) -> dict[str, Any]:
    """One vector: the answerer's heads, the query, and the answer or the refusal."""
    index = rc.HeadSet.of(held)
    try:
        answer, error = rc.answer(index, query).hex(), False
    except rc.ReconcileError:
        answer, error = None, True
    return {"name": name, "note": note,
            "heads": {a.hex(): [s, h.hex()] for a, (s, h) in sorted(held.items())},
            "query_hex": query.hex(), "answer_hex": answer, "refused": error}


def build() -> list[dict[str, Any]]:
    """Every rule of the answerer: equal, items, split, refusals."""
    small, big = heads(5), heads(40)
    return [
        case("synced", "equal fingerprints: the range is left out", small,
             rc.start(rc.HeadSet.of(small))),
        case("empty-asker", "at most 16 items: answered with the items", small,
             rc.start(rc.HeadSet.of({}))),
        case("split", "more than 16 items: 16 sub-ranges with fingerprints", big,
             rc.start(rc.HeadSet.of({}))),
        case("sub-range", "a bounded range", big, encode([[b"\x40", b"\x80", bytes(16)]])),
        case("bad-fingerprint", "15 bytes", small, encode([[b"", None, bytes(15)]])),
        case("overlap", "ranges must ascend", small,
             encode([[b"\x05", b"\x09", bytes(16)], [b"\x01", b"\x02", bytes(16)]])),
        case("items-in-query", "only answers carry items", small, encode([[b"", None, []]])),
        case("not-canonical", "the empty lower bound as bin 16 (c5 00 00), not bin 8", small,
             bytes.fromhex("9193c50000c0c410") + bytes(16)),
        case("forks-set", "the forks set of 3 authors, answered to an asker that knows none",
             forked(3), rc.start(rc.HeadSet.of({}))),
        case("forks-synced", "two nodes that know the same forks: left out", forked(3),
             rc.start(rc.HeadSet.of(forked(3)))),
        case("infos-set", "an infos set (created_us as the number), to an empty asker",
             infos(4), rc.start(rc.HeadSet.of({}))),
        case("too-many", "more than 64 ranges", small,
             encode([[bytes([i]), bytes([i + 1]), bytes(16)] for i in range(65)])),
    ]


def render() -> str:
    """The file's text."""
    return json.dumps(build(), indent=1) + "\n"


if __name__ == "__main__":
    (HERE / "reconcile.json").write_text(render())
