"""`picogrid export --grid OTHER` on a node that keeps its own grid only (`replicate = "grid"`).

Such a node's store holds another grid's geneses, not its chains. The export asks the running
node for them through its JSON API (`GET /v1/agents/{id}/chain`, which fetches them from that
grid's nodes: node.p2p.ondemand), verifies them again into a temporary store, and exports from
there with the same functions as ever. The temporary store is deleted when the export ends.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ledger.chain import now_us
from ledger.keys import KeyFileError, load_identity
from ledger.limits import rules_from
from ledger.precheck import precheck
from ledger.store import Store
from node.audit.remote import fetch_served_chain
from node.config import NodeConfig
from node.errors import UserError
from node.http.tls import tls_files
from node.p2p.client import PATIENCE, PeerClient, PeerError
from node.p2p.session import RequestSigner, open_session

TIMEOUT_S = 20.0  # per request: the node may take up to 8 s to fetch the grid first


def needs_fetch(cfg: NodeConfig, grid: str) -> bool:
    """Whether this data directory holds `grid` as geneses only."""
    return cfg.replicate == "grid" and grid != cfg.grid


def local_url(cfg: NodeConfig) -> str:
    """Where the node of `cfg` answers on this machine."""
    host, port = cfg.listen_host_port()
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    scheme = "https" if tls_files(cfg).cert is not None else "http"
    return f"{scheme}://{host}:{port}"


@contextmanager
def fetched_store(view, grid: str, url: str | None) -> Iterator[Store]:
    """A temporary store holding `grid`'s chains as the running node serves them (fetched from
    that grid on demand), each action verified again; UserError when they cannot be had."""
    cfg: NodeConfig = view.cfg
    url = url or local_url(cfg)
    authors = [r["author"] for r in view.store.agents() if r["grid"] == grid]
    chains = asyncio.run(_chains(cfg, url, grid, authors)) if authors else {}
    charter = view.charter
    with tempfile.TemporaryDirectory(prefix="picogrid-export-") as tmp:
        store = Store(Path(tmp) / "grid.sqlite3", charter.membrane() if charter else None,
                      limits=rules_from(lambda: view.charters))
        try:
            now = now_us()
            for items in chains.values():
                store.ingest(items, now, prechecked=precheck(items, now))
            for author in authors:  # the forks this node knows: those orders never count
                pair = view.store.fork_evidence(author)[:2]
                if len(pair) == 2 and pair[0].seq == pair[1].seq:
                    store.take_evidence(*pair)
            yield store
        finally:
            store.close()


async def _chains(cfg: NodeConfig, url: str, grid: str,
                  authors: list[bytes]) -> dict[bytes, list[tuple[bytes, bytes]]]:
    try:
        signer = RequestSigner(load_identity(cfg.key_path), cfg.community)
    except KeyFileError:
        signer = None  # an open community's node answers anyone
    try:
        async with open_session(signer, tls_files(cfg).ca) as session:
            client = PeerClient(session, url, timeout=TIMEOUT_S, patience=PATIENCE)
            return {a: await fetch_served_chain(client, a) for a in authors}
    except PeerError as exc:
        if exc.unreachable:
            raise UserError(
                f"this node keeps only grid {cfg.grid!r} whole (replicate = \"grid\"): grid "
                f"{grid!r} is fetched from that grid's nodes by the running node, and no node "
                f"answers at {url} ({exc}). Start it (picogrid run), or pass --url") from None
        raise UserError(f"grid {grid!r} could not be fetched: {exc}") from None

