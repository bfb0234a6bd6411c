"""Replication between real `picogrid run` processes on 127.0.0.1.

Five nodes converge; a node killed with SIGKILL and restarted catches up; a node stopped for a
while heals the partition both ways; a node nobody can reach replicates both ways; dead and
blackholed peers never delay rounds with live peers; a peer that answers garbage is backed off.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import msgpack
import pytest
from nodeproc import (
    Author,
    Cluster,
    append_own,
    free_port,
    get_json,
    head_seq,
    heads,
    picogrid,
    post_actions,
    seed,
    wait_until,
)

from ledger import codec
from ledger.charter import Charter
from ledger.keys import Identity
from ledger.store import Store
from node.p2p.client import PeerClient, PeerError


def three(c: Cluster):
    a = c.found("A")
    c.start(a)
    b, d = c.join("B"), c.join("C")
    c.start_many([b, d], peers=[a])
    return a, b, d


def holds(url: str, author: Author) -> bool:
    return head_seq(url, author.agent) == author.actions[-1].seq


def test_five_nodes_converge(cluster):
    a = cluster.found("A")
    cluster.start(a)
    others = [cluster.join(name, grid="g1") for name in "BCDE"]
    cluster.start_many(others, peers=[a])
    nodes = [a, *others]
    x, y = Author(name="x"), Author(name="y")
    post_actions(others[0].url, x.extend(30))
    post_actions(others[-1].url, y.extend(30))

    def converged() -> bool:
        views = [heads(n.url) for n in nodes]
        members = {n.agent for n in nodes} | {x.agent, y.agent}
        return members <= set(views[0]) and all(v == views[0] for v in views)

    wait_until(converged, 15, "five nodes hold the same chains", logs=cluster.logs)
    assert holds(a.url, x) and holds(a.url, y)
    ids = {n.agent_hex for n in nodes}
    for n in nodes:  # everyone finds everyone's URL (peer exchange) and lists them in grid g1
        wait_until(
            lambda n=n: (
                {m.url for m in nodes if m is not n}
                <= {p["url"] for p in get_json(f"{n.url}/v1/info")["peers"]}
            ),
            10,
            f"{n.name} knows every peer",
            logs=cluster.logs,
        )
        grid = get_json(f"{n.url}/v1/community")["grids"]["g1"]
        assert ids <= {row["id"] for row in grid["agents"]}
    assert picogrid("audit", others[2].url).returncode == 0


def test_a_node_killed_with_sigkill_restarts_and_catches_up(cluster):
    a, b, c = three(cluster)
    victim = cluster.procs[-1]
    z = Author(name="z")
    post_actions(a.url, z.extend(5))
    wait_until(lambda: holds(c.url, z), 10, "C has z's first actions")
    # Kill C while it is writing a big batch, then let the others move on without it.
    w = Author(name="w")
    batch = w.extend(1000)
    writer = threading.Thread(target=lambda: _post_ignoring_errors(c.url, batch))
    writer.start()
    time.sleep(0.15)
    assert victim.kill() == -9
    writer.join(10)
    post_actions(a.url, z.extend(300))
    post_actions(b.url, w.actions)  # the whole of w, wherever C stopped
    proc = cluster.start(c, peers=[a])
    wait_until(lambda: holds(c.url, z) and holds(c.url, w), 20, "C caught up", logs=proc.logs)
    assert proc.terminate() == 0
    store = Store(c.dir / "store.sqlite3")
    try:
        assert store.integrity_problems() == []
    finally:
        store.close()


def _post_ignoring_errors(url: str, actions) -> None:
    try:
        post_actions(url, actions)
    except (OSError, AssertionError):
        pass  # the node died under it: that is the point


def test_a_node_stopped_for_a_while_heals_the_partition(cluster):
    a, b, c = three(cluster)
    assert cluster.procs[-1].terminate() == 0
    outside, inside = Author(name="outside"), Author(name="inside")
    post_actions(a.url, outside.extend(50))  # the running side moves on
    time.sleep(1.0)
    post_actions(b.url, outside.extend(20))
    assert seed(c, inside.extend(40)) == 40  # and so does the stopped node, on its own
    own = append_own(c, "bid", {"interval": -1, "energy_wh": 5, "price": 1})  # its own chain too
    cluster.start(c, peers=[a])
    for node in (a, b, c):
        wait_until(
            lambda n=node: (
                holds(n.url, outside)
                and holds(n.url, inside)
                and head_seq(n.url, c.agent) >= own.seq
            ),
            15,
            f"{node.name} holds both sides",
            logs=cluster.logs,
        )


def test_a_node_nobody_can_reach_replicates_both_ways(cluster):
    a = cluster.found("A")
    cluster.start(a)
    b = cluster.join("B")
    cluster.start(b, peers=[a])
    hidden = cluster.join("Hidden", public_url="")  # behind a home router: no URL
    cluster.start(hidden, peers=[a])
    mine, theirs = Author(name="from-hidden"), Author(name="to-hidden")
    post_actions(hidden.url, mine.extend(20))
    post_actions(b.url, theirs.extend(20))
    for node in (a, b, hidden):
        wait_until(
            lambda n=node: (
                holds(n.url, mine) and holds(n.url, theirs) and head_seq(n.url, hidden.agent) >= 0
            ),
            15,
            f"{node.name} holds both chains",
            logs=cluster.logs,
        )
    for node in (a, b):
        info = get_json(f"{node.url}/v1/info")
        assert all(str(hidden.port) not in p["url"] for p in info["peers"])
        row = get_json(f"{node.url}/v1/agents/{hidden.agent_hex}")
        assert row["url"] in ("", None)
    assert get_json(f"{hidden.url}/v1/info")["url"] == ""


def test_dead_and_blackholed_peers_do_not_delay_live_ones(cluster):
    a = cluster.found("A")
    cluster.start(a)
    data = Author(name="data")
    post_actions(a.url, data.extend(50))
    x = cluster.join("X")
    holes = []
    try:
        for _ in range(10):  # accept TCP connections but never answer (a hung node)
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(64)
            holes.append(s)
        hole_urls = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in holes]
        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: refused at once
        cluster.start(x, peers=[*hole_urls, dead, a.url])
        wait_until(
            lambda: holds(x.url, data), 4, "X synced with A despite 11 bad peers", logs=cluster.logs
        )

        def backed_off() -> bool:
            peers = {p["url"]: p for p in get_json(f"{x.url}/v1/info")["peers"]}
            return all(
                peers[u]["failures"] >= 1 and not peers[u]["live"] for u in [*hole_urls, dead]
            )

        wait_until(backed_off, 8, "every bad peer failed once and is backed off")
        # Rounds with the live peer keep going while the bad ones are retried.
        more = data.extend(5)
        post_actions(a.url, more)
        wait_until(lambda: holds(x.url, data), 3, "X keeps syncing with A", logs=cluster.logs)
    finally:
        for s in holes:
            s.close()


@contextmanager
def peer_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A misbehaving peer on 127.0.0.1, served from a thread; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def refused(url: str, calls: list[Callable[[PeerClient], Awaitable[object]]], match: str) -> None:
    """Each call of a PeerClient of `url` raises PeerError (as the gossip loop expects)."""

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            client = PeerClient(session, url)
            for call in calls:
                with pytest.raises(PeerError, match=match):
                    await call(client)

    asyncio.run(run())


class GarbagePeer(BaseHTTPRequestHandler):
    """A peer gone wrong: empty heads (so it is pushed to), then 200 with undecodable msgpack."""

    def answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = msgpack.packb({}) if self.path == "/v1/gossip/heads" else b"\xc1\xc1"
        self.send_response(200)
        self.send_header("Content-Type", "application/msgpack")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, *args: object) -> None:
        pass


def test_a_peer_answering_garbage_is_backed_off_without_a_traceback(cluster):
    with peer_server(GarbagePeer) as bad:
        calls = [lambda c: c.push([(b"a", b"b")]), lambda c: c.peers(), lambda c: c.post_peers([])]
        refused(bad, calls, "msgpack")
        x = cluster.found("X")
        proc = cluster.start(x, peers=[bad])

        def backed_off() -> bool:
            peer = {p["url"]: p for p in get_json(f"{x.url}/v1/info")["peers"]}[bad]
            return peer["failures"] >= 1 and "msgpack" in (peer["last_error"] or "")

        wait_until(backed_off, 5, "the garbage peer failed and is backed off", logs=proc.logs)
        assert "Traceback" not in proc.logs()


class FloodingPeer(GarbagePeer):
    """A peer that answers more than any gossip answer holds (40 MiB), announced or not."""

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path == "/v1/gossip/peers":
            self.send_header("Content-Length", str(40 << 20))
        self.end_headers()  # without a length, the body ends when the connection closes
        try:
            for _ in range(40):
                self.wfile.write(bytes(1 << 20))
        except OSError:
            pass  # the client stopped reading


def test_an_answer_larger_than_any_gossip_answer_is_not_read():
    # Read whole, a peer's answer of a few GB would take a Pi's memory within the timeout.
    with peer_server(FloodingPeer) as url:
        refused(url, [lambda c: c.heads(), lambda c: c.peers()], "larger than")


class HugeCharterPeer(GarbagePeer):
    """A peer whose charter is signed and canonical, but numbered beyond 64 bits."""

    def do_GET(self) -> None:
        admin = Identity.generate()
        charter = Charter(community="c1", admin=admin.agent, version=2**64 - 1).charter_bytes()
        body = codec.encode([charter, admin.sign(charter)])  # `Charter.sign` would refuse it
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_charter_numbered_beyond_64_bits_is_refused_from_a_peer():
    # `picogrid init --join` and the gossip rounds both take a peer's charter this way.
    with peer_server(HugeCharterPeer) as url:
        refused(url, [lambda c: c.charter()], "64 bits")
