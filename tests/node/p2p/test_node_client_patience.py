"""A command that reads a whole community from one address, or posts to a busy node (a charter),
waits out the node's 429s (Retry-After) instead of failing; gossip, with no patience, gets the
429 at once and skips its round."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from node.p2p import wire
from node.p2p.client import PeerClient, PeerError


@pytest.fixture
async def busy_then_free():
    calls = {"n": 0}

    async def heads(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            return web.json_response({"error": "busy"}, status=429,
                                     headers={"Retry-After": "0.05"})
        return web.Response(body=wire.pack_heads({}), content_type=wire.CONTENT_TYPE,
                            headers={"PicoGrid-Charter-Version": "3"})

    async def charter(request: web.Request) -> web.Response:
        calls["n"] += 1
        calls["bodies"] = [*calls.get("bodies", []), await request.read()]
        if calls["n"] <= 2:
            return web.json_response({"error": "busy"}, status=429,
                                     headers={"Retry-After": "0.05"})
        return web.json_response({"accepted": True, "version": 2})

    app = web.Application()
    app.router.add_get("/v1/gossip/heads", heads)
    app.router.add_post("/v1/community/charter", charter)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", calls
    await runner.cleanup()


async def test_a_patient_client_waits_out_429s(busy_then_free):
    url, calls = busy_then_free
    async with aiohttp.ClientSession() as session:
        heads, version = await PeerClient(session, url, patience=3).heads()
    assert (heads, version, calls["n"]) == ({}, 3, 3)


async def test_gossip_gets_the_429_at_once(busy_then_free):
    url, calls = busy_then_free
    async with aiohttp.ClientSession() as session:
        with pytest.raises(PeerError) as caught:
            await PeerClient(session, url).heads()
    assert (caught.value.status, caught.value.retry_after, calls["n"]) == (429, 0.05, 1)


async def test_patience_has_an_end(busy_then_free):
    url, calls = busy_then_free
    async with aiohttp.ClientSession() as session:
        with pytest.raises(PeerError):
            await PeerClient(session, url, patience=1).heads()
    assert calls["n"] == 2


async def test_a_patient_client_posts_again_after_429s(busy_then_free):
    url, calls = busy_then_free
    async with aiohttp.ClientSession() as session:
        await PeerClient(session, url, patience=3).post_charter(b"signed charter")
    assert calls["n"] == 3 and calls["bodies"] == [b"signed charter"] * 3


async def test_a_gossip_post_gets_the_429_at_once(busy_then_free):
    url, calls = busy_then_free
    async with aiohttp.ClientSession() as session:
        with pytest.raises(PeerError) as caught:
            await PeerClient(session, url).post_charter(b"signed charter")
    assert (caught.value.status, caught.value.retry_after, calls["n"]) == (429, 0.05, 1)
