"""The store's SQLite layout: one file per node, every chain it holds, forks, pending actions.

- `agents`: one row per chain whose genesis we hold: a small integer id, the author's key and
  the genesis fields the market needs. A chain's head is its action of highest seq (found through
  `UNIQUE (agent, seq)`), not a stored copy that every batch would have to rewrite.
- `actions`: every valid action, in the order it arrived. `UNIQUE (agent, seq)` (`agent` is the
  author's id in `agents`) makes a second action at the same place of a chain impossible; the
  partial `actions_market` index finds the orders, settlements and readings of one grid and
  interval without a scan.
- `hashes`: the hash index, `(first 8 bytes of the hash, action id)`, filled in bulk: `hashed.upto`
  is the last action id it covers, and the few thousand actions after it are found by a scan of
  that id range. Hashes are random, so indexing each action as it came would dirty one random
  index page per action; merged thousands at a time in hash order, a page is written once per
  merge.
- `forks`: the signed actions that prove a fork (evidence); `forked`: authors marked forked.
- `pending`: intrinsically valid actions waiting for their predecessor, bounded in count, bytes
  and age (`received_us`, when it arrived by the receiver's clock; layout 5).
- `charters`: signed community charters by version; `meta`: small node settings.

Actions hold the author as an integer id rather than its 32-byte key, so the index every insert
updates is a third of the size.
"""

from __future__ import annotations

import sqlite3

LAYOUT_VERSION = 5

SCHEMA = """
CREATE TABLE agents (
    id INTEGER PRIMARY KEY,
    author BLOB NOT NULL UNIQUE,
    community TEXT NOT NULL,
    grid TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    household TEXT NOT NULL,
    capacity_wh INTEGER NOT NULL,
    max_power_w INTEGER NOT NULL
);
CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    agent INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    type TEXT NOT NULL,
    grid TEXT NOT NULL,
    interval INTEGER,
    action_bytes BLOB NOT NULL,
    signature BLOB NOT NULL,
    UNIQUE (agent, seq)
);
CREATE INDEX actions_market ON actions (grid, interval) WHERE interval IS NOT NULL;
CREATE TABLE hashes (
    prefix BLOB NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (prefix, id)
) WITHOUT ROWID;
CREATE TABLE hashed (upto INTEGER NOT NULL);
INSERT INTO hashed VALUES (0);
CREATE TABLE forks (
    hash BLOB PRIMARY KEY,
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    action_bytes BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE forked (author BLOB PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE pending (
    hash BLOB PRIMARY KEY,
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    action_bytes BLOB NOT NULL,
    signature BLOB NOT NULL,
    received_us INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX pending_by_author ON pending (author, seq);
CREATE INDEX pending_by_age ON pending (received_us);
CREATE TABLE charters (version INTEGER PRIMARY KEY, signed BLOB NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


# Each chain's head: its genesis row joined to its action of highest seq.
HEADS = """
SELECT g.id, g.author, g.grid, a.seq, a.hash, a.action_bytes FROM agents AS g
JOIN actions AS a ON a.agent = g.id AND a.seq = (SELECT max(seq) FROM actions WHERE agent = g.id)
"""


# Layout version -> the statements that bring a file of that version to the next one.
MIGRATIONS = {
    # 4 -> 5: pending rows get their arrival time, so old ones are purged; rows held by an older
    # version count as received at 0 and go at the first purge (gossip fetches them again).
    4: (
        "ALTER TABLE pending ADD COLUMN received_us INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX pending_by_age ON pending (received_us)",
    ),
}


class StoreError(Exception):
    """The file is not a PicoGrid store this code can open."""


def create_or_check(db: sqlite3.Connection) -> None:
    """Create the tables in an empty file, migrate an older layout; refuse other files.

    Runs in an IMMEDIATE transaction, so two processes opening a new file at once create it once.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        while version in MIGRATIONS and version < LAYOUT_VERSION:
            for statement in MIGRATIONS[version]:
                db.execute(statement)
            version += 1
            db.execute(f"PRAGMA user_version = {version}")
        if version != LAYOUT_VERSION:
            tables = db.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
            if version != 0 or tables:
                raise StoreError(
                    f"the store has layout version {version} with {tables} tables; this code "
                    f"reads version {LAYOUT_VERSION}: move the file aside and let the node re-sync"
                )
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
