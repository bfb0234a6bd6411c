"""The signed-request gate (node.http.auth) on a real aiohttp server on 127.0.0.1, with the
node's own signing client session (node.p2p.session): who gets in as what, and every refusal."""

from __future__ import annotations

from collections import Counter

import aiohttp
import pytest
from aiohttp import web

from ledger.chain import now_us
from ledger.charter import Charter
from ledger.keys import Identity
from ledger.requestauth import sign_request
from node.http.auth import GATE_KEY, READER, SIGNER, AuthGate, require_signature
from node.p2p.session import RequestSigner, open_session

ADMIN, MEMBER, AUDITOR, STRANGER = (Identity.generate() for _ in range(4))
TOKEN = "ab" * 32


class Gate:
    """One server behind the gate; `charter` can be swapped between open and closed."""

    def __init__(self, closed: bool) -> None:
        self.charter = Charter(community="c", admin=ADMIN.agent, open=not closed,
                               auditors=(AUDITOR.agent,))
        self.metrics: Counter = Counter()

    async def start(self) -> str:
        async def echo(request: web.Request) -> web.Response:
            body = await request.read()
            signer = request.get(SIGNER)
            return web.json_response({"reader": request[READER], "body": len(body),
                                      "signer": signer.hex() if signer else None})

        app = web.Application(middlewares=[require_signature])
        app[GATE_KEY] = AuthGate("c", lambda: self.charter, lambda a: a == MEMBER.agent, TOKEN,
                                 self.metrics)
        app.router.add_route("*", "/{tail:.*}", echo)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


@pytest.fixture
async def closed():
    gate = Gate(closed=True)
    url = await gate.start()
    yield gate, url
    await gate.runner.cleanup()


async def call(url: str, method: str = "GET", who: Identity | None = None, body: bytes = b"",
               headers: dict | None = None) -> tuple[int, dict]:
    signer = RequestSigner(who, "c") if who is not None else None
    async with open_session(signer) as session:
        async with session.request(method, url, data=body or None, headers=headers) as resp:
            return resp.status, await resp.json()


async def test_an_open_community_answers_anyone():
    gate = Gate(closed=False)
    url = await gate.start()
    try:
        assert await call(f"{url}/v1/agents") == (200, {"reader": "public", "body": 0,
                                                       "signer": None})
        assert (await call(f"{url}/v1/gossip/actions", "POST", body=b"x"))[0] == 200
    finally:
        await gate.runner.cleanup()


async def test_each_key_gets_in_as_what_it_is(closed):
    gate, url = closed
    status, answer = await call(f"{url}/v1/agents", who=MEMBER)
    assert (status, answer["reader"], answer["signer"]) == (200, "member", MEMBER.agent_hex)
    assert (await call(f"{url}/v1/trades", who=AUDITOR))[1]["reader"] == "auditor"
    assert (await call(f"{url}/v1/trades", who=ADMIN))[1]["reader"] == "auditor"
    status, answer = await call(f"{url}/v1/gossip/actions", "POST", STRANGER, b"\x90")
    assert (status, answer["reader"], answer["body"]) == (200, "signer", 1)
    status, answer = await call(f"{url}/v1/gossip/peers", "POST", MEMBER, b"\x90")
    assert (status, answer["reader"]) == (200, "member")
    owner = {"Authorization": f"Bearer {TOKEN}"}
    assert (await call(f"{url}/v1/summary", headers=owner))[1]["reader"] == "owner"
    assert (await call(f"{url}/v1/info"))[1]["reader"] == "public"
    assert (await call(f"{url}/v1/info", who=MEMBER))[1]["reader"] == "member"
    assert (await call(f"{url}/v1/gossip/proof?nonce=00"))[1]["reader"] == "public"


@pytest.mark.parametrize("method, path, who, headers, status, code", [
    ("GET", "/v1/agents", None, None, 401, "unsigned"),
    ("GET", "/v1/unknown/route", None, None, 401, "unsigned"),
    ("GET", "/metrics", None, {"Authorization": "Bearer " + "cd" * 32}, 401, "unsigned"),
    ("GET", "/v1/agents", STRANGER, None, 403, "not-member"),
    ("POST", "/v1/gossip/peers", STRANGER, None, 403, "not-member"),
    ("POST", "/v1/gossip/actions", AUDITOR, None, 403, "read-only"),
    ("POST", "/v1/gossip/actions", None, None, 401, "unsigned"),
    ("POST", "/v1/gossip/actions", None, {"Authorization": f"Bearer {TOKEN}"}, 401, "unsigned"),
])
async def test_every_refusal_is_named(closed, method, path, who, headers, status, code):
    gate, url = closed
    got = await call(f"{url}{path}", method, who, b"\x90" if method == "POST" else b"", headers)
    assert got[0] == status and got[1]["code"] == code, got
    assert gate.metrics[f"auth_refused:{code}"] == 1


async def test_a_body_other_than_the_signed_one_and_a_replay_are_refused(closed):
    gate, url = closed
    signed = sign_request(MEMBER, "c", "POST", "/v1/gossip/actions", now_us(), b"\x90")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/v1/gossip/actions", data=b"\x91\x00",
                                headers=signed) as resp:
            assert resp.status == 401 and (await resp.json())["code"] == "bad-signature"
        codes = []
        for _ in range(2):
            async with session.post(f"{url}/v1/gossip/actions", data=b"\x90",
                                    headers=signed) as resp:
                codes.append(resp.status)
        assert codes == [200, 401]
    assert gate.metrics["auth_refused:replayed"] == 1
