"""`GET /metrics`: the node's state in the Prometheus text format (version 0.0.4).

    curl -s http://127.0.0.1:8700/metrics

Counters end in `_total`; everything else is a gauge read when scraped. Every rejection reason
code of PROTOCOL section 2 and every error level is always listed, 0 included, so a dashboard
can graph them from the first scrape. The list, with what each one means, is in
docs/observability.md.

Gossip bytes are the bodies of `/v1/gossip/*` requests and answers, both as server (counted in
`node.http.server`) and as client (counted in `node.p2p.client` for the node's own HTTP
session, which `node.http.routes.build_app` registers).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from aiohttp import web

from hardware.status import ErrorLevel
from ledger.errors import REASONS
from node.http.context import CONTEXT, HttpContext
from node.http.server import in_thread
from node.observability.exposition import Exposition
from node.observability.health_metrics import clock_and_disk
from node.trading.interval_view import interval_state
from node.trading.settler import ABSTAIN_KINDS
from node.version import VERSION

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TRADE_WINDOW = 24  # intervals up to the latest one this node settled
STATUSES = ("confirmed", "disputed", "pending")


def trade_counts(node: HttpContext) -> tuple[int | None, dict[str, int]]:
    """Trades by status over the TRADE_WINDOW intervals up to the latest one we settled."""
    counts = dict.fromkeys(STATUSES, 0)
    agent = node.services.agent
    last = agent.last_settled if agent is not None else None
    if last is None or not node.charters:
        return None, counts
    for k in range(last - TRADE_WINDOW + 1, last + 1):
        state = interval_state(node.store, node.charters, node.cfg.grid, k)
        for s in state.statuses:
            counts[s.status] = counts.get(s.status, 0) + 1
    return last, counts


def store_figures(node: HttpContext) -> dict[str, Any]:
    """What the store says (read on a worker thread: these are SQLite queries)."""
    head = node.store.head(node.identity.agent)
    last, trades = trade_counts(node)
    return {
        "stored": node.store.count(),
        "pending": node.store.pending_count(),
        "forked": len(node.store.forked_authors()),
        "chain_length": head.seq + 1 if head else 0,
        "last_settled": last,
        "trades": trades,
    }


def _identity(out: Exposition, node: HttpContext) -> None:
    """This node, its uptime, its charter."""
    charter = node.charter
    out.family(
        "picogrid_info",
        "gauge",
        "This node: constant 1 with its identity as labels.",
        [
            (
                {
                    "name": node.cfg.name,
                    "agent": node.identity.agent_hex,
                    "grid": node.cfg.grid,
                    "community": node.cfg.community,
                    "role": node.cfg.role,
                    "version": VERSION,
                },
                1,
            )
        ],
    )
    out.one(
        "picogrid_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        round(node.uptime(), 3),
    )
    out.one(
        "picogrid_charter_version",
        "gauge",
        "Version of the charter in force (0: none).",
        charter.version if charter else 0,
    )


def _store(out: Exposition, m: Counter[str], figures: dict[str, Any]) -> None:
    """What the store holds and what it took in or refused."""
    out.one("picogrid_actions_stored", "gauge", "Valid actions in the store.", figures["stored"])
    out.one(
        "picogrid_chain_length",
        "gauge",
        "Actions on this agent's own chain.",
        figures["chain_length"],
    )
    out.one(
        "picogrid_own_actions_total",
        "counter",
        "Actions this node signed since it started.",
        m["own_actions"],
    )
    out.one(
        "picogrid_actions_received_total",
        "counter",
        "Actions received from peers (pushed or pulled), valid or not.",
        m["actions_received"],
    )
    out.one(
        "picogrid_actions_accepted_total",
        "counter",
        "Received actions that were new and valid.",
        m["actions_accepted"],
    )
    out.one(
        "picogrid_actions_duplicate_total",
        "counter",
        "Received actions already held.",
        m["actions_duplicate"],
    )
    out.family(
        "picogrid_actions_rejected_total",
        "counter",
        "Received actions rejected, by PROTOCOL reason code.",
        [({"reason": r}, m[f"rejected:{r}"]) for r in REASONS],
    )
    out.one(
        "picogrid_pending_actions",
        "gauge",
        "Actions held until the actions before them arrive.",
        figures["pending"],
    )
    out.one(
        "picogrid_forked_agents", "gauge", "Agents proven to have signed a fork.", figures["forked"]
    )
    out.one(
        "picogrid_forks_detected_total", "counter", "Forks this node detected.", m["forks_detected"]
    )


def _peers(out: Exposition, node: HttpContext) -> None:
    """Each peer's state at the last contact."""
    now = time.monotonic()
    peers = node.peers.all()
    out.one("picogrid_peers", "gauge", "Peers known by URL.", len(peers))
    out.one(
        "picogrid_peers_live",
        "gauge",
        "Peers that answered their last round.",
        sum(1 for p in peers if p.failures == 0 and p.last_ok > 0),
    )
    out.family(
        "picogrid_peer_lag",
        "gauge",
        "Actions the peer held that we lacked at the last comparison.",
        [({"peer": p.url}, p.lag) for p in peers if p.lag is not None],
    )
    out.family(
        "picogrid_peer_behind",
        "gauge",
        "Actions we held that the peer lacked at the last comparison.",
        [({"peer": p.url}, p.behind) for p in peers if p.behind is not None],
    )
    out.family(
        "picogrid_peer_failures",
        "gauge",
        "Consecutive failed contacts with the peer.",
        [({"peer": p.url}, p.failures) for p in peers],
    )
    out.family(
        "picogrid_peer_seconds_since_ok",
        "gauge",
        "Seconds since the peer last answered.",
        [({"peer": p.url}, round(now - p.last_ok, 3)) for p in peers if p.last_ok],
    )


def _gossip(out: Exposition, m: Counter[str], node: HttpContext) -> None:
    """Bytes, rounds and actions moved by gossip."""
    out.family(
        "picogrid_gossip_bytes_total",
        "counter",
        "Bytes of gossip bodies (/v1/gossip/*), as server and as client.",
        [
            ({"direction": "in"}, m["gossip_bytes_in"]),
            ({"direction": "out"}, m["gossip_bytes_out"]),
        ],
    )
    out.one(
        "picogrid_gossip_rounds_total",
        "counter",
        "Anti-entropy rounds completed.",
        m["gossip_rounds"],
    )
    out.family(
        "picogrid_gossip_actions_total",
        "counter",
        "Actions moved by gossip.",
        [
            ({"direction": "pushed"}, m["gossip_pushed"]),
            ({"direction": "pulled"}, m["gossip_pulled"]),
        ],
    )
    out.one(
        "picogrid_gossip_last_round_seconds",
        "gauge",
        "Duration of the last round.",
        round(node.gossip.last_round_s, 6),
    )


def _market(out: Exposition, m: Counter[str], figures: dict[str, Any]) -> None:
    """What this agent signed, and the trades of its latest intervals."""
    out.one(
        "picogrid_orders_signed_total",
        "counter",
        "Intervals this agent signed orders for.",
        m["orders_signed"],
    )
    out.one(
        "picogrid_intervals_settled_total",
        "counter",
        "Intervals this agent signed a settlement for since the node started.",
        m["intervals_settled"],
    )
    for name, key, what in (
        ("views_signed", "views_signed", "Intervals this agent signed its view of (protocol 2)."),
        ("settlement_revisions", "settlement_revisions",
         "Revised settlements this agent signed because late views changed the book."),
    ):
        out.one(f"picogrid_{name}_total", "counter", what, m[key])
    out.family(
        "picogrid_settlements_abstained_total",
        "counter",
        "Intervals this agent signed orders for but could not settle, by reason.",
        [({"reason": r}, m[f"abstain:{r}"]) for r in ABSTAIN_KINDS],
    )
    out.one(
        "picogrid_readings_signed_total",
        "counter",
        "Meter readings this agent signed.",
        m["readings_signed"],
    )
    last = figures["last_settled"]
    if last is not None:
        out.one(
            "picogrid_last_settled_interval",
            "gauge",
            "The latest interval this agent settled.",
            last,
        )
    trades = figures["trades"]
    window = f"the {TRADE_WINDOW} intervals up to the latest one this agent settled"
    out.one(
        "picogrid_trades_disputed", "gauge", f"Disputed trades in {window}.", trades["disputed"]
    )
    out.family(
        "picogrid_trades",
        "gauge",
        f"Trades by status in {window}.",
        [({"status": s}, trades.get(s, 0)) for s in STATUSES],
    )


def _errors(out: Exposition, m: Counter[str], node: HttpContext) -> None:
    """Errors by the kit's levels (the status reporter) and HTTP errors."""
    status = node.services.status
    counts = status.counts() if status is not None else {}
    out.family(
        "picogrid_meter_errors_total",
        "counter",
        "Errors reported through the status reporter (status LED), by level.",
        [({"level": lv.value}, counts.get(lv.value, 0)) for lv in ErrorLevel],
    )
    out.family(
        "picogrid_http_errors_total",
        "counter",
        "HTTP requests answered with an error.",
        [({"code": c}, m[f"http_{c}"]) for c in ("400", "408", "413", "429", "503")],
    )
    out.one(
        "picogrid_http_connections_closed_for_room_total",
        "counter",
        "Waiting connections (half-open, idle) closed to stay under the open-file limit.",
        m["http_connections_closed_for_room"],
    )
    out.family(
        "picogrid_peer_proofs_total",
        "counter",
        "Challenges to URLs learned from agent infos, by outcome (protocol.md, Peer proofs).",
        [({"outcome": o}, m[f"peer_proofs_{o}"]) for o in ("ok", "failed")],
    )


def _influx(out: Exposition, node: HttpContext) -> None:
    """The InfluxDB exporter's queue and results, when it runs."""
    influx = node.services.influx
    if influx is not None:
        stats = influx.stats()
        out.one(
            "picogrid_influx_queued_points",
            "gauge",
            "Points on disk waiting for InfluxDB.",
            stats["queued_points"],
        )
        out.one(
            "picogrid_influx_sent_points_total",
            "counter",
            "Points InfluxDB accepted since the node started.",
            stats["sent_points"],
        )
        out.one(
            "picogrid_influx_failed_attempts_total",
            "counter",
            "Writes to InfluxDB that failed (kept for a retry).",
            stats["failed_attempts"],
        )
        out.one(
            "picogrid_influx_rejected_points_total",
            "counter",
            "Points InfluxDB refused for good (kept in influx/rejected.lp).",
            stats["rejected_points"],
        )


def render(node: HttpContext, figures: dict[str, Any]) -> str:
    """The Prometheus text of this node: every family, in a fixed order."""
    m = node.metrics
    out = Exposition()
    _identity(out, node)
    _store(out, m, figures)
    _peers(out, node)
    _gossip(out, m, node)
    _market(out, m, figures)
    _errors(out, m, node)
    clock_and_disk(out, m, node)
    _influx(out, node)
    return out.text()

async def get_metrics(request: web.Request) -> web.Response:
    """GET /metrics: the Prometheus exposition of this node."""
    node = request.app[CONTEXT]
    figures = await in_thread(store_figures, node)
    body = render(node, figures).encode()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

