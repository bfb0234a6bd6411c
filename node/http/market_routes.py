"""Market endpoints of the audit API: intervals, trades, bills, and a day's summary (JSON)."""

from __future__ import annotations

import csv
import io

from aiohttp import web

from hardware.led_map import led_states
from ledger.chain import now_us
from ledger.keys import parse_agent_hex
from ledger.store import Store
from market.intervals import (
    gate_closure_us,
    interval_at,
    interval_start_us,
    settle_at_us,
)
from market.participants import labels
from node.http.context import CONTEXT, HttpContext
from node.http.server import BadRequest, author_param, in_thread, int_param, json_error
from node.trading import reports
from node.trading.interval_view import (
    IntervalState,
    figures_of,
    interval_state,
    kpis_of,
    socs_before,
)
from node.trading.reports import trade_json

MAX_RANGE = 500


def _node(request: web.Request) -> HttpContext:
    return request.app[CONTEXT]


def _grid(request: web.Request, node: HttpContext) -> str:
    grid = request.query.get("grid", node.cfg.grid)
    if not grid or len(grid) > 200:
        raise BadRequest("bad grid name")
    return grid


def current_interval(node: HttpContext) -> int:
    """The interval in progress now."""
    return interval_at(node.charters, now_us())


def _range(request: web.Request, node: HttpContext, now_k: int | None = None
           ) -> tuple[int, int]:
    now_k = current_interval(node) if now_k is None else now_k
    to = int_param(request, "to", now_k, -(2**40), 2**40)
    # The last 24 intervals; before the market's first interval, just the current one.
    frm = int_param(request, "from", min(to, max(0, to - 23)), -(2**40), 2**40)
    if frm > to:
        raise BadRequest("'from' is after 'to'")
    if to - frm >= MAX_RANGE:
        raise BadRequest(f"at most {MAX_RANGE} intervals per request")
    return frm, to


def _names(state: IntervalState) -> dict[bytes, str]:
    """Display names: two agents of one name are told apart (`market.participants.labels`)."""
    return labels(state.participants)


def _name(state: IntervalState, agent: bytes) -> str | None:
    who = state.participants.get(agent)
    return who.name if who else None


def _who(state: IntervalState, agent: bytes) -> dict:
    return {"agent": agent.hex(), "name": _name(state, agent)}


def _phase(node: HttpContext, k: int, state: IntervalState) -> str:
    now = now_us()
    if now < gate_closure_us(node.charters, k):
        return "open"
    if now < settle_at_us(node.charters, k) or not state.settlements:
        return "clearing"
    if not state.readings:
        return "settled"
    return "metered"


def interval_json(node: HttpContext, grid: str, k: int, store: Store | None = None) -> dict:
    """Interval `k` of `grid`: book, clearing, settlements, figures, LEDs (read from `store`,
    by default the node's own)."""
    store = node.store if store is None else store
    state = interval_state(store, node.charters, grid, k)
    names = _names(state)
    socs = socs_before(store, grid, k, state.participants, charters=node.charters)
    figures = figures_of(state, socs, by_id=True)
    agents = [{"name": p.name, "role": p.role, "household": p.household,
               "capacity_wh": p.capacity_wh} for p in state.participants.values()]
    leds = {name: mode.value for name, mode in
            led_states(agents, figures_of(state, socs)).items()} if state.settlements else {}
    book_digest = None
    if state.clearing is not None and state.rules is not None:
        book_digest = state.payload_for(node.identity.agent)["book"].hex()
    clearing = state.clearing
    return {
        "interval": k,
        "grid": grid,
        "phase": _phase(node, k, state),
        "mechanism": state.rules.mechanism if state.rules else None,
        "start_us": interval_start_us(node.charters, k),
        "end_us": interval_start_us(node.charters, k + 1),
        "gate_us": gate_closure_us(node.charters, k),
        "settle_us": settle_at_us(node.charters, k),
        "book_digest": book_digest,
        "names": {a.hex(): n for a, n in names.items()},
        "book": [{"hash": o.hash.hex(), "author": o.author.hex(), "name": names.get(o.author),
                  "side": o.side, "energy_wh": o.energy_wh, "price": o.price, "ts": o.ts}
                 for o in state.book],
        "late_or_excluded": len(state.orders) - len(state.book),
        "trades": [trade_json(s, names, k) for s in state.statuses],
        "expected_trades": len(clearing.trades) if clearing else 0,
        "settlements": {
            a.hex(): {"agent": a.hex(), "name": _name(state, a), "book": p["book"].hex(),
                      "trades": p.get("trade_count", len(p["trades"])),
                      "revision": p.get("revision", 0),
                      "grid_import_wh": p["grid_import_wh"],
                      "grid_export_wh": p["grid_export_wh"]}
            for a, p in state.settlements.items()
        },
        "readings": {a.hex(): dict(r) for a, r in state.readings.items()},
        # Protocol 2: views counted, agents that never settled k, and those kept out of k's book
        "views": [a.hex() for a in state.views_book.used] if state.views_book else [],
        "defaulters": [_who(state, a) for a in state.defaulters],
        "excluded": [_who(state, a) for a in state.excluded],
        "agents": {a: {"name": state.participants[bytes.fromhex(a)].name, **f}
                   for a, f in figures.items()},
        "leds": leds,
        "grid_import_wh": sum(clearing.grid_import_wh.values()) if clearing else 0,
        "grid_export_wh": sum(clearing.grid_export_wh.values()) if clearing else 0,
        "clearing_price": clearing.clearing_price if clearing else None,
        "kpis": kpis_of([(state, socs)], by_id=True) if figures else None,
    }


async def get_interval(request: web.Request) -> web.Response:
    """GET /v1/intervals/{k}: one interval of the market."""
    node = _node(request)
    if not node.charters:
        return json_error(404, "no charter yet")
    try:
        k = int(request.match_info["k"])
    except ValueError:
        raise BadRequest("interval must be an integer") from None
    if abs(k) > 2**40:
        raise BadRequest("interval out of range")
    grid = _grid(request, node)
    async with node.grid_store(grid) as store:  # another grid's: fetched on demand
        body = await in_thread(interval_json, node, grid, k, store)
    return web.json_response(body)


def trades_in(node: HttpContext, grid: str, frm: int, to: int, agent: bytes | None,
              store: Store | None = None) -> list[dict]:
    """Every trade of the range (only `agent`'s when given), as JSON rows."""
    store = node.store if store is None else store
    return reports.trades_in(store, node.charters, grid, frm, to, agent)


async def get_trades(request: web.Request) -> web.Response:
    """GET /v1/trades: the trades of a range, as JSON or CSV."""
    node = _node(request)
    if not node.charters:
        return json_error(404, "no charter yet")
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format must be json or csv")
    agent = None
    if request.query.get("agent"):
        try:
            agent = parse_agent_hex(request.query["agent"])
        except ValueError as exc:
            raise BadRequest(f"bad agent id: {exc}") from None
    frm, to = _range(request, node)
    grid = _grid(request, node)
    async with node.grid_store(grid) as store:  # another grid's: fetched on demand
        rows = await in_thread(trades_in, node, grid, frm, to, agent, store)
    if fmt == "csv":
        out = io.StringIO()
        cols = ["interval", "seller_name", "buyer_name", "energy_wh", "price", "status",
                "seller", "buyer", "offer", "bid"]
        writer = csv.DictWriter(out, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return web.Response(text=out.getvalue(), content_type="text/csv")
    return web.json_response({"from": frm, "to": to, "grid": grid, "trades": rows})


def bill_json(node: HttpContext, agent: bytes, grid: str, frm: int, to: int,
              store: Store | None = None) -> dict:
    """`agent`'s bills over the range, summed, with its grid-only baseline."""
    store = node.store if store is None else store
    return reports.bill_json(store, node.charters, agent, grid, frm, to)


async def get_bill(request: web.Request) -> web.Response:
    """GET /v1/agents/{id}/bill: an agent's bills over a range."""
    node = _node(request)
    agent = author_param(request, "id")
    row = node.store.agent(agent)
    if row is None:
        return json_error(404, "no such agent here")
    frm, to = _range(request, node)
    async with node.grid_store(row["grid"]) as store:  # another grid's: fetched on demand
        body = await in_thread(bill_json, node, agent, row["grid"], frm, to, store)
    return web.json_response(body)


def summary_json(node: HttpContext, grid: str, frm: int, to: int,
                 current: int | None = None, store: Store | None = None) -> dict:
    """A day at a glance for the dashboard: per interval figures and the KPIs so far, every
    agent keyed by id (`names` gives each a display name that tells equal names apart)."""
    store = node.store if store is None else store
    series, settled, names = [], [], {}
    for k in range(frm, to + 1):
        state = interval_state(store, node.charters, grid, k)
        names.update(_names(state))
        if not state.settlements:
            continue
        socs = socs_before(store, grid, k, state.participants, charters=node.charters)
        settled.append((state, socs))
        figures = figures_of(state, socs, by_id=True)
        statuses = [s.status for s in state.statuses]
        series.append({
            "interval": k,
            "generation_wh": sum(f.get("generation_wh", 0) for f in figures.values()),
            "demand_wh": sum(f.get("demand_wh", 0) for f in figures.values()),
            "soc_wh": {a: f["soc_wh"] for a, f in figures.items() if "soc_wh" in f},
            "grid_import_wh": sum(f.get("from_grid_wh", 0) for f in figures.values()),
            "grid_export_wh": sum(state.clearing.grid_export_wh.values())
            if state.clearing else 0,
            "avg_price": _avg_price(state),
            "confirmed": statuses.count("confirmed"),
            "disputed": statuses.count("disputed"),
            "pending": statuses.count("pending"),
        })
    return {
        "grid": grid, "from": frm, "to": to,
        "current": current_interval(node) if current is None else current,
        "names": {a.hex(): n for a, n in names.items()},
        "series": series,
        "kpis": kpis_of(settled, by_id=True),
    }


def _avg_price(state: IntervalState) -> int | None:
    energy = sum(s.trade.energy_wh for s in state.statuses)
    if not energy:
        return None
    return sum(s.trade.energy_wh * s.trade.price for s in state.statuses) // energy


async def get_summary(request: web.Request) -> web.Response:
    """GET /v1/summary: the dashboard's day at a glance."""
    node = _node(request)
    if not node.charters:
        return json_error(404, "no charter yet")
    # The clock is read once: the cache key and the body name the same current interval.
    current = current_interval(node)
    frm, to = _range(request, node, current)
    grid = _grid(request, node)
    async with node.grid_store(grid) as store:  # another grid's: fetched on demand
        # Cached until the interval changes or the store takes a new action or a fork: a poll
        # between those costs one indexed look-up, not 24 clearings. (A fetched grid's store
        # has a path of its own, never used again once it is dropped.)
        key = (grid, frm, to, current, str(store.path), store.latest_rowid(),
               len(store.forked_authors()))
        cache = request.app[SUMMARY_CACHE]
        if cache.get("key") != key:
            body = await in_thread(summary_json, node, grid, frm, to, current, store)
            cache.clear()
            cache.update(key=key, body=body)
            node.metrics["summary_computed"] += 1
    return web.json_response(cache["body"])


SUMMARY_CACHE = web.AppKey("summary_cache", dict)  # the last /v1/summary body and its key
