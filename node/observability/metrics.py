"""`GET /metrics`: the node's state in the Prometheus text format (version 0.0.4).

    curl -s http://127.0.0.1:8700/metrics

`NodeCollector` is a `prometheus_client` custom collector: each scrape, the store's figures are
read on a worker thread (SQLite), then `generate_latest` runs the collector on the event loop
over that snapshot and the node's in-memory state, in the node's own `CollectorRegistry` (not
the process-wide default one: tests run several nodes in one process).

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
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from hardware.status import ErrorLevel
from ledger.errors import REASONS
from node.http.context import CONTEXT, HttpContext
from node.http.server import in_thread
from node.observability.families import counter, counters, gauge, gauges
from node.observability.health_metrics import clock_and_disk
from node.trading.interval_view import interval_state
from node.trading.settler import ABSTAIN_KINDS
from node.version import VERSION

# What the library itself answers a scraper that asks for no newer format; our names need none.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
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


def _identity(node: HttpContext) -> Iterator[Metric]:
    """This node, its uptime, its charter."""
    info = GaugeMetricFamily(
        "picogrid_info",
        "This node: constant 1 with its identity as labels.",
        labels=["name", "agent", "grid", "community", "role", "version"],
    )
    cfg = node.cfg
    info.add_metric(
        [cfg.name, node.identity.agent_hex, cfg.grid, cfg.community, cfg.role, VERSION], 1
    )
    yield info
    yield gauge("picogrid_uptime_seconds", "Seconds since the node started.",
                round(node.uptime(), 3))
    charter = node.charter
    yield gauge("picogrid_charter_version", "Version of the charter in force (0: none).",
                charter.version if charter else 0)


def _store(m: Counter[str], figures: dict[str, Any]) -> Iterator[Metric]:
    """What the store holds and what it took in or refused."""
    yield gauge("picogrid_actions_stored", "Valid actions in the store.", figures["stored"])
    yield gauge("picogrid_chain_length", "Actions on this agent's own chain.",
                figures["chain_length"])
    yield counter("picogrid_own_actions_total", "Actions this node signed since it started.",
                  m["own_actions"])
    yield counter("picogrid_actions_received_total",
                  "Actions received from peers (pushed or pulled), valid or not.",
                  m["actions_received"])
    yield counter("picogrid_actions_accepted_total", "Received actions that were new and valid.",
                  m["actions_accepted"])
    yield counter("picogrid_actions_duplicate_total", "Received actions already held.",
                  m["actions_duplicate"])
    yield counters("picogrid_actions_rejected_total",
                   "Received actions rejected, by PROTOCOL reason code.", "reason",
                   [(r, m[f"rejected:{r}"]) for r in REASONS])
    yield gauge("picogrid_pending_actions", "Actions held until the actions before them arrive.",
                figures["pending"])
    yield gauge("picogrid_forked_agents", "Agents proven to have signed a fork.",
                figures["forked"])
    yield counter("picogrid_forks_detected_total", "Forks this node detected.",
                  m["forks_detected"])


def _peers(node: HttpContext) -> Iterator[Metric]:
    """Each peer's state at the last contact."""
    now = time.monotonic()
    peers = node.peers.all()
    yield gauge("picogrid_peers", "Peers known by URL.", len(peers))
    yield gauge("picogrid_peers_live", "Peers that answered their last round.",
                sum(1 for p in peers if p.failures == 0 and p.last_ok > 0))
    yield gauges("picogrid_peer_lag",
                 "Actions the peer held that we lacked at the last comparison.", "peer",
                 [(p.url, p.lag) for p in peers if p.lag is not None])
    yield gauges("picogrid_peer_behind",
                 "Actions we held that the peer lacked at the last comparison.", "peer",
                 [(p.url, p.behind) for p in peers if p.behind is not None])
    yield gauges("picogrid_peer_failures", "Consecutive failed contacts with the peer.", "peer",
                 [(p.url, p.failures) for p in peers])
    yield gauges("picogrid_peer_seconds_since_ok", "Seconds since the peer last answered.", "peer",
                 [(p.url, round(now - p.last_ok, 3)) for p in peers if p.last_ok])


def _gossip(m: Counter[str], node: HttpContext) -> Iterator[Metric]:
    """Bytes, rounds and actions moved by gossip."""
    yield counters("picogrid_gossip_bytes_total",
                   "Bytes of gossip bodies (/v1/gossip/*), as server and as client.", "direction",
                   [("in", m["gossip_bytes_in"]), ("out", m["gossip_bytes_out"])])
    yield counter("picogrid_gossip_rounds_total", "Anti-entropy rounds completed.",
                  m["gossip_rounds"])
    yield counters("picogrid_gossip_actions_total", "Actions moved by gossip.", "direction",
                   [("pushed", m["gossip_pushed"]), ("pulled", m["gossip_pulled"])])
    yield gauge("picogrid_gossip_last_round_seconds", "Duration of the last round.",
                round(node.gossip.last_round_s, 6))


def _market(m: Counter[str], figures: dict[str, Any]) -> Iterator[Metric]:
    """What this agent signed, and the trades of its latest intervals."""
    yield counter("picogrid_orders_signed_total", "Intervals this agent signed orders for.",
                  m["orders_signed"])
    yield counter("picogrid_intervals_settled_total",
                  "Intervals this agent signed a settlement for since the node started.",
                  m["intervals_settled"])
    yield counter("picogrid_views_signed_total",
                  "Intervals this agent signed its view of (protocol 2).", m["views_signed"])
    yield counter("picogrid_settlement_revisions_total",
                  "Revised settlements this agent signed because late views changed the book.",
                  m["settlement_revisions"])
    yield counters("picogrid_settlements_abstained_total",
                   "Intervals this agent signed orders for but could not settle, by reason.",
                   "reason", [(r, m[f"abstain:{r}"]) for r in ABSTAIN_KINDS])
    yield counter("picogrid_readings_signed_total", "Meter readings this agent signed.",
                  m["readings_signed"])
    last = figures["last_settled"]
    if last is not None:
        yield gauge("picogrid_last_settled_interval", "The latest interval this agent settled.",
                    last)
    trades = figures["trades"]
    window = f"the {TRADE_WINDOW} intervals up to the latest one this agent settled"
    yield gauge("picogrid_trades_disputed", f"Disputed trades in {window}.", trades["disputed"])
    yield gauges("picogrid_trades", f"Trades by status in {window}.", "status",
                 [(s, trades.get(s, 0)) for s in STATUSES])


def _errors(m: Counter[str], node: HttpContext) -> Iterator[Metric]:
    """Errors by the kit's levels (the status reporter) and HTTP errors."""
    status = node.services.status
    counts = status.counts() if status is not None else {}
    yield counters("picogrid_meter_errors_total",
                   "Errors reported through the status reporter (status LED), by level.", "level",
                   [(lv.value, counts.get(lv.value, 0)) for lv in ErrorLevel])
    yield counters("picogrid_http_errors_total", "HTTP requests answered with an error.", "code",
                   [(c, m[f"http_{c}"]) for c in ("400", "408", "413", "429", "503")])
    yield counter("picogrid_http_connections_closed_for_room_total",
                  "Waiting connections (half-open, idle) closed to stay under the open-file "
                  "limit.", m["http_connections_closed_for_room"])
    yield counters("picogrid_peer_proofs_total",
                   "Challenges to URLs learned from agent infos, by outcome (protocol.md, Peer "
                   "proofs).", "outcome", [(o, m[f"peer_proofs_{o}"]) for o in ("ok", "failed")])


def _influx(node: HttpContext) -> Iterator[Metric]:
    """The InfluxDB exporter's queue and results, when it runs."""
    influx = node.services.influx
    if influx is None:
        return
    stats = influx.stats()
    yield gauge("picogrid_influx_queued_points", "Points on disk waiting for InfluxDB.",
                stats["queued_points"])
    yield counter("picogrid_influx_sent_points_total",
                  "Points InfluxDB accepted since the node started.", stats["sent_points"])
    yield counter("picogrid_influx_failed_attempts_total",
                  "Writes to InfluxDB that failed (kept for a retry).", stats["failed_attempts"])
    yield counter("picogrid_influx_rejected_points_total",
                  "Points InfluxDB refused for good (kept in influx/rejected.lp).",
                  stats["rejected_points"])


class NodeCollector:
    """The custom collector of one node: every family, in a fixed order.

    `figures` is the snapshot of `store_figures`, taken on a worker thread before each scrape;
    the rest (counters, peers, services) is read from memory when `collect` runs on the loop.
    """

    def __init__(self, node: HttpContext) -> None:
        self.node = node
        self.figures: dict[str, Any] | None = None

    def collect(self) -> Iterator[Metric]:
        """The families of this node (prometheus_client's collector interface)."""
        figures = self.figures
        if figures is None:
            raise RuntimeError("no store figures yet: NodeMetrics.exposition reads them first")
        node, m = self.node, self.node.metrics
        yield from _identity(node)
        yield from _store(m, figures)
        yield from _peers(node)
        yield from _gossip(m, node)
        yield from _market(m, figures)
        yield from _errors(m, node)
        yield from clock_and_disk(m, node)
        yield from _influx(node)


class NodeMetrics:
    """A node's own registry with its one collector."""

    def __init__(self, node: HttpContext) -> None:
        self.collector = NodeCollector(node)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)

    def exposition(self, figures: dict[str, Any]) -> bytes:
        """The text of a scrape over `figures`. Called on the event loop with no await between
        the snapshot and the text, so concurrent scrapes can't mix their figures."""
        self.collector.figures = figures
        return generate_latest(self.registry)


METRICS_KEY: web.AppKey[NodeMetrics] = web.AppKey("metrics", NodeMetrics)


def set_up_metrics(app: web.Application, node: HttpContext) -> None:
    """Give the app its node's registry, for `get_metrics`."""
    app[METRICS_KEY] = NodeMetrics(node)


async def get_metrics(request: web.Request) -> web.Response:
    """GET /metrics: the Prometheus exposition of this node."""
    node = request.app[CONTEXT]
    figures = await in_thread(store_figures, node)
    body = request.app[METRICS_KEY].exposition(figures)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
