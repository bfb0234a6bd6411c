"""The node's one route table: every path it serves, and the app built around it."""

from __future__ import annotations

from aiohttp import web

from node.http import action_routes, audit_routes, charter_routes, dashboard, market_routes
from node.http.auth import GATE_KEY, AuthGate, load_or_make_token, require_signature
from node.http.context import CONTEXT, HttpContext
from node.http.limits import RequestLimits
from node.http.openapi import openapi_json
from node.http.server import LIMITER_KEY, errors_and_limits
from node.observability import metrics
from node.p2p import wire
from node.p2p.answers import GossipAnswers
from node.p2p.client import count_gossip_bytes
from node.p2p.handlers import GossipHandlers


def add_routes(app: web.Application, ctx: HttpContext) -> None:
    """Register every endpoint: gossip (msgpack), charter, audit, market, metrics, dashboard."""
    gossip = GossipHandlers(GossipAnswers(ctx.store, ctx.book, ctx.journal, ctx.gossip,
                                          ctx.infos, ctx.metrics))
    app.router.add_routes([
        # gossip (PROTOCOL section 4)
        web.get("/v1/gossip/heads", gossip.heads),
        web.post("/v1/gossip/reconcile", gossip.reconcile),
        web.post("/v1/gossip/reconcile/infos", gossip.reconcile_infos),
        web.post("/v1/gossip/infos", gossip.infos_of),
        web.post("/v1/gossip/reconcile/forks", gossip.reconcile_forks),
        web.get("/v1/gossip/forks/{author_hex}", gossip.evidence),
        web.get("/v1/gossip/chain/{author_hex}", gossip.chain),
        web.post("/v1/gossip/actions", gossip.post_actions),
        web.get("/v1/gossip/peers", gossip.get_peers),
        web.post("/v1/gossip/peers", gossip.post_peers),
        web.get("/v1/gossip/proof", gossip.proof),
        # the community's charter (PROTOCOL section 6)
        web.get("/v1/community/charter", charter_routes.get_charter),
        web.post("/v1/community/charter", charter_routes.post_charter),
        web.get("/v1/community/charters", charter_routes.get_charters),
        # the audit API
        web.get("/v1/info", audit_routes.info),
        web.get("/v1/agents", audit_routes.agents),
        web.get("/v1/agents/{id}", audit_routes.agent),
        web.get("/v1/agents/{id}/chain", audit_routes.chain),
        web.get("/v1/agents/{id}/audit", audit_routes.audit),
        web.get("/v1/community", audit_routes.community),
        web.get("/v1/openapi.json", openapi_json),
        web.get("/metrics", metrics.get_metrics),  # Prometheus
        # the market
        web.get("/v1/intervals/{k}", market_routes.get_interval),
        web.get("/v1/trades", market_routes.get_trades),
        web.get("/v1/agents/{id}/bill", market_routes.get_bill),
        web.get("/v1/summary", market_routes.get_summary),
        web.get("/v1/actions/{hash}", action_routes.get_action),
        # the dashboard
        web.get("/", dashboard.index),
        web.get("/static/{name}", dashboard.static),
    ])


def build_app(ctx: HttpContext) -> web.Application:
    """The aiohttp app of one node: middleware, limits, every route."""
    app = web.Application(middlewares=[errors_and_limits, require_signature],
                          client_max_size=wire.MAX_BODY)
    app[CONTEXT] = ctx
    app[GATE_KEY] = AuthGate(ctx.cfg.community, lambda: ctx.book.charter,
                             lambda agent: ctx.store.head(agent) is not None,
                             load_or_make_token(ctx.cfg.dir), ctx.metrics)
    app[market_routes.SUMMARY_CACHE] = {}
    app[LIMITER_KEY] = RequestLimits(rate=ctx.cfg.rate_limit, burst=2 * ctx.cfg.rate_limit)
    audit_routes.set_up_audits(app)
    dashboard.set_up_dashboard(app)
    metrics.set_up_metrics(app, ctx)
    if ctx.services.session is not None:
        count_gossip_bytes(ctx.services.session, ctx.metrics)  # our client's gossip bytes
    add_routes(app, ctx)
    return app
