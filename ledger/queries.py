"""What a store answers: chains, heads, agents, the market index, forks, charters.

`Queries` is the reading half of `ledger.store.Store`; the writing half (ingest, placing,
pending, forks, transactions) is in `store.py`. Reads take the store's lock, so they never see a
batch half-placed; heads, forked authors and pending counts come from the in-memory caches.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from typing import NamedTuple

from ledger import codec
from ledger.actions import Action, decode_action
from ledger.integrity import problems
from ledger.tables import HEADS, StoreError


class Head(NamedTuple):
    """The last action of a chain. (A named tuple: built for every action placed, so cheap.)"""

    seq: int
    hash: bytes
    ts: int
    grid: str


# One page of a chain holds at most this many bytes of signed actions (docs/protocol.md, Bounds):
# 1000 actions of 16 KB would be 16 MB to hold, encode and send per request.
PAGE_BYTES = 2**20


class Queries:
    """The read side of a store; `Store` fills in the connection and the caches."""

    _db: sqlite3.Connection
    _lock: threading.RLock
    _heads: dict[bytes, Head]
    _committed: dict[bytes, Head]
    _forked: set[bytes]
    _pending_by_author: Counter[bytes]
    _pending_bytes: Counter[bytes]

    _ids: dict[bytes, int]

    def _load_heads(self, where: str, args: tuple) -> None:
        """Read chains' heads (all, or those `where` selects) from the file into the cache."""
        for agent_id, author, grid, seq, hash_, body in self._db.execute(HEADS + where, args):
            try:
                ts = codec.decode(body)[4]  # valid when it was stored: the fifth field is the ts
            except codec.CodecError:
                raise StoreError(
                    f"the last action of {author.hex()} does not decode: the file is damaged"
                ) from None
            self._heads[author] = Head(seq, hash_, ts, grid)
            self._ids[author] = agent_id

    def _rows_of(self, sql: str, args: tuple) -> list[Action]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [decode_action(b, s, check_signature=False) for b, s in rows]

    def get(self, hash_: bytes) -> Action | None:
        """The action with this hash, if a chain holds it."""
        found = self._rows_of(
            "SELECT action_bytes, signature FROM actions WHERE hash = ?1 AND id IN"
            " (SELECT id FROM hashes WHERE prefix = substr(?1, 1, 8))"
            " UNION ALL SELECT action_bytes, signature FROM actions"
            " WHERE id > (SELECT upto FROM hashed) AND hash = ?1",
            (hash_,),
        )
        return found[0] if found else None

    def get_by_seq(self, author: bytes, seq: int) -> Action | None:
        found = self._rows_of(
            "SELECT action_bytes, signature FROM actions"
            " WHERE agent = (SELECT id FROM agents WHERE author = ?) AND seq = ?",
            (author, seq),
        )
        return found[0] if found else None

    # The heads as last committed are read without the lock: a copy published after each commit
    # and never changed, so a reader (the event loop) never waits for a batch being written.

    def heads(self) -> dict[bytes, tuple[int, bytes]]:
        """`{author: (seq, hash)}` of every chain held (PROTOCOL `GET /v1/gossip/heads`)."""
        return {a: (h.seq, h.hash) for a, h in self._committed.items()}

    def head(self, author: bytes) -> Head | None:
        """The last action of `author`'s chain, as committed (never one of a batch in progress)."""
        return self._committed.get(author)

    def chain_range(
        self, author: bytes, start: int = 0, limit: int = 1000, max_bytes: int = PAGE_BYTES
    ) -> list[tuple[bytes, bytes]]:
        """`(action_bytes, signature)` from seq `start` upward, contiguous, at most `limit`
        actions and at most `max_bytes` of them (but always the first one, if any)."""
        out: list[tuple[bytes, bytes]] = []
        size = 0
        with self._lock:
            rows = self._db.execute(
                "SELECT action_bytes, signature FROM actions"
                " WHERE agent = (SELECT id FROM agents WHERE author = ?) AND seq >= ?"
                " ORDER BY seq LIMIT ?",
                (author, start, limit),
            )
            for body, sig in rows:
                size += len(body) + len(sig)
                if out and size > max_bytes:
                    break
                out.append((body, sig))
        return out

    def chain(
        self, author: bytes, start: int = 0, limit: int = 1000, max_bytes: int = PAGE_BYTES
    ) -> list[Action]:
        """Decoded `chain_range` (signatures were verified when stored)."""
        return [
            decode_action(b, s, check_signature=False)
            for b, s in self.chain_range(author, start, limit, max_bytes)
        ]

    _AGENT_COLUMNS = ("author", "community", "grid", "name", "role", "household")
    _AGENT_COLUMNS += ("capacity_wh", "max_power_w")

    def _agent_rows(self, where: str, args: tuple) -> list[dict]:
        cols = self._AGENT_COLUMNS
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(cols)} FROM agents {where} ORDER BY author", args
            ).fetchall()
            out = []
            for row in rows:
                agent = dict(zip(cols, row, strict=True))
                if agent["author"] not in self._heads:  # written by another connection
                    self._load_heads(" WHERE g.author = ?", (agent["author"],))
                    self._committed = self._heads.copy()
                head = self._heads[agent["author"]]
                agent |= {"head_seq": head.seq, "head_hash": head.hash, "head_ts": head.ts}
                out.append(agent | {"forked": agent["author"] in self._forked})
            return out

    def agents(self) -> list[dict]:
        """One dict per chain held: its genesis fields, its head, and whether it is forked."""
        return self._agent_rows("", ())

    def agent(self, author: bytes) -> dict | None:
        found = self._agent_rows("WHERE author = ?", (author,))
        return found[0] if found else None

    def by_interval(self, grid: str, interval: int, types: tuple[str, ...]) -> list[Action]:
        """Actions of `types` for one grid and interval, by author then seq, through the index."""
        marks = ", ".join("?" * len(types))
        return self._rows_of(
            "SELECT a.action_bytes, a.signature FROM actions AS a"
            " JOIN agents AS g ON g.id = a.agent"
            f" WHERE a.grid = ? AND a.interval = ? AND a.type IN ({marks})"
            " ORDER BY g.author, a.seq",
            (grid, interval, *types),
        )

    def intervals(self, grid: str) -> list[int]:
        """Every interval of `grid` that some order, settlement or reading names, ascending."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT interval FROM actions WHERE grid = ? AND interval IS NOT NULL"
                " ORDER BY interval",
                (grid,),
            ).fetchall()
        return [i for (i,) in rows]

    def forked_authors(self) -> set[bytes]:
        with self._lock:
            return set(self._forked)

    def fork_seq(self, author: bytes) -> int | None:
        """The seq at which `author` was first found to fork; None when not known as forked."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM forked WHERE author = ?", (author,)).fetchone()
        return row[0] if row else None

    def fork_evidence(self, author: bytes) -> list[Action]:
        """The signed actions that prove `author` forked, by seq."""
        return self._rows_of(
            "SELECT action_bytes, signature FROM forks WHERE author = ? ORDER BY seq, hash",
            (author,),
        )

    def pending_count(self) -> int:
        with self._lock:
            return sum(self._pending_by_author.values())

    def latest_rowid(self) -> int:
        """The newest stored action's row id (0 when empty): changes whenever an action is
        stored, in one index look-up; views cache on it."""
        with self._lock:
            return self._db.execute("SELECT max(id) FROM actions").fetchone()[0] or 0

    def count(self) -> int:
        """How many actions the chains hold (fork evidence and pending actions not included)."""
        with self._lock:
            return self._db.execute("SELECT count(*) FROM actions").fetchone()[0]

    def charters(self) -> list[bytes]:
        with self._lock:
            return [s for (s,) in self._db.execute("SELECT signed FROM charters ORDER BY version")]

    def get_meta(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def integrity_problems(self) -> list[str]:
        """Re-verify the whole file; see `ledger.integrity`. An empty list means all is well."""
        with self._lock:
            return problems(self._db)
