"""A full disk, named as such: the flag in /v1/info and /metrics, the status LED, a bounded log.

SQLite says "database or disk is full" (SQLITE_FULL) when a write finds no space; a file write
raises OSError with errno ENOSPC; and when SQLite cannot grow its shared-memory index it says
"disk I/O error", which counts as a full disk when the data directory indeed has almost no space
left. `DiskWatch.failed(exc)` tells such an error apart from every other one; the node then
answers peers' pushes with 503 `{"error": "disk-full", ...}` (they keep the actions and send them
again later), refuses to sign, and keeps the own actions it could not sign for when space returns.
The first successful write clears the flag.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from collections import Counter
from pathlib import Path

from hardware.status import ErrorLevel, StatusReporter
from node.devices.hardware import Throttle
from node.errors import NotSigned

log = logging.getLogger(__name__)

DISK_FULL = "disk-full"  # the NotSigned reason and the 503's error code
REPORT_EVERY_S = 60.0
LOW_SPACE_BYTES = 1 << 20  # "disk I/O error" with less than this free is a full disk


def free_bytes(path: Path) -> int | None:
    """Bytes free for us in the file system holding `path` (None when it cannot be told)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def is_disk_full(exc: BaseException, data_dir: Path) -> bool:
    """Whether `exc` means that the disk holding `data_dir` is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        text = str(exc).lower()
        if "database or disk is full" in text:
            return True
        if "disk i/o error" in text:
            free = free_bytes(data_dir)
            return free is not None and free < LOW_SPACE_BYTES
    return False


class DiskWatch:
    """Whether the data directory's disk is full, since when, and how many writes it refused."""

    def __init__(self, data_dir: Path, metrics: Counter[str], mono=time.monotonic) -> None:
        self.data_dir = Path(data_dir)
        self.metrics = metrics
        self.mono = mono
        self.status: StatusReporter | None = None  # set once the hardware has started
        self.full = False
        self.since = 0.0
        self.last_error = ""
        self._throttle = Throttle(REPORT_EVERY_S, mono)

    def failed(self, exc: BaseException, what: str) -> NotSigned | None:
        """If `exc` is a full disk: flag, count, report (bounded), and the error to raise."""
        if not is_disk_full(exc, self.data_dir):
            return None
        self.metrics["disk_full_errors"] += 1
        self.last_error = f"{what}: {exc}"[:200]
        if not self.full:
            self.full, self.since = True, self.mono()
        ok, held = self._throttle.allow()
        if ok:
            free = free_bytes(self.data_dir)
            shown = "unknown" if free is None else f"{free} bytes"
            more = f"; {held} more write(s) refused since the last report" if held else ""
            message = (f"disk full under {self.data_dir} (free: {shown}): {what} failed: {exc}"
                       f"{more}; free some space, the node carries on by itself")
            if self.status is not None:
                self.status.report(ErrorLevel.DISK, message)
            else:
                log.error("disk error: %s", message)
        return NotSigned(DISK_FULL, f"disk full: {what} not stored")

    def wrote(self) -> None:
        """A write succeeded: the disk has space again."""
        if self.full:
            self.full = False
            log.warning("disk: writes succeed again after %.0f s (%d refused)",
                        self.mono() - self.since, self.metrics["disk_full_errors"])

    def to_json(self) -> dict:
        """The disk as /v1/info shows it."""
        return {
            "full": self.full,
            "full_for_s": round(self.mono() - self.since, 1) if self.full else None,
            "free_bytes": free_bytes(self.data_dir),
            "refused_writes": self.metrics["disk_full_errors"],
            "last_error": self.last_error or None,
        }
