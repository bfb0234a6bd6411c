"""Small helpers the sub-commands share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ledger.keys import parse_agent_hex
from node.errors import UserError
from node.p2p.client import PATIENCE, PeerClient
from node.p2p.session import RequestSigner, open_session


def agent_hex_arg(text: str) -> bytes:
    """An agent id from the command line; UserError when it is not one."""
    try:
        return parse_agent_hex(text.strip().lower())
    except ValueError as exc:
        raise UserError(str(exc)) from None


def with_client(url: str, fn: Callable[[PeerClient], Awaitable[Any]], timeout: float = 5.0,
                signer: RequestSigner | None = None, ca_file: str | Path | None = None) -> Any:
    """Run `fn(client)` against `url` with a fresh session (signing with `signer`, if any)."""
    if not url.startswith(("http://", "https://")):
        raise UserError(f"expected an http:// or https:// URL, got {url!r}")

    async def main() -> Any:
        async with open_session(signer, ca_file) as session:
            return await fn(PeerClient(session, url, timeout=timeout, patience=PATIENCE))

    return asyncio.run(main())


def table(rows: list[list[Any]], header: list[str]) -> str:
    """Rows as a plain text table under `header`."""
    cells = [header] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
