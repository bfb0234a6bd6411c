"""The community's charter (PROTOCOL section 6): the newest one signed, every version held."""

from __future__ import annotations

from aiohttp import web

from ledger.charter import CharterError
from node.http.context import CONTEXT
from node.http.jsonify import charter_json
from node.http.server import BadRequest, json_error, msgpack_response, read_body


async def get_charter(request: web.Request) -> web.Response:
    """GET /v1/community/charter: the newest charter, signed (msgpack) or as JSON."""
    node = request.app[CONTEXT]
    charter = node.charter
    if charter is None or charter.signed is None:
        return json_error(404, "this node holds no charter")
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response(charter_json(charter))
    return msgpack_response(charter.signed)


async def post_charter(request: web.Request) -> web.Response:
    """POST /v1/community/charter: take a newer charter signed by the community's admin."""
    node = request.app[CONTEXT]
    body = await read_body(request)
    try:
        charter = node.book.accept(body)
    except CharterError as exc:
        raise BadRequest(f"charter refused: {exc}") from None
    return web.json_response({"accepted": True, "version": charter.version})


async def get_charters(request: web.Request) -> web.Response:
    """Every charter version held, oldest first, so auditors can settle old intervals too."""
    node = request.app[CONTEXT]
    return web.json_response([
        {"version": c.version, "effective_from": c.effective_from, "signed": c.signed.hex()}
        for c in sorted(node.charters, key=lambda c: c.version) if c.signed is not None
    ])
