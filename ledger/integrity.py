"""Re-verify a store file from scratch: what a node runs after a crash, and what tests assert.

Trusts nothing the file says about itself: SQLite's own integrity check, then every chain action
by action (signature over the stored bytes, schema, seq, link, timestamps, that each row's columns
agree with its bytes), the hash index, the fork evidence and the pending actions.
"""

from __future__ import annotations

import sqlite3

from ledger.actions import Action, decode_action
from ledger.errors import Invalid
from ledger.schemas import check_payload
from ledger.validation import check_link

PAGE = 1000


def problems(db: sqlite3.Connection) -> list[str]:
    """Everything wrong with the store behind `db`; an empty list means it is sound."""
    found = [f"sqlite: {row[0]}" for row in db.execute("PRAGMA integrity_check") if row[0] != "ok"]
    for agent_id, author, grid in db.execute("SELECT id, author, grid FROM agents ORDER BY id"):
        found += _chain_problems(db, agent_id, author, grid)
    found += _hash_index_problems(db)
    orphans = db.execute(
        "SELECT count(*) FROM actions WHERE agent NOT IN (SELECT id FROM agents)"
    ).fetchone()[0]
    if orphans:
        found.append(f"{orphans} action(s) belong to no chain")
    for table in ("forks", "pending"):
        for hash_, author, seq, body, signature in db.execute(
            f"SELECT hash, author, seq, action_bytes, signature FROM {table}"
        ):
            try:
                a = decode_action(body, signature)
            except Invalid as exc:
                found.append(f"{table} {hash_.hex()}: {exc}")
                continue
            if (a.hash, a.author, a.seq) != (hash_, author, seq):
                found.append(f"{table} {hash_.hex()}: columns disagree with the signed bytes")
    for (author,) in db.execute(
        "SELECT author FROM forked WHERE author NOT IN (SELECT author FROM forks)"
    ):
        found.append(f"{author.hex()} is marked forked without evidence")
    return found


def _chain_problems(db: sqlite3.Connection, agent_id: int, author: bytes, grid: str) -> list[str]:
    name = author.hex()
    prev: Action | None = None
    start = 0
    while True:
        rows = db.execute(
            "SELECT seq, hash, type, grid, interval, action_bytes, signature FROM actions"
            " WHERE agent = ? AND seq >= ? ORDER BY seq LIMIT ?",
            (agent_id, start, PAGE),
        ).fetchall()
        for seq, hash_, type_, row_grid, interval, body, signature in rows:
            where = f"{name} seq {seq}"
            if seq != start:
                return [f"{name}: the chain has a gap before seq {seq}"]
            try:
                a = decode_action(body, signature)
                check_payload(a.type, a.payload)
                if prev is not None:
                    check_link(a, prev.hash, prev.ts)
            except Invalid as exc:
                return [f"{where}: {exc}"]
            expected = (author, seq, hash_, type_, grid, interval)
            stored = (a.author, a.seq, a.hash, a.type, row_grid, a.payload.get("interval"))
            if expected != stored:
                return [f"{where}: columns disagree with the signed bytes"]
            prev, start = a, start + 1
        if len(rows) < PAGE:
            break
    if prev is None:
        return [f"{name}: a chain without its genesis"]
    return []


def _hash_index_problems(db: sqlite3.Connection) -> list[str]:
    """`hashes` covers exactly the actions up to `hashed.upto`, each under its hash's prefix."""
    wrong = db.execute(
        "SELECT count(*) FROM hashes AS h LEFT JOIN actions AS a ON a.id = h.id"
        " WHERE a.id IS NULL OR substr(a.hash, 1, 8) != h.prefix"
    ).fetchone()[0]
    indexed, covered = db.execute(
        "SELECT (SELECT count(*) FROM hashes),"
        " (SELECT count(*) FROM actions WHERE id <= (SELECT upto FROM hashed))"
    ).fetchone()
    found = [f"{wrong} hash index entries point to no action of that hash"] if wrong else []
    if indexed != covered:
        found.append(f"the hash index has {indexed} entries for {covered} actions")
    return found
