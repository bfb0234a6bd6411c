"""`GET /v1/actions/{hash}`: one signed action by its hash, decoded (JSON, read-only).

The dashboard's trades table links each trade to the offer and the bid it matched; this is where
those links lead: the action as its author signed it (bytes and signature in hex, so anyone can
re-verify it), whichever chain of this node holds it.
"""

from __future__ import annotations

import re

from aiohttp import web

from node.http.context import CONTEXT
from node.http.jsonify import action_json
from node.http.server import BadRequest, json_error

HASH_HEX = re.compile(r"^[0-9a-f]{64}$")


async def get_action(request: web.Request) -> web.Response:
    """GET /v1/actions/{hash}: one stored action as JSON."""
    raw = request.match_info["hash"].lower()
    if not HASH_HEX.match(raw):
        raise BadRequest("an action hash is 64 hex digits")
    action = request.app[CONTEXT].store.get(bytes.fromhex(raw))
    if action is None:
        return json_error(404, "no action with this hash here")
    return web.json_response(action_json(action))

