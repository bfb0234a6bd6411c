"""A durable, ordered queue of line-protocol lines on disk (see `node.observability.influx`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: str) -> None:
    """Write `data` to `path` so that after a crash the file is either old or new, never torn."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass
class Batch:
    lines: list[str] = field(default_factory=list)
    parts: list[tuple[Path, int, int]] = field(default_factory=list)  # (segment, taken, total)


class DiskQueue:
    """Lines of line protocol in segment files `NNNNNNNNNNNN.lp`, oldest first.

    `put` makes a segment durable before it returns; `take` reads the oldest lines without
    removing them; `done` removes what a batch took (whole segments are deleted, a segment taken
    in part is rewritten with its remaining lines). One thread at a time (the exporter's).
    """

    SUFFIX = ".lp"

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob("*.tmp"):  # a put or rewrite that a crash cut short
            stale.unlink()
        self._segments = sorted(self.dir.glob(f"*{self.SUFFIX}"))
        self._next = int(self._segments[-1].stem) + 1 if self._segments else 0
        self._count = sum(len(self._read(p)) for p in self._segments)

    @staticmethod
    def _read(path: Path) -> list[str]:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line]

    def __len__(self) -> int:
        return self._count

    def segments(self) -> int:
        """How many segment files are queued."""
        return len(self._segments)

    def put(self, lines: list[str]) -> None:
        """Append lines durably (fsync'd) as a new segment."""
        if not lines:
            return
        if any("\n" in line for line in lines):
            raise ValueError("a line of line protocol can't hold a newline")
        path = self.dir / f"{self._next:012d}{self.SUFFIX}"
        write_durably(path, "\n".join(lines) + "\n")
        self._next += 1
        self._segments.append(path)
        self._count += len(lines)

    def take(self, max_lines: int) -> Batch:
        """Up to `max_lines` lines, oldest first (still queued until `done`)."""
        batch = Batch()
        for path in self._segments:
            room = max_lines - len(batch.lines)
            if room <= 0:
                break
            lines = self._read(path)
            taken = lines[:room]
            batch.lines += taken
            batch.parts.append((path, len(taken), len(lines)))
        return batch

    def done(self, batch: Batch) -> None:
        """Drop what `batch` took, once the server accepted it."""
        for path, taken, total in batch.parts:
            if taken >= total:
                path.unlink(missing_ok=True)
                self._segments.remove(path)
            else:
                rest = self._read(path)[taken:]
                write_durably(path, "\n".join(rest) + "\n")
            self._count -= taken
        _fsync_dir(self.dir)

    def all_lines(self) -> list[str]:
        """Everything queued, oldest first (for tests and `picogrid` tools)."""
        return [line for p in self._segments for line in self._read(p)]
