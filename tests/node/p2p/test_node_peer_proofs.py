"""Peer-table poisoning on four real trading nodes: 64 members' infos point at a fake peer.

The attack it answers: in an open community anyone may join, so a stranger made 64 members with
throwaway keys and posted their signed infos, all pointing at a slow fake peer that does not
hold those keys. Every node took the 67 URLs as peers, pushed the fake peer its chains and the
charter, and the settlement books agreed in 2-3 intervals of 20 (new orders went to 3 random
peers of 67). Now a URL is called only once it proved the info's key (docs/protocol.md, "Peer
proofs"): the fake peer is asked for a proof, fails, is forgotten, and nothing else reaches it.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgpack
from nodeproc import Author, free_port, get_json, post_actions, post_msgpack, wait_until

from ledger.agentinfo import make_agent_info
from ledger.chain import now_us
from market.scenario import default_scenario
from node.cli import launcher as demo

INTERVAL_S = 2
FIRST = 10
FLOOD = 64
KIT = ("Home 1", "Home 2", "Community solar", "Neighbourhood battery")


class FakePeer(BaseHTTPRequestHandler):
    """Answers like a node that holds nothing (so a real node would push it everything), and
    answers a challenge with a signature it cannot make. Records every request."""

    seen: list[tuple[str, str]] = []

    def _answer(self, value: object, status: int = 200) -> None:
        body = msgpack.packb(value, use_bin_type=True)
        self.send_response(status)
        self.send_header("Content-Type", "application/msgpack")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append(("GET", self.path))
        if "/v1/gossip/proof" in self.path:
            url = f"http://{self.headers['Host']}{self.path.split('/v1/', 1)[0]}"
            self._answer([bytes(32), url, bytes(64)])
        elif "/v1/gossip/heads" in self.path:
            self._answer({})
        elif "/v1/gossip/peers" in self.path:
            self._answer([])
        else:
            self._answer({"error": "no"}, 404)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.seen.append(("POST", self.path))
        self._answer({"accepted": 0, "duplicate": 0, "pending": 0, "rejected": []})

    def log_message(self, *args: object) -> None:
        return


def books_agree(url: str, k: int, agents: int) -> bool | None:
    """True when all `agents` settled `k` on one book; False when they settled on several;
    None while settlements are missing."""
    view = demo.get_json(f"{url}/v1/intervals/{k}")
    if not view or len(view.get("settlements", {})) < agents:
        return None
    return len({s["book"] for s in view["settlements"].values()}) == 1


def settled(url: str, k: int, agents: int) -> bool:
    """Whether the agents settled `k` on one book, once all settled it (read once)."""
    verdict = wait_until(
        lambda: (lambda v: None if v is None else [v])(books_agree(url, k, agents)),
        40, f"interval {k} settled by every agent")
    return verdict[0]


def test_64_infos_at_a_fake_peer_get_no_chain_no_charter_and_books_still_agree(tmp_path):
    kit = default_scenario()
    scenario = replace(kit, agents=tuple(a for a in kit.agents if a.name in KIT))
    nodes = demo.prepare(tmp_path, scenario, demo.free_port_run(len(KIT)), INTERVAL_S,
                         "merit-order", start_in_s=6.0, first_interval=FIRST, round_ms=300)
    fake = ThreadingHTTPServer(("127.0.0.1", free_port()), FakePeer)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    fake_url = f"http://127.0.0.1:{fake.server_address[1]}"
    demo.start(nodes)
    try:
        assert not demo.wait_ready(nodes), "nodes did not start"
        first = nodes[0].url
        # 64 members with throwaway keys, each announcing a URL on the fake peer
        authors = [Author(community=demo.COMMUNITY, name=f"flood{i}") for i in range(FLOOD)]
        assert post_actions(first, [a.genesis() for a in authors])["accepted"] == FLOOD
        for node in nodes:
            wait_until(lambda n=node: len(get_json(f"{n.url}/v1/agents")) >= FLOOD + len(KIT),
                       30, f"{node.name} holds the flood's geneses")
        now = now_us()
        infos = [make_agent_info(a.identity, demo.COMMUNITY, f"{fake_url}/p{i}", now).wire()
                 for i, a in enumerate(authors)]
        for node in nodes:
            answer = post_msgpack(f"{node.url}/v1/gossip/peers", infos).msgpack()
            assert answer["rejected"] == 0
        start = demo.first_open_interval(first, FIRST)
        verdicts = [settled(first, k, len(KIT)) for k in range(start, start + 10)]
        calls = list(FakePeer.seen)
        peers = get_json(f"{first}/v1/info")["peers"]
    finally:
        demo.stop(nodes)
        fake.shutdown()
    logs = "\n".join((n.dir / "node.log").read_text()[-3000:] for n in nodes)
    assert verdicts == [True] * 10, f"books agreed in {verdicts.count(True)} of 10\n{logs}"
    posts = [path for method, path in calls if method == "POST"]
    assert posts == [], f"the fake peer was pushed to: {posts[:5]}"
    assert {path.split("/v1/", 1)[1].split("?")[0] for _, path in calls} <= {"gossip/proof"}
    assert len(calls) <= 3 * FLOOD * len(KIT)  # at most three challenges per node and URL
    assert not [p for p in peers if p["url"].startswith(fake_url) and p["proven"]]
