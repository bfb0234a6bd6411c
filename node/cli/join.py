"""`picogrid join`: add a member of a remote PicoGrid as a bootstrap peer."""

from __future__ import annotations

import argparse
from pathlib import Path

from ledger.keys import load_identity
from node.cli import join_url
from node.cli.common import with_client
from node.config import load_config
from node.errors import UserError
from node.http.tls import tls_files
from node.p2p.client import PeerClient, PeerError
from node.p2p.session import RequestSigner


def register(sub: argparse._SubParsersAction) -> None:
    """Add `picogrid join` to the command line."""
    p = sub.add_parser("join", help="add a remote PicoGrid's node as a peer",
                       description="Check that URL answers and belongs to this node's community "
                                   "(same name, same admin key), then add it to config.toml.")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("url", metavar="URL")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check a remote node's community and add it as a peer in config.toml."""
    cfg = load_config(args.dir)
    url = join_url.base_url(args.url, "URL")
    if cfg.public_url is None or cfg.public_url:
        join_url.check_announced(cfg.url, url, cfg.listen)
    admin = bytes.fromhex(cfg.admin)

    async def check(client: PeerClient) -> dict:
        info = await client.json("/v1/info")
        charter = await client.charter()
        return {"info": info, "charter": charter}

    try:
        # Signed with this node's key: a closed community's node tells members who it is.
        signer = RequestSigner(load_identity(cfg.key_path), cfg.community)
        found = with_client(url, check, signer=signer, ca_file=tls_files(cfg).ca)
    except PeerError as exc:
        raise UserError(join_url.explain(url, exc)) from None
    info, charter = found["info"], found["charter"]
    if info.get("community") != cfg.community or charter.community != cfg.community:
        raise UserError(f"{url} belongs to community {info.get('community')!r}, "
                        f"not {cfg.community!r}")
    if charter.admin != admin:
        raise UserError(f"{url} uses admin key {charter.admin.hex()}, but this node pins "
                        f"{cfg.admin}: not the same community")
    if url in cfg.peers:
        print(f"{url} is already a peer")
        return 0
    cfg.peers.append(url)
    cfg.save()
    print(f"added {url} ({info.get('name')!r}, grid {info.get('grid')!r}) as a peer")
    print("restart the node (picogrid run) to start gossiping with it")
    return 0
