"""`picogrid export`: trade history and bills from a node's own store, as CSV or JSON.

    picogrid export --dir home1 --format csv > trades.csv
    picogrid export --dir home1 --format json --from 0 --to 23 --output day1.json

No running node is needed (a running one is fine: SQLite lets us read beside it). The figures
are the ones the node's API serves (`/v1/trades`, `/v1/agents/{id}/bill`): they are computed
from the signed actions in the store with the charter's rules, by the same functions.

CSV: one row per trade, with its status (confirmed, disputed or pending). JSON: every trade once,
and for each agent of the grid its own trades and its bill over the range. Energy in Wh, money
in milli-cents. Without --from/--to, every interval the store holds for the grid.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from ledger.charter import Charter, CharterError, parse_charter
from ledger.keys import KeyFileError, load_identity
from ledger.store import Store
from market.intervals import interval_start_us
from market.participants import labels
from node.cli.common import agent_hex_arg
from node.cli.export_fetch import fetched_store, needs_fetch
from node.config import NodeConfig, load_config
from node.errors import UserError
from node.trading.interval_view import interval_state
from node.trading.reports import BillTotals, trade_json

CSV_COLUMNS = [
    "interval",
    "start_utc",
    "seller_name",
    "buyer_name",
    "energy_wh",
    "price",
    "status",
    "seller",
    "buyer",
    "offer",
    "bid",
]
PROGRESS_AFTER = 48  # intervals: longer exports say how far they are on stderr
PROGRESS_EVERY_S = 2.0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `picogrid export` to the command line."""
    p = sub.add_parser(
        "export",
        help="trade history and bills as CSV or JSON",
        description="Export the trades (with their status) and the bills of a "
        "node's grid from its own store; no running node needed.",
    )
    p.add_argument("--dir", required=True, type=Path, help="the node's data directory")
    p.add_argument(
        "--format",
        choices=("csv", "json"),
        default="csv",
        help="csv: one row per trade; json: trades and bills per agent (default csv)",
    )
    p.add_argument(
        "--from",
        dest="frm",
        type=int,
        metavar="K",
        help="first interval (default: the first one in the store)",
    )
    p.add_argument(
        "--to", type=int, metavar="K", help="last interval (default: the last one in the store)"
    )
    p.add_argument("--agent", metavar="HEX", help="only this agent's trades and bill")
    p.add_argument("--grid", help="another grid of the community (default: the node's own); "
                                  "a node that keeps its own grid only (replicate = \"grid\") "
                                  "must be running: it fetches that grid's chains")
    p.add_argument("--url", help="with --grid of another grid: the running node's URL "
                                 "(default: its listen address)")
    p.add_argument("--output", type=Path, metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=run)


@dataclass
class PublicIdentity:
    """An agent id without its key: all a read-only view needs."""

    agent: bytes

    @property
    def agent_hex(self) -> str:
        """The agent id in hex."""
        return self.agent.hex()


@dataclass
class StoreView:
    """The read-only part of a Node that `node.trading.interval_view` and `node.http.market_routes` use."""

    store: Store
    charters: list[Charter]
    identity: PublicIdentity | None
    cfg: NodeConfig

    @property
    def charter(self) -> Charter | None:
        """The newest charter version, if any."""
        return max(self.charters, key=lambda c: c.version) if self.charters else None


def open_view(cfg: NodeConfig) -> StoreView:
    """The store and charters of a data directory, read without the node."""
    if not cfg.store_path.exists():
        raise UserError(f"{cfg.dir} holds no store ({cfg.store_path.name} is missing)")
    store = Store(cfg.store_path)
    admin = bytes.fromhex(cfg.admin)
    charters = []
    for signed in store.charters():
        try:
            charters.append(parse_charter(signed, admin))
        except CharterError as exc:
            print(f"picogrid export: a stored charter is refused: {exc}", file=sys.stderr)
    try:  # only the public half is kept: an export signs nothing
        me: PublicIdentity | None = PublicIdentity(load_identity(cfg.key_path).agent)
    except KeyFileError:
        me = None
    return StoreView(store, charters, me, cfg)


class Progress:
    def __init__(self, total: int, out: TextIO = sys.stderr) -> None:
        self.total, self.out = total, out
        self.enabled = total > PROGRESS_AFTER
        self.last = -float("inf")  # the first step speaks at once

    def step(self, done: int, k: int) -> None:
        """Print progress, at most every PROGRESS_EVERY_S."""
        if self.enabled and time.monotonic() - self.last >= PROGRESS_EVERY_S:
            self.last = time.monotonic()
            print(f"export: interval {k} ({done}/{self.total})", file=self.out, flush=True)


def collect(
    view: StoreView, grid: str, frm: int, to: int, agent: bytes | None
) -> tuple[list[dict], dict[bytes, dict], dict[bytes, dict]]:
    """Every trade of the range (filtered to `agent`), and each agent's bill in the format of
    `node.trading.reports.bill_json`, computing each interval once."""
    trades: list[dict] = []
    sums = BillTotals()
    agents: dict[bytes, dict] = {}
    progress = Progress(to - frm + 1)
    for done, k in enumerate(range(frm, to + 1), 1):
        state = interval_state(view.store, view.charters, grid, k)
        names = labels(state.participants)
        for a, p in state.participants.items():
            agents[a] = {"agent": a.hex(), "name": p.name, "role": p.role, "household": p.household}
        start = datetime.fromtimestamp(interval_start_us(view.charters, k) / 1e6, UTC)
        for s in state.statuses:
            if agent is None or agent in (s.trade.seller, s.trade.buyer):
                row = trade_json(s, names, k)
                row["start_utc"] = start.isoformat().replace("+00:00", "Z")
                trades.append(row)
        sums.add_interval(view.store, grid, k, state, only=agent)
        progress.step(done, k)
    bill_of = {a: sums.bill_json(a, grid, frm, to) for a in (agents if agent is None else [agent])}
    return trades, agents, bill_of


def to_csv(trades: list[dict]) -> str:
    """The trades as CSV, one row each."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(trades)
    return out.getvalue()


def to_json(
    view: StoreView,
    grid: str,
    frm: int,
    to: int,
    trades: list[dict],
    agents: dict[bytes, dict],
    bills: dict[bytes, dict],
) -> str:
    """Every trade once and each agent's trades and bill, as JSON text."""
    per_agent = []
    for a in sorted(bills):
        info = agents.get(a, {"agent": a.hex(), "name": None, "role": None, "household": None})
        mine = [t for t in trades if a.hex() in (t["seller"], t["buyer"])]
        per_agent.append({**info, "trades": mine, "bill": bills[a]})
    doc = {
        "community": view.cfg.community,
        "grid": grid,
        "from": frm,
        "to": to,
        "units": "energy in Wh, money in milli-cents",
        "trades": trades,
        "agents": per_agent,
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def write_output(text: str, path: Path | None) -> None:
    """Write `text` to `path` atomically, or to stdout."""
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    """Export the trades and bills of a range of intervals as CSV or JSON."""
    agent = agent_hex_arg(args.agent) if args.agent else None
    cfg = load_config(args.dir)
    view = open_view(cfg)
    try:
        if not view.charters:
            raise UserError(f"{args.dir}: the store holds no charter yet; nothing to export")
        grid = args.grid or cfg.grid
        if agent is not None and view.store.agent(agent) is None:
            raise UserError(f"no agent {agent.hex()} in this store")
        if needs_fetch(cfg, grid):  # held here as geneses only: the running node fetches it
            with fetched_store(view, grid, args.url) as store:
                return export(replace(view, store=store), args, grid, agent)
        return export(view, args, grid, agent)
    finally:
        view.store.close()


def export(view: StoreView, args: argparse.Namespace, grid: str, agent: bytes | None) -> int:
    """Write the export of `grid` from `view`'s store."""
    held = view.store.intervals(grid)
    frm = args.frm if args.frm is not None else (held[0] if held else 0)
    to = args.to if args.to is not None else (held[-1] if held else frm - 1)
    if args.frm is not None and args.to is not None and frm > to:
        raise UserError("--from is after --to")
    trades, agents, bills = collect(view, grid, frm, to, agent)
    if args.format == "csv":
        text = to_csv(trades)
    else:
        text = to_json(view, grid, frm, to, trades, agents, bills)
    write_output(text, args.output)
    where = f" to {args.output}" if args.output else ""
    print(
        f"exported {len(trades)} trade(s) and {len(bills)} bill(s) of grid {grid!r}, "
        f"intervals {frm}..{to}{where}",
        file=sys.stderr,
    )
    return 0
