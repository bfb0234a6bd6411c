"""`picogrid run`: run the node until SIGINT or SIGTERM, then stop cleanly."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from ledger.keys import KeyFileError
from node.cli.dirlock import DirLock
from node.config import load_config, parse_host_port
from node.errors import UserError
from node.http.connections import throttle_logs

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `picogrid run` to the command line."""
    p = sub.add_parser("run", help="run this agent's node until Ctrl-C",
                       description="Run the node: serve gossip and the audit API, gossip with "
                                   "peers, trade every interval. Stops cleanly on SIGINT/SIGTERM.")
    p.add_argument("--dir", required=True, type=Path, help="data directory made by `init`")
    p.add_argument("--listen", metavar="HOST:PORT", help="override the configured address")
    p.add_argument("--peer", metavar="URL", action="append", default=[],
                   help="an extra bootstrap peer (repeatable)")
    p.add_argument("--round-ms", type=int, help="anti-entropy round length (default 1000)")
    p.add_argument("--rate-limit", type=int, metavar="N",
                   help="requests per second one client address may make (default 200)")
    p.add_argument("--hardware", action="store_true", help="drive the real LEDs and sensors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the node of a data directory until SIGINT or SIGTERM."""
    cfg = load_config(args.dir)
    if args.listen:
        parse_host_port(args.listen)
        cfg.listen = args.listen
    cfg.peers += [u.rstrip("/") for u in args.peer if u.rstrip("/") not in cfg.peers]
    if args.round_ms is not None:
        if args.round_ms < 50:
            raise UserError("--round-ms must be at least 50")
        cfg.round_ms = args.round_ms
    if args.rate_limit is not None:
        if args.rate_limit < 1:
            raise UserError("--rate-limit must be at least 1")
        cfg.rate_limit = args.rate_limit
    if args.hardware:
        cfg.hardware = True
    with DirLock(args.dir):  # before the store opens: one node per data directory
        return asyncio.run(serve(cfg))


async def serve(cfg) -> int:
    """Start the node, wait for a stop, stop it; 1 after a critical error."""
    # Deliberately here: only `run` needs the whole node (aiohttp, the server, every service);
    # every other command starts without importing it.
    from node.node import Node

    try:
        node = Node(cfg)
    except KeyFileError as exc:
        raise UserError(str(exc)) from None
    loop = asyncio.get_running_loop()
    node.managed = True  # we wait on node.stop_event below
    throttle_logs()  # this process's warnings: one line per kind per minute
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, node.request_stop)
    try:
        await node.start()
    except UserError:  # a [tls] table that cannot serve
        await node.stop()
        raise
    except OSError as exc:
        await node.stop()
        raise UserError(f"cannot listen on {cfg.listen}: {exc.strerror or exc}") from None
    try:
        await node.stop_event.wait()
    finally:
        log.info("stopping")
        await node.stop()
    if node.stop_reason:  # a critical error: exit non-zero so systemd restarts the node
        log.critical("stopped on a critical error: %s", node.stop_reason)
        return 1
    return 0
