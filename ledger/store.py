"""The source-chain store on SQLite: every valid action of every chain, forks, pending actions.

One file per node, WAL journal, `synchronous=FULL`: when `ingest` or `append` returns, what they
accepted is on disk. A batch of foreign actions is one transaction; a process killed at any moment
leaves the last committed state and no half-written action.

Tables:
- `actions`: valid actions keyed by hash, `UNIQUE(author, seq)`; `grid`/`interval` columns feed the
  market index (orders, settlements and readings by grid and interval, no scan).
- `agents`: one row per chain: its head and the genesis fields the market needs.
- `forks`: both actions of every fork seen (evidence); `forked`: authors marked forked.
- `pending`: intrinsically valid actions whose predecessor has not arrived, bounded.
- `charters`: signed community charters by version.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path

from ledger.actions import Action, decode_action
from ledger.errors import FORKED_AUTHOR, Invalid
from ledger.membrane import Membrane
from ledger.validation import check_intrinsic, check_link, check_membrane, check_warrant

SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    author BLOB PRIMARY KEY,
    head_seq INTEGER NOT NULL,
    head_hash BLOB NOT NULL,
    head_ts INTEGER NOT NULL,
    community TEXT NOT NULL,
    grid TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    household TEXT NOT NULL,
    capacity_wh INTEGER NOT NULL,
    max_power_w INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    hash BLOB NOT NULL UNIQUE,
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    type TEXT NOT NULL,
    grid TEXT NOT NULL,
    interval INTEGER,
    action_bytes BLOB NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (author, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS actions_market ON actions (grid, interval, type)
    WHERE interval IS NOT NULL;
CREATE TABLE IF NOT EXISTS forks (
    hash BLOB PRIMARY KEY,
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    action_bytes BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS forked (author BLOB PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    hash BLOB PRIMARY KEY,
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    action_bytes BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_by_author ON pending (author, seq);
CREATE TABLE IF NOT EXISTS charters (version INTEGER PRIMARY KEY, signed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""

MAX_PENDING_PER_AUTHOR = 1000
MAX_PENDING_TOTAL = 50_000


@dataclass(slots=True)
class Head:
    seq: int
    hash: bytes
    ts: int
    grid: str


@dataclass(slots=True)
class IngestResult:
    """What a batch did. `rejected` holds `(index in the batch, reason)`."""

    accepted: int = 0
    duplicate: int = 0
    pending: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    new: list[Action] = field(default_factory=list)
    forks: list[tuple[Action, Action]] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "pending": self.pending,
            "rejected": [[i, r] for i, r in self.rejected],
        }


class Store:
    """A node's SQLite store. Thread-safe: one connection behind a lock."""

    def __init__(self, path: str | Path, membrane: Membrane | None = None) -> None:
        self.path = Path(path)
        self.membrane = membrane
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA cache_size=-4000")
        self._db.executescript(SCHEMA)
        self._heads: dict[bytes, Head] = {}
        self._forked: set[bytes] = set()
        self._pending_total = 0
        self._pending_by_author: Counter[bytes] = Counter()
        self._rows: list[tuple] = []
        self._row_index: dict[tuple[bytes, int], bytes] = {}
        self._dirty_heads: set[bytes] = set()
        self._load_cache()
        self.rejected_by_reason: Counter[str] = Counter()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing -----------------------------------------------------------------------------

    def ingest(
        self,
        items: list[tuple[bytes, bytes]],
        now_us: int,
        *,
        pool: Executor | None = None,
        prechecked: list[Action | Invalid] | None = None,
    ) -> IngestResult:
        """Validate and store foreign signed actions `(action_bytes, signature)` in one transaction.

        `prechecked` is `precheck(items, ...)` done earlier (for example while the previous batch
        was being written); otherwise the intrinsic checks run here, spread over `pool`.
        """
        result = IngestResult()
        checked = prechecked if prechecked is not None else precheck(items, now_us, pool)
        valid: list[tuple[int, Action]] = []
        for index, outcome in enumerate(checked):
            if isinstance(outcome, Invalid):
                result.rejected.append((index, outcome.reason))
            else:
                valid.append((index, outcome))
        valid.sort(key=lambda pair: (pair[1].author, pair[1].seq))
        with self._lock, self._transaction():
            for index, action in valid:
                try:
                    self._place(action, result)
                except Invalid as exc:
                    result.rejected.append((index, exc.reason))
        result.rejected.sort()
        for _, reason in result.rejected:
            self.rejected_by_reason[reason] += 1
        return result

    def append_own(
        self, author: bytes, build: Callable[[Head | None], Action], now_us: int
    ) -> Action:
        """Append our own next action. `build(head)` signs it on top of the current head.

        The head is read inside an IMMEDIATE transaction, so two writers (threads or processes)
        are serialised by SQLite and can never fork our chain.
        """
        with self._lock, self._transaction():
            row = self._db.execute(
                "SELECT head_seq, head_hash, head_ts, grid FROM agents WHERE author = ?",
                (author,),
            ).fetchone()
            head = Head(*row) if row else None
            action = build(head)
            action = check_intrinsic(action.action_bytes, action.signature, now_us)
            result = IngestResult()
            self._place(action, result)
            if not result.accepted:
                raise Invalid(FORKED_AUTHOR, "our own append was not accepted")
        return action

    def _place(self, action: Action, result: IngestResult) -> None:
        head = self._heads.get(action.author)
        if action.type == "genesis" or (head is not None and action.seq <= head.seq):
            held = self._hash_at(action.author, action.seq)
            if held == action.hash:
                result.duplicate += 1
                return
            if held is not None:
                self._flush()  # the held action may still be in the write buffer
                self._record_fork(self.get_by_seq(action.author, action.seq), action, result)
                return
        if action.author in self._forked:
            raise Invalid(FORKED_AUTHOR, "author is forked")
        if action.type == "genesis":
            if self.membrane is not None:
                check_membrane(action, self.membrane)
            self._insert(action, grid=action.payload["grid"])
        elif head is None or action.seq > head.seq + 1:
            self._hold_pending(action)
            result.pending += 1
            return
        else:
            check_link(action, head.hash, head.ts)
            self._insert(action, grid=head.grid)
        result.accepted += 1
        result.new.append(action)
        if action.type == "warrant":
            first, second = check_warrant(action.payload)
            self._record_fork(first, second, result, detected=False)
        self._release_pending(action.author, result)

    def _insert(self, action: Action, grid: str) -> None:
        """Buffer the row; `_flush` writes the buffer with one `executemany` per table."""
        interval = action.payload.get("interval") if action.type != "genesis" else None
        self._rows.append(
            (action.hash, action.author, action.seq, action.ts, action.type, grid, interval,
             action.action_bytes, action.signature)
        )
        self._row_index[(action.author, action.seq)] = action.hash
        if action.type == "genesis":
            p = action.payload
            self._db.execute(
                "INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (action.author, 0, action.hash, action.ts, p["community"], p["grid"], p["name"],
                 p["role"], p["household"], p["capacity_wh"], p["max_power_w"]),
            )
        self._heads[action.author] = Head(action.seq, action.hash, action.ts, grid)
        self._dirty_heads.add(action.author)

    def _flush(self) -> None:
        if self._rows:
            self._db.executemany(
                "INSERT INTO actions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self._rows
            )
        if self._dirty_heads:
            self._db.executemany(
                "UPDATE agents SET head_seq = ?, head_hash = ?, head_ts = ? WHERE author = ?",
                [(h.seq, h.hash, h.ts, a) for a in self._dirty_heads for h in (self._heads[a],)],
            )
        self._discard_buffer()

    def _discard_buffer(self) -> None:
        self._rows = []
        self._row_index = {}
        self._dirty_heads = set()

    def _hold_pending(self, action: Action) -> None:
        held = self._pending_by_author[action.author]
        if held >= MAX_PENDING_PER_AUTHOR or self._pending_total >= MAX_PENDING_TOTAL:
            return  # dropped: anti-entropy fetches it again once its predecessor is here
        cur = self._db.execute(
            "INSERT OR IGNORE INTO pending VALUES (?, ?, ?, ?, ?)",
            (action.hash, action.author, action.seq, action.action_bytes, action.signature),
        )
        self._pending_total += cur.rowcount
        self._pending_by_author[action.author] += cur.rowcount

    def _release_pending(self, author: bytes, result: IngestResult) -> None:
        while self._pending_by_author.get(author):
            head = self._heads[author]
            rows = self._db.execute(
                "SELECT hash, action_bytes, signature FROM pending WHERE author = ? AND seq <= ?"
                " ORDER BY seq, hash",
                (author, head.seq + 1),
            ).fetchall()
            if not rows:
                return
            self._db.execute(
                "DELETE FROM pending WHERE author = ? AND seq <= ?", (author, head.seq + 1)
            )
            self._pending_total -= len(rows)
            self._pending_by_author[author] -= len(rows)
            if not self._pending_by_author[author]:
                del self._pending_by_author[author]
            before = head.seq
            for _, action_bytes, signature in rows:
                action = decode_action(action_bytes, signature, check_signature=False)
                try:
                    self._place(action, result)
                except Invalid as exc:
                    self.rejected_by_reason[exc.reason] += 1
            if self._heads[author].seq == before:
                return

    def _record_fork(
        self, first: Action | None, second: Action, result: IngestResult, detected: bool = True
    ) -> None:
        if first is None:
            return
        for a in (first, second):
            self._db.execute(
                "INSERT OR IGNORE INTO forks VALUES (?, ?, ?, ?, ?)",
                (a.hash, a.author, a.seq, a.action_bytes, a.signature),
            )
        if first.author not in self._forked:
            self._db.execute(
                "INSERT OR IGNORE INTO forked VALUES (?, ?)", (first.author, first.seq)
            )
            self._forked.add(first.author)
            if detected:
                result.forks.append((first, second))

    def save_charter(self, version: int, signed: bytes) -> None:
        with self._lock, self._transaction():
            self._db.execute("INSERT OR REPLACE INTO charters VALUES (?, ?)", (version, signed))

    def set_meta(self, key: str, value: bytes) -> None:
        with self._lock, self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def _load_cache(self) -> None:
        self._heads = {
            a: Head(s, h, t, g)
            for a, s, h, t, g in self._db.execute(
                "SELECT author, head_seq, head_hash, head_ts, grid FROM agents"
            )
        }
        self._forked = {a for (a,) in self._db.execute("SELECT author FROM forked")}
        self._pending_by_author = Counter(
            dict(self._db.execute("SELECT author, count(*) FROM pending GROUP BY author"))
        )
        self._pending_total = sum(self._pending_by_author.values())
        self._discard_buffer()

    # -- reading -----------------------------------------------------------------------------

    def _hash_at(self, author: bytes, seq: int) -> bytes | None:
        buffered = self._row_index.get((author, seq))
        if buffered is not None:
            return buffered
        row = self._db.execute(
            "SELECT hash FROM actions WHERE author = ? AND seq = ?", (author, seq)
        ).fetchone()
        return row[0] if row else None

    def get_by_seq(self, author: bytes, seq: int) -> Action | None:
        with self._lock:
            row = self._db.execute(
                "SELECT action_bytes, signature FROM actions WHERE author = ? AND seq = ?",
                (author, seq),
            ).fetchone()
        return decode_action(*row, check_signature=False) if row else None

    def get(self, hash_: bytes) -> Action | None:
        with self._lock:
            row = self._db.execute(
                "SELECT action_bytes, signature FROM actions WHERE hash = ?", (hash_,)
            ).fetchone()
        return decode_action(*row, check_signature=False) if row else None

    def heads(self) -> dict[bytes, tuple[int, bytes]]:
        with self._lock:
            return {a: (h.seq, h.hash) for a, h in self._heads.items()}

    def head(self, author: bytes) -> Head | None:
        return self._heads.get(author)

    def chain_range(self, author: bytes, start: int = 0, limit: int = 1000) -> list[tuple[bytes, bytes]]:
        """`(action_bytes, signature)` of seq `start` upward, contiguous, at most `limit`."""
        with self._lock:
            return self._db.execute(
                "SELECT action_bytes, signature FROM actions WHERE author = ? AND seq >= ?"
                " ORDER BY seq LIMIT ?",
                (author, start, limit),
            ).fetchall()

    def chain(self, author: bytes, start: int = 0, limit: int = 1000) -> list[Action]:
        return [decode_action(b, s, check_signature=False)
                for b, s in self.chain_range(author, start, limit)]

    def agents(self) -> list[dict]:
        cols = ("author", "head_seq", "head_hash", "head_ts", "community", "grid", "name", "role",
                "household", "capacity_wh", "max_power_w")
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(cols)} FROM agents ORDER BY author").fetchall()
        return [dict(zip(cols, r, strict=True)) | {"forked": r[0] in self._forked} for r in rows]

    def agent(self, author: bytes) -> dict | None:
        return next((a for a in self.agents() if a["author"] == author), None)

    def by_interval(self, grid: str, interval: int, types: tuple[str, ...]) -> list[Action]:
        """Orders, settlements or readings of one grid and interval, through the market index."""
        marks = ", ".join("?" * len(types))
        with self._lock:
            rows = self._db.execute(
                "SELECT action_bytes, signature FROM actions WHERE grid = ? AND interval = ?"
                f" AND type IN ({marks}) ORDER BY author, seq",
                (grid, interval, *types),
            ).fetchall()
        return [decode_action(b, s, check_signature=False) for b, s in rows]

    def forked_authors(self) -> set[bytes]:
        return set(self._forked)

    def fork_evidence(self, author: bytes) -> list[Action]:
        with self._lock:
            rows = self._db.execute(
                "SELECT action_bytes, signature FROM forks WHERE author = ? ORDER BY seq, hash",
                (author,),
            ).fetchall()
        return [decode_action(b, s, check_signature=False) for b, s in rows]

    def pending_count(self) -> int:
        return self._pending_total

    def count(self) -> int:
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
        """SQLite's own check plus a re-verification of every chain: signatures, links, seqs."""
        problems = []
        with self._lock:
            ok = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            problems.append(f"sqlite: {ok}")
        for author in list(self._heads):
            prev: Action | None = None
            start = 0
            while True:
                batch = self.chain_range(author, start, 1000)
                for action_bytes, signature in batch:
                    try:
                        a = decode_action(action_bytes, signature)
                        if a.seq != start:
                            raise Invalid("bad-seq", f"gap before seq {a.seq}")
                        if prev is not None:
                            check_link(a, prev.hash, prev.ts)
                    except Invalid as exc:
                        problems.append(f"{author.hex()} seq {start}: {exc}")
                        break
                    prev, start = a, start + 1
                else:
                    if len(batch) == 1000:
                        continue
                break
        return problems


def _check_chunk(items: list[tuple[bytes, bytes]], now_us: int) -> list[Action | Invalid]:
    out: list[Action | Invalid] = []
    for body, signature in items:
        try:
            out.append(check_intrinsic(body, signature, now_us))
        except Invalid as exc:
            out.append(exc)
    return out


def precheck(
    items: list[tuple[bytes, bytes]], now_us: int, pool: Executor | None = None, workers: int = 2
) -> list[Action | Invalid]:
    """The intrinsic checks of a batch, in order: an `Action` or the `Invalid` it raised.

    With a thread pool the batch is cut into one slice per worker; PyNaCl releases the GIL while
    it verifies, so the signatures are checked on several cores at once.
    """
    if pool is None or len(items) < 2 * workers:
        return _check_chunk(items, now_us)
    return gather(submit_precheck(pool, items, now_us, workers))


def submit_precheck(
    pool: Executor, items: list[tuple[bytes, bytes]], now_us: int, workers: int = 2
) -> list[Future]:
    """Start the intrinsic checks of a batch on `pool`, one slice per worker; see `gather`."""
    size = max(1, -(-len(items) // workers))
    return [pool.submit(_check_chunk, items[i : i + size], now_us)
            for i in range(0, len(items), size)]


def gather(futures: list[Future]) -> list[Action | Invalid]:
    return [outcome for f in futures for outcome in f.result()]


class _Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT`; on any exception `ROLLBACK` and reload the caches."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __enter__(self) -> None:
        self._store._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self._store._flush()
            except BaseException:
                self._store._db.execute("ROLLBACK")
                self._store._load_cache()
                raise
            self._store._db.execute("COMMIT")
        else:
            self._store._db.execute("ROLLBACK")
            self._store._load_cache()
