"""One node per data directory: an exclusive `flock` on `DIR/node.lock`, held while it runs.

Two nodes on one directory would both sign as the same agent: two bids, two settlements and two
readings per interval, a fork of their own chain. The lock is taken before the store is opened
and released by the kernel when the process exits, however it exits (no stale lock after a crash
or a power cut).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from node.errors import UserError

LOCK_NAME = "node.lock"


class DirLock:
    """`with DirLock(dir):` holds the directory's lock, or raises `UserError` if another has it."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting; a clear `UserError` names the holder when it is taken."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UserError(
                f"{self.path.parent} is already in use by a running node (pid {holder}); "
                "one data directory runs one node: stop the other one first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Give the lock back (the kernel also does when the process ends)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
