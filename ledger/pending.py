"""Pending actions within bounds: the part of `Store` that holds actions come too early.

An action above its author's head waits for its predecessor, bounded in count, bytes and age
(docs/protocol.md, "Bounds"). A *member* (whose genesis the store holds) may have
`MAX_PENDING_PER_AUTHOR` actions waiting; a *stranger* (no genesis held yet: possibly a member
whose genesis has not arrived, possibly anyone with a throwaway key) `MAX_PENDING_PER_STRANGER`,
and all strangers together `MAX_STRANGER_PENDING_BYTES`, oldest evicted first. Everything waits
at most `MAX_PENDING_AGE_US`, in `MAX_PENDING_BYTES` in total. A member's action that does not
fit evicts strangers' first; if it still does not fit it is refused `pending-full`, which tells
the sender to keep it and send it again: never answered `pending` and then dropped. An author
whose genesis the membrane refused cannot become a member: its actions are refused, not held.
"""

from __future__ import annotations

import sqlite3
from collections import Counter

from ledger.actions import Action
from ledger.errors import PENDING_FULL, WRONG_COMMUNITY, Invalid
from ledger.queries import Head

MAX_PENDING_PER_AUTHOR = 1000  # a member's actions waiting for their predecessor
MAX_PENDING_PER_STRANGER = 64  # an author whose genesis we do not hold
MAX_STRANGER_PENDING_BYTES = 4 * 2**20  # all strangers together
MAX_PENDING_BYTES = 64 * 2**20  # everything pending
MAX_PENDING_AGE_US = 3600 * 1_000_000  # then purged; gossip fetches it again in chain order
PURGE_EVERY_US = 60 * 1_000_000

PENDING = "pending"  # what `_hold_pending` answers when it kept the action


class PendingBounds:
    """The pending-table half of `Store`; runs inside the store's transactions and lock."""

    _db: sqlite3.Connection
    _heads: dict[bytes, Head]
    _pending_by_author: Counter[bytes]
    _pending_bytes: Counter[bytes]
    _refused: set[bytes]
    _purged_us: int
    _now_us: int

    @property
    def pending_bytes(self) -> int:
        """Bytes of the actions held as pending (their action bytes and signatures)."""
        return sum(self._pending_bytes.values())

    def _hold_pending(self, action: Action) -> str:
        """Keep an action that came before its predecessor, within the bounds, or refuse it."""
        author = action.author
        if author in self._refused:
            raise Invalid(WRONG_COMMUNITY, "its author's genesis was refused")
        size = len(action.action_bytes) + len(action.signature)
        member = author in self._heads
        if member:
            if self._pending_by_author[author] >= MAX_PENDING_PER_AUTHOR:
                raise Invalid(PENDING_FULL, "this author's pending actions are at their bound")
        else:
            if self._pending_by_author[author] >= MAX_PENDING_PER_STRANGER:
                raise Invalid(PENDING_FULL, "an author without genesis here: bound reached")
            if self._stranger_bytes() + size > MAX_STRANGER_PENDING_BYTES:
                self._evict_strangers(self._stranger_bytes() + size - MAX_STRANGER_PENDING_BYTES)
        if self.pending_bytes + size > MAX_PENDING_BYTES:
            self._evict_strangers(self.pending_bytes + size - MAX_PENDING_BYTES)
            if self.pending_bytes + size > MAX_PENDING_BYTES:
                raise Invalid(PENDING_FULL, "pending space is full of members' actions")
        added = self._db.execute(
            "INSERT OR IGNORE INTO pending VALUES (?, ?, ?, ?, ?, ?)",
            (action.hash, author, action.seq, action.action_bytes, action.signature,
             self._now_us),
        ).rowcount
        if added:
            self._pending_by_author[author] += 1
            self._pending_bytes[author] += size
        return PENDING

    def _stranger_bytes(self) -> int:
        heads = self._heads
        return sum(n for a, n in self._pending_bytes.items() if a not in heads)

    def _evict_strangers(self, need: int) -> None:
        """Delete strangers' pending actions, oldest first, until `need` bytes are free."""
        while need > 0:
            rows = self._db.execute(
                "SELECT p.hash, p.author, length(p.action_bytes) + length(p.signature)"
                " FROM pending AS p WHERE NOT EXISTS"
                " (SELECT 1 FROM agents AS g WHERE g.author = p.author)"
                " ORDER BY p.received_us, p.hash LIMIT 256"
            ).fetchall()
            if not rows:
                return
            for hash_, author, size in rows:
                self._db.execute("DELETE FROM pending WHERE hash = ?", (hash_,))
                self._count_pending_removed(author, 1, size)
                need -= size
                if need <= 0:
                    return

    def _purge_old(self, now_us: int) -> None:
        """Forget pending actions older than `MAX_PENDING_AGE_US`."""
        self._purged_us = now_us
        cutoff = now_us - MAX_PENDING_AGE_US
        rows = self._db.execute(
            "SELECT author, count(*), sum(length(action_bytes) + length(signature))"
            " FROM pending WHERE received_us < ? GROUP BY author",
            (cutoff,),
        ).fetchall()
        if rows:
            self._db.execute("DELETE FROM pending WHERE received_us < ?", (cutoff,))
            for author, n, size in rows:
                self._count_pending_removed(author, n, size)

    def _refuse_author(self, author: bytes) -> None:
        """A refused genesis: its author cannot become a member; drop what it has pending."""
        self._refused.add(author)
        if self._pending_by_author.get(author):
            self._db.execute("DELETE FROM pending WHERE author = ?", (author,))
            self._count_pending_removed(author, self._pending_by_author[author],
                                        self._pending_bytes[author])

    def _count_pending_removed(self, author: bytes, n: int, size: int) -> None:
        self._pending_by_author[author] -= n
        self._pending_bytes[author] -= size
        if self._pending_by_author[author] <= 0:
            del self._pending_by_author[author]
            self._pending_bytes.pop(author, None)

