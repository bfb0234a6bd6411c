"""Signed agent infos (PROTOCOL section 4) at a real node, and peer exchange between real nodes."""

from __future__ import annotations

import time

import pytest
from nodeproc import (
    Author,
    Cluster,
    get_json,
    get_msgpack,
    head_seq,
    post_actions,
    post_msgpack,
    wait_until,
)

from ledger import codec
from ledger.agentinfo import make_agent_info, parse_agent_info
from ledger.chain import now_us
from ledger.keys import Identity, verify

MINUTE = 60 * 1_000_000


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("infos")) as c:
        a = c.found("A")
        c.start(a, rate_limit=100_000)
        yield a


def signed_info(ident: Identity, community: str, url: str, created: int, expires: int) -> list:
    body = codec.encode([1, ident.agent, community, url, created, expires])
    return [body, ident.sign(body)]


def make_member(node, ident: Identity) -> None:
    """Its genesis, held by the node: only a member's info counts."""
    assert post_actions(node.url, [Author(identity=ident).genesis()])["accepted"] == 1


def peers_of(url: str) -> list:
    return get_msgpack(f"{url}/v1/gossip/peers")


def test_a_node_serves_its_own_signed_info_first(node):
    infos = peers_of(node.url)
    own = parse_agent_info(infos[0], now_us(), "c1")
    assert own.agent == node.agent and own.url == node.url and own.community == "c1"
    assert own.expires_us - own.created_us == 30 * MINUTE
    assert verify(node.agent, own.info_bytes, own.signature)


def test_bad_infos_are_refused_and_never_served(node):
    now = now_us()
    good_id = Identity.generate()
    make_member(node, good_id)
    good = make_agent_info(good_id, "c1", "", now).wire()
    someone = Identity.generate()
    flipped = signed_info(someone, "c1", "", now, now + MINUTE)
    flipped[1] = bytes([flipped[1][0] ^ 1]) + flipped[1][1:]
    refused = [
        signed_info(someone, "c1", "", now - 2 * MINUTE, now - MINUTE),  # expired
        signed_info(someone, "c1", "", now + 5 * MINUTE, now + 6 * MINUTE),  # clock skew
        signed_info(someone, "c1", "", now - 5 * MINUTE, now + MINUTE),  # clock skew
        flipped,  # bad signature
        signed_info(someone, "c2", "", now, now + MINUTE),  # other community
        signed_info(someone, "c1", "", now, now + 31 * MINUTE),  # lives too long
        signed_info(someone, "c1", "http://x/" + "a" * 1100, now, now + MINUTE),  # over 1 KiB
        signed_info(someone, "c1", "ftp://127.0.0.1:1", now, now + MINUTE),  # not http(s)
        [b"\x93\x01\x02", bytes(64)],  # not an info
        "not a pair",
    ]
    resp = post_msgpack(f"{node.url}/v1/gossip/peers", [good, *refused])
    assert resp.status == 200
    assert resp.msgpack() == {"accepted": 1, "rejected": len(refused)}
    served = peers_of(node.url)
    assert good in served
    agents = {codec.decode(body)[1] for body, _ in served}
    assert someone.agent not in agents and good_id.agent in agents
    # a well-formed info of an agent whose genesis the node lacks: held, never served or called
    stranger = Identity.generate()
    answer = post_msgpack(f"{node.url}/v1/gossip/peers",
                          [make_agent_info(stranger, "c1", "http://127.0.0.1:9/x", now).wire()])
    assert answer.msgpack() == {"accepted": 1, "rejected": 0}
    assert stranger.agent not in {codec.decode(body)[1] for body, _ in peers_of(node.url)}
    assert "http://127.0.0.1:9/x" not in {p["url"] for p in get_json(f"{node.url}/v1/info")["peers"]}


def test_expired_infos_are_dropped_and_newer_ones_replace_older(node):
    now = now_us()
    brief_id, moving_id = Identity.generate(), Identity.generate()
    make_member(node, brief_id)
    make_member(node, moving_id)
    brief = signed_info(brief_id, "c1", "", now, now + 1_000_000)  # expires in one second
    old = signed_info(moving_id, "c1", "", now - 10_000_000, now + MINUTE)
    new = signed_info(moving_id, "c1", "", now, now + MINUTE)
    answer = post_msgpack(f"{node.url}/v1/gossip/peers", [brief, new, old]).msgpack()
    assert answer == {"accepted": 3, "rejected": 0}
    served = peers_of(node.url)
    assert brief in served and new in served and old not in served
    time.sleep(1.3)
    served = peers_of(node.url)
    assert brief not in served and new in served


def test_a_node_that_knows_one_member_finds_all(tmp_path):
    with Cluster(tmp_path) as c:
        a = c.found("A")
        c.start(a)
        members = [c.join(name) for name in "BCD"]
        c.start_many(members, peers=[a])
        x = c.join("X", via=members[0])
        c.start(x, peers=[members[0]])  # X knows B only
        everyone = [a, *members]
        wait_until(
            lambda: (
                {m.url for m in everyone}
                <= {p["url"] for p in get_json(f"{x.url}/v1/info")["peers"]}
            ),
            15,
            "X learned every member's URL",
            logs=c.logs,
        )
        wait_until(
            lambda: all(head_seq(x.url, m.agent) >= 0 for m in everyone),
            10,
            "X holds every member's chain",
            logs=c.logs,
        )
        wait_until(
            lambda: all(head_seq(m.url, x.agent) >= 0 for m in everyone),
            10,
            "every member holds X's chain",
            logs=c.logs,
        )

        def a_knows_x() -> bool:
            infos = get_msgpack(f"{a.url}/v1/gossip/peers")
            return x.agent in {codec.decode(body)[1] for body, _ in infos}

        wait_until(a_knows_x, 10, "A learned X's info in turn", logs=c.logs)


def test_a_flood_of_made_up_peers_cannot_crowd_out_real_ones(tmp_path):
    with Cluster(tmp_path) as c:
        a = c.found("A")
        c.start(a)
        x = c.join("X")
        c.start(x, peers=[a], rate_limit=100_000)
        wait_until(
            lambda: head_seq(x.url, a.agent) >= 0 and len(peers_of(x.url)) >= 2,
            10,
            "X synced with A and has A's info",
            logs=c.logs,
        )
        now = now_us()
        flood = [
            make_agent_info(Identity.generate(), "c1", f"http://127.0.0.1:9/fake{i}", now).wire()
            for i in range(300)
        ]
        for i in range(0, 300, 100):
            answer = post_msgpack(f"{x.url}/v1/gossip/peers", flood[i : i + 100]).msgpack()
            assert answer == {"accepted": 100, "rejected": 0}
        info = get_json(f"{x.url}/v1/info")
        urls = [p["url"] for p in info["peers"]]
        assert urls == [a.url]  # an info counts only when its author is a member
        served = {codec.decode(body)[1] for body, _ in peers_of(x.url)}
        assert served == {a.agent, x.agent}
        late = c.join("Late")  # a real member that joins after the flood
        c.start(late, peers=[x])
        wait_until(
            lambda: (
                late.url in {p["url"] for p in get_json(f"{x.url}/v1/info")["peers"]}
                and head_seq(x.url, late.agent) >= 0
            ),
            10,
            "X still admits real members",
            logs=c.logs,
        )
