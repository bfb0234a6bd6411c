"""The source-chain store on SQLite: every valid action of every chain, forks, pending actions.

One file per node in WAL mode (layout in `ledger.tables`). Foreign actions arrive in batches:
`precheck` runs the intrinsic checks first (parallelisable, no lock), then `ingest` places the
valid ones in `(author, seq)` order inside one IMMEDIATE transaction, buffering the rows and
writing them with one `executemany` when the transaction ends. An in-memory cache of every
chain's head answers "where does this action go" without a query.

Placing an action (PROTOCOL section 2, rules 4, 5, 7 and 8):
- at or below the author's head: the same hash is a duplicate; another hash is a fork, and both
  actions are kept as evidence and the author is marked forked;
- by an author already marked forked, anywhere else: rejected `forked-author`;
- a genesis: checked against the membrane, then it starts the chain;
- exactly one above the head: its link and timestamp are checked against the head, then it is
  appended, and pending actions that now follow it are released;
- further above: held as pending (see "Pending" below).

Pending actions are bounded in count, bytes and age, strangers evicted first (`ledger.pending`).

Durability: a transaction that wrote our own action commits with `synchronous=FULL` (the WAL is
fsynced before `append_own` returns); foreign batches commit with `synchronous=NORMAL`, which
survives a killed process but may lose the latest batches on a power cut, which gossip fetches
again. Either way a crash leaves the last committed state and never half an action.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path

from ledger.actions import Action, decode_action
from ledger.errors import FORKED_AUTHOR, Invalid
from ledger.ingest_result import IngestResult  # noqa: F401 (re-exported: callers import it here)
from ledger.limits import RulesFor, check_limits
from ledger.membrane import Membrane
from ledger.pending import (  # noqa: F401 (the bounds, re-exported for callers and tests)
    MAX_PENDING_AGE_US,
    MAX_PENDING_BYTES,
    MAX_PENDING_PER_AUTHOR,
    MAX_PENDING_PER_STRANGER,
    MAX_STRANGER_PENDING_BYTES,
    PENDING,
    PURGE_EVERY_US,
    PendingBounds,
)
from ledger.precheck import Checked, gather, precheck, submit_precheck
from ledger.queries import Head, Queries
from ledger.tables import StoreError, create_or_check
from ledger.validation import check_intrinsic, check_link, check_membrane, check_warrant

__all__ = ["Head", "IngestResult", "Store", "StoreError", "gather", "precheck", "submit_precheck"]

HASH_MERGE = 8192  # actions written between two extensions of the hash index

# The genesis fields `agents` keeps for the market.
GENESIS_FIELDS = ("community", "grid", "name", "role", "household", "capacity_wh", "max_power_w")

# Builds a Head from a tuple in a third of the time its generated `__new__` takes.
_new_head = tuple.__new__

# What `_place` did with an action.
ACCEPTED, DUPLICATE, FORK = "accepted", "duplicate", "fork"


class Store(PendingBounds, Queries):
    """A node's SQLite store. Thread-safe: one connection behind a lock.

    One process writes a store at a time as a rule; if another connection commits anyway, the
    next transaction notices (`PRAGMA data_version`) and reloads the caches before it writes.
    """

    def __init__(
        self, path: str | Path, membrane: Membrane | None = None, limits: RulesFor | None = None
    ) -> None:
        self.path = Path(path)
        self._membrane = membrane
        self.limits = limits  # protocol 2: charter limits on orders and genesis claims
        self.rejected_by_reason: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA cache_size=-4000")  # 4 MB of pages
        self._db.execute("PRAGMA wal_autocheckpoint=4000")  # pages; fewer, larger checkpoints
        self._durable = True
        create_or_check(self._db)
        self._data_version = -1
        self._heads: dict[bytes, Head] = {}
        self._committed: dict[bytes, Head] = {}  # a copy of `_heads` as last committed
        self._ids: dict[bytes, int] = {}
        self._forked: set[bytes] = set()
        self._pending_by_author: Counter[bytes] = Counter()
        self._pending_bytes: Counter[bytes] = Counter()
        self._refused: set[bytes] = set()  # genesis refused by the membrane: never a member
        self._purged_us = 0
        self._now_us = 0
        self._rows: list[tuple] = []
        self._unhashed = 0  # actions the hash index does not cover yet
        self._load_cache()

    @property
    def membrane(self) -> Membrane | None:
        """Who may join; a new membrane (a new charter) forgets which geneses it refused."""
        return self._membrane

    @membrane.setter
    def membrane(self, membrane: Membrane | None) -> None:
        with self._lock:
            self._membrane = membrane
            self._refused = set()

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
        prechecked: Checked | None = None,
    ) -> IngestResult:
        """Validate and store foreign signed actions `(action_bytes, signature)`, one transaction.

        `prechecked` is `precheck(items, now_us, ...)` done earlier (for example while the
        previous batch was being written); otherwise the intrinsic checks run here, over `pool`.
        """
        result = IngestResult()
        checked = prechecked if prechecked is not None else precheck(items, now_us, pool)
        valid: list[tuple[bytes, int, int, Action]] = []
        for index, outcome in enumerate(checked):
            if isinstance(outcome, Invalid):
                result.rejected.append((index, outcome.reason))
            else:
                valid.append((outcome.author, outcome.seq, index, outcome))
        if valid:
            valid.sort()  # chain order; the batch index breaks ties, so actions are never compared
            with self._lock, self._transaction(durable=False):
                self._now_us = now_us
                if now_us - self._purged_us >= PURGE_EVERY_US:
                    self._purge_old(now_us)
                pending = self._pending_by_author
                for _, _, index, action in valid:
                    try:
                        placed = self._place(action, result)
                    except Invalid as exc:
                        result.rejected.append((index, exc.reason))
                        continue
                    if placed is ACCEPTED:
                        result.accepted += 1
                        result.new.append(action)
                        if pending and action.author in pending:
                            self._release(action.author, result)
                    elif placed is DUPLICATE:
                        result.duplicate += 1
                    elif placed is PENDING:
                        result.pending += 1
                    else:  # FORK: kept as evidence
                        result.accepted += 1
            result.rejected.sort()
        for _, reason in result.rejected:
            self.rejected_by_reason[reason] += 1
        return result

    def append_own(
        self, author: bytes, build: Callable[[Head | None], Action], now_us: int
    ) -> Action:
        """Append our own next action; `build(head)` signs it on top of the current head.

        The head is read from the file inside an IMMEDIATE transaction, so two writers (threads
        or processes) are serialised by SQLite and can never fork our chain. The transaction
        commits with `synchronous=FULL`: when this returns, the action is on disk.
        The 120 s future bound is not applied: our own timestamp runs ahead of `now_us` when the
        clock went back (timestamps never decrease), and other nodes judge it by their clocks.
        """
        with self._lock, self._transaction(durable=True):
            self._load_heads(" WHERE g.author = ?", (author,))  # as the file has it, now
            action = build(self._heads.get(author))
            action = check_intrinsic(action.action_bytes, action.signature, action.ts)
            if action.author != author:
                raise ValueError("build() signed with another identity")
            placed = self._place(action, IngestResult())
            if placed is not ACCEPTED:
                raise Invalid(FORKED_AUTHOR, f"our own append was {placed}, not accepted")
        return action

    def _place(self, action: Action, result: IngestResult) -> str:
        """Put one intrinsically valid action where it belongs (see the module docstring)."""
        author = action.author
        head = self._heads.get(author)
        if head is not None and action.seq <= head.seq:
            if action.hash == head.hash:
                return DUPLICATE
            self._flush()  # what the author holds at that seq may still be in the write buffer
            if self._hash_at(author, action.seq) == action.hash:
                return DUPLICATE
            if author in self._forked:
                if self._is_evidence(action.hash):
                    return DUPLICATE
                raise Invalid(FORKED_AUTHOR, "author is forked")
            first = self._action_at(author, action.seq)
            assert first is not None, "a chain is contiguous up to its head"
            self._record_fork(first, action)
            result.forks.append((first, action))
            result.forked.append(author)
            return FORK
        if author in self._forked:
            raise Invalid(FORKED_AUTHOR, "author is forked")
        if head is None:
            if action.seq != 0:
                return self._hold_pending(action)
            if self._membrane is not None:
                try:
                    check_membrane(action, self._membrane)
                except Invalid:
                    self._refuse_author(author)
                    raise
            grid = action.payload["grid"]
            if self.limits is not None:
                check_limits(action, grid, self.limits)
            self._ids[author] = self._insert_agent(action)
        elif action.seq != head.seq + 1:
            return self._hold_pending(action)
        else:
            check_link(action, head.hash, head.ts)
            grid = head.grid
        if self.limits is not None and action.type != "genesis":  # a genesis was checked above
            check_limits(action, grid, self.limits)
        row = (self._ids[author], action.seq, action.hash, action.type, grid)
        interval = action.payload.get("interval")  # orders, settlements, readings have one
        self._rows.append((*row, interval, action.action_bytes, action.signature))
        self._heads[author] = _new_head(Head, (action.seq, action.hash, action.ts, grid))
        if action.type == "warrant":  # its evidence was verified with it, before it got here
            first, second = check_warrant(action.payload, check_signatures=False)
            if first.author not in self._forked:
                self._record_fork(first, second)
                result.forked.append(first.author)
        return ACCEPTED

    def _insert_agent(self, genesis: Action) -> int:
        """A new chain's row in `agents`; its id, which the chain's actions carry."""
        fields = tuple(genesis.payload[k] for k in GENESIS_FIELDS)
        agent_id = self._db.execute(
            f"INSERT INTO agents (author, {', '.join(GENESIS_FIELDS)})"
            f" VALUES (?, {', '.join('?' * len(GENESIS_FIELDS))})",
            (genesis.author, *fields),
        ).lastrowid
        assert agent_id is not None
        return agent_id

    def _flush(self) -> None:
        """Write the buffered rows; every `HASH_MERGE` actions, extend the hash index."""
        if self._rows:
            self._db.executemany(
                "INSERT INTO actions (agent, seq, hash, type, grid, interval, action_bytes,"
                " signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                self._rows,
            )
            self._unhashed += len(self._rows)
            self._rows = []
        if self._unhashed >= HASH_MERGE:
            self._db.execute(
                "INSERT INTO hashes SELECT substr(hash, 1, 8), id FROM actions"
                " WHERE id > (SELECT upto FROM hashed) ORDER BY 1, 2"
            )
            self._db.execute("UPDATE hashed SET upto = (SELECT max(id) FROM actions)")
            self._unhashed = 0

    def _release(self, author: bytes, result: IngestResult) -> None:
        """Place the pending actions that now follow the author's head, one seq at a time."""
        while self._pending_by_author.get(author) and author not in self._forked:
            limit = self._heads[author].seq + 1
            rows = self._db.execute(
                "SELECT action_bytes, signature FROM pending WHERE author = ? AND seq <= ?"
                " ORDER BY seq, hash",
                (author, limit),
            ).fetchall()
            if not rows:
                return
            self._db.execute("DELETE FROM pending WHERE author = ? AND seq <= ?", (author, limit))
            self._count_pending_removed(author, len(rows), sum(len(b) + len(s) for b, s in rows))
            progressed = False
            for action_bytes, signature in rows:
                # Fully checked when it was held; decoding again needs no second verification.
                action = decode_action(action_bytes, signature, check_signature=False)
                try:
                    placed = self._place(action, result)
                except Invalid as exc:
                    self.rejected_by_reason[exc.reason] += 1
                    continue
                if placed is ACCEPTED:
                    result.released += 1
                    result.new.append(action)
                    progressed = True
            if not progressed:
                return

    def take_evidence(self, first: Action, second: Action) -> bool:
        """Keep a peer's checked fork evidence of a member (two actions of one author at one
        seq, as a warrant carries); True when it marks the author forked."""
        with self._lock, self._transaction(durable=False):
            if first.author in self._forked or first.author not in self._heads:
                return False
            self._record_fork(first, second)
            return True

    def _record_fork(self, first: Action, second: Action) -> None:
        """Keep both actions as evidence, mark the author forked, drop its pending actions."""
        self._db.executemany(
            "INSERT OR IGNORE INTO forks VALUES (?, ?, ?, ?, ?)",
            [(a.hash, a.author, a.seq, a.action_bytes, a.signature) for a in (first, second)],
        )
        self._db.execute("INSERT OR IGNORE INTO forked VALUES (?, ?)", (first.author, first.seq))
        self._forked.add(first.author)
        if self._pending_by_author.get(first.author):
            self._db.execute("DELETE FROM pending WHERE author = ?", (first.author,))
            self._count_pending_removed(
                first.author, self._pending_by_author[first.author],
                self._pending_bytes[first.author],
            )

    def save_charter(self, version: int, signed: bytes) -> None:
        with self._lock, self._transaction(durable=True):
            self._db.execute("INSERT OR REPLACE INTO charters VALUES (?, ?)", (version, signed))

    def set_meta(self, key: str, value: bytes) -> None:
        with self._lock, self._transaction(durable=True):
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @contextmanager
    def _transaction(self, durable: bool) -> Iterator[None]:
        """`BEGIN IMMEDIATE` ... flush ... `COMMIT`; on any exception `ROLLBACK`, reload caches.

        `durable`: `synchronous=FULL` (the WAL is fsynced at commit) rather than `NORMAL`.
        """
        db = self._db
        if self._durable != durable:
            db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._durable = durable
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:  # another connection committed: caches are old
                self._load_cache()
                self._data_version = version
            yield
            self._flush()
            db.execute("COMMIT")
            self._committed = self._heads.copy()
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._load_cache()
            raise

    def _load_cache(self) -> None:
        self._heads, self._ids, self._rows = {}, {}, []
        self._load_heads("", ())
        self._committed = self._heads.copy()
        self._forked = {a for (a,) in self._db.execute("SELECT author FROM forked")}
        rows = self._db.execute(
            "SELECT author, count(*), sum(length(action_bytes) + length(signature))"
            " FROM pending GROUP BY author"
        ).fetchall()
        self._pending_by_author = Counter({a: n for a, n, _ in rows})
        self._pending_bytes = Counter({a: b for a, _, b in rows})
        self._unhashed = self._db.execute(
            "SELECT count(*) FROM actions WHERE id > (SELECT upto FROM hashed)"
        ).fetchone()[0]

    # -- reading -----------------------------------------------------------------------------

    def _hash_at(self, author: bytes, seq: int) -> bytes | None:
        row = self._db.execute(
            "SELECT hash FROM actions WHERE agent = ? AND seq = ?", (self._ids[author], seq)
        ).fetchone()
        return row[0] if row else None

    def _action_at(self, author: bytes, seq: int) -> Action | None:
        row = self._db.execute(
            "SELECT action_bytes, signature FROM actions WHERE agent = ? AND seq = ?",
            (self._ids[author], seq),
        ).fetchone()
        return decode_action(*row, check_signature=False) if row else None

    def _is_evidence(self, hash_: bytes) -> bool:
        return bool(self._db.execute("SELECT 1 FROM forks WHERE hash = ?", (hash_,)).fetchone())
