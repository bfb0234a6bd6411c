"""A verifier process of `node.verifiers`: signatures in, one verdict byte per signature out.

It imports as little as it can, since a node starts one per core when a large batch arrives:
the node runs this file as a script (not `-m`, which would import the `node` package) under
`python -S`, with its own `sys.path` in PYTHONPATH, so the child skips the site packages' start
and imports only msgpack and `ledger.signatures`. It runs in a process group of its own, so a
Ctrl-C in the terminal reaches the node, which closes it.

It talks on its stdin and stdout in frames: a 4-byte big-endian length, then the body. The node
sends a msgpack array of `[action_bytes, signature]` pairs; the child answers
`ledger.signatures.signature_verdicts` of them. It exits at the end of its stdin (the node closed
it, or the node is gone) or after IDLE_S without a frame.
"""

from __future__ import annotations

import os
import select

import msgpack

from ledger.signatures import signature_verdicts

HEADER = 4
READY = b"R"  # the child's first byte: imported and waiting
IDLE_S = 60.0  # a child with nothing to do for this long exits; the next big batch starts one


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts, left = [], size
    while left:
        part = os.read(fd, min(left, 1 << 20))
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def serve(fd_in: int = 0, fd_out: int = 1, idle_s: float = IDLE_S) -> None:
    """Answer frames until the end of `fd_in` or `idle_s` without one."""
    _write_all(fd_out, READY)
    while select.select([fd_in], [], [], idle_s)[0]:
        header = _read_exactly(fd_in, HEADER)
        if header is None:
            return
        body = _read_exactly(fd_in, int.from_bytes(header, "big"))
        if body is None:
            return
        verdicts = signature_verdicts(msgpack.unpackb(body, use_list=False))
        _write_all(fd_out, len(verdicts).to_bytes(HEADER, "big") + verdicts)


if __name__ == "__main__":
    serve()
