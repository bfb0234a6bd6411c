"""The disk watch without processes: which errors mean a full disk, the flag, the bounded report."""

from __future__ import annotations

import errno
import sqlite3
from collections import Counter

from hardware.status import ErrorLevel, StatusReporter
from node.disk import DISK_FULL, DiskWatch, is_disk_full


def test_a_full_disk_is_told_apart_from_other_errors(tmp_path):
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"), tmp_path)
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    # An I/O error is a full disk only when the disk is indeed (almost) full; this one is not.
    assert not is_disk_full(sqlite3.OperationalError("disk I/O error"), tmp_path)
    assert not is_disk_full(sqlite3.OperationalError("database is locked"), tmp_path)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"), tmp_path)
    assert not is_disk_full(ValueError("database or disk is full"), tmp_path)


def test_the_flag_rises_and_falls_and_the_report_is_bounded(tmp_path):
    now = [0.0]
    watch = DiskWatch(tmp_path, Counter(), mono=lambda: now[0])
    watch.status = StatusReporter()
    for _ in range(100):
        refused = watch.failed(sqlite3.OperationalError("database or disk is full"), "a write")
        assert refused is not None and refused.reason == DISK_FULL
    assert watch.full and watch.to_json()["refused_writes"] == 100
    assert watch.status.counts()[ErrorLevel.DISK.value] == 1  # one report, not a hundred
    now[0] = 61.0
    watch.failed(OSError(errno.ENOSPC, "No space left on device"), "a write")
    assert watch.status.counts()[ErrorLevel.DISK.value] == 2
    assert watch.failed(sqlite3.OperationalError("database is locked"), "a write") is None
    watch.wrote()
    assert not watch.full and watch.to_json()["full_for_s"] is None
