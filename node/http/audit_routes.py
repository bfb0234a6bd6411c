"""The audit API: JSON, read-only, public (CORS allowed for GET)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from hardware.led_map import kit_shaped
from ledger.chain import now_us
from ledger.paging import chain_pages
from ledger.queries import PAGE_BYTES
from ledger.store import Store
from market.participants import Participant, labels
from node.audit.chains import verify_chains
from node.http.auth import READER
from node.http.context import CONTEXT, HttpContext
from node.http.jsonify import action_json, agent_json, charter_json
from node.http.server import author_param, in_thread, int_param, json_error
from node.version import VERSION

# A JSON page holds a quarter of a gossip page's bytes: as JSON each byte takes several.
JSON_PAGE_BYTES = PAGE_BYTES // 4

MAX_AUDITS = 2
AUDITS_KEY: web.AppKey = web.AppKey("audits", asyncio.Semaphore)


def _node(request: web.Request) -> HttpContext:
    return request.app[CONTEXT]


def _urls(node: HttpContext) -> dict[bytes, str]:
    urls = {a: i.url for a, i in node.peers.infos.items()}
    urls[node.identity.agent] = node.cfg.url
    return urls


async def info(request: web.Request) -> web.Response:
    """GET /v1/info: who this node is, what it holds, its peers and counters."""
    node = _node(request)
    charter = node.charter
    if request.get(READER) == "public" and charter is not None and not charter.open:
        return web.json_response(private_info(node))
    head = node.store.head(node.identity.agent)
    return web.json_response({
        "agent": node.identity.agent_hex,
        "name": node.cfg.name,
        "community": node.cfg.community,
        "grid": node.cfg.grid,
        # "grid": other grids' chains are held as geneses and fetched when asked (`fetched`)
        "replicate": node.cfg.replicate,
        "fetched": node.ondemand.held() if node.ondemand else {},
        "role": node.cfg.role,
        "household": node.cfg.household,
        "url": node.cfg.url,
        "version": VERSION,
        "protocol": 2,
        "charter_version": charter.version if charter else None,
        "chain_length": head.seq + 1 if head else 0,
        "actions_stored": node.store.count(),
        "pending": node.store.pending_count(),
        "uptime_s": round(node.uptime(), 1),
        "peers": [p.to_json(_mono()) for p in node.peers.all()],
        # Our clock against the peers' and the disk (docs/troubleshooting.md, "Clock", "Disk").
        "clock": node.services.clock.to_json() if node.services.clock else None,
        "disk": node.services.disk.to_json() if node.services.disk else None,
        # Protocol 2: intervals waiting for views or orders, and why settlements were not signed
        "settlement": node.services.agent.settler.summary() if node.services.agent else None,
        # What this node did and refused: "rejected:<reason>", "http_429", "gossip_pulled", ...
        "counters": dict(sorted(node.metrics.items())),
    })


def private_info(node: HttpContext) -> dict:
    """What /v1/info tells a stranger about a closed community's node: nothing private."""
    return {"community": node.cfg.community, "open": False, "protocol": 2, "version": VERSION,
            "charter_version": node.charter.version if node.charter else None,
            "private": "this community is closed: sign requests with a member's or an "
                       "auditor's key to read more"}


def _mono() -> float:
    return time.monotonic()


async def agents(request: web.Request) -> web.Response:
    """GET /v1/agents: every agent this node holds a chain of."""
    node = _node(request)
    urls = _urls(node)
    return web.json_response([agent_json(r, urls.get(r["author"])) for r in node.store.agents()])


async def agent(request: web.Request) -> web.Response:
    """GET /v1/agents/{id}: one agent."""
    node = _node(request)
    author = author_param(request, "id")
    row = node.store.agent(author)
    if row is None:
        return json_error(404, "no such agent here")
    return web.json_response(agent_json(row, _urls(node).get(author)))


async def chain(request: web.Request) -> web.Response:
    """GET /v1/agents/{id}/chain: a page of an agent's actions as JSON."""
    node = _node(request)
    author = author_param(request, "id")
    start = int_param(request, "from", 0, 0, 2**62)
    limit = int_param(request, "limit", 100, 1, 1000)
    if node.store.head(author) is None:
        return json_error(404, "no such agent here")

    def page(store: Store) -> dict:  # off the event loop: decoding and JSON take a while
        actions = store.chain(author, start, limit, JSON_PAGE_BYTES)
        head = store.head(author)
        nxt = start + len(actions) if head and start + len(actions) <= head.seq else None
        return {"agent": author.hex(), "from": start,
                "actions": [action_json(a) for a in actions], "next": nxt}

    async with node.agent_store(author) as store:  # another grid's: fetched on demand
        return web.json_response(await in_thread(page, store))


async def audit(request: web.Request) -> web.Response:
    """GET /v1/agents/{id}/audit: the agent's chain re-verified by this node."""
    node = _node(request)
    author = author_param(request, "id")
    if node.store.head(author) is None:
        return json_error(404, "no such agent here")

    def run(store: Store) -> dict:
        items = [i for page in chain_pages(store.chain_range, author) for i in page]
        evidence = {author: [(a.action_bytes, a.signature)
                             for a in node.store.fork_evidence(author)]}
        report = verify_chains({author: items}, node.membrane(), now_us(), evidence=evidence)
        return report[author].to_json()

    # Re-verifying a long chain costs seconds of CPU: a few at a time, the others come back.
    slots = request.app[AUDITS_KEY]
    if slots.locked():
        node.metrics["http_429"] += 1
        return json_error(429, "audits are running; try again in a moment")
    async with slots, node.agent_store(author) as store:  # another grid's: fetched on demand
        return web.json_response(await in_thread(run, store))


def community_json(node: HttpContext) -> dict:
    """The charter and every grid with its agents, how the dashboard draws it, and `names`
    (agent id -> display name, equal names within a grid told apart as in the market views)."""
    charter = node.charter
    urls = _urls(node)
    grids: dict[str, dict] = {}
    if charter:
        for name, rules in charter.grids.items():
            grids[name] = {"rules": rules.to_map(), "agents": []}
    rows: dict[str, list[dict]] = {}
    for row in node.store.agents():
        grids.setdefault(row["grid"], {"rules": None, "agents": []})
        grids[row["grid"]]["agents"].append(agent_json(row, urls.get(row["author"])))
        rows.setdefault(row["grid"], []).append(row)
    names: dict[str, str] = {}
    for name, grid in grids.items():
        members = rows.get(name, [])
        grid["drawing"] = "kit" if kit_shaped(members) else "generic"
        grid["households"] = sorted({r["household"] for r in members})
        people = {r["author"]: Participant(r["author"], r["name"], r["role"], r["household"])
                  for r in members}
        names.update((a.hex(), label) for a, label in labels(people).items())
    return {
        "community": node.cfg.community,
        "admin": node.admin.hex(),
        "grid": node.cfg.grid,
        "charter": charter_json(charter) if charter else None,
        "grids": grids,
        "names": names,
    }


async def community(request: web.Request) -> web.Response:
    """GET /v1/community: the charter and every grid's agents, households and drawing."""
    return web.json_response(community_json(_node(request)))


def set_up_audits(app: web.Application) -> None:
    """The few audit slots shared by this app's requests (the routes are in node.http.routes)."""
    app[AUDITS_KEY] = asyncio.Semaphore(MAX_AUDITS)
