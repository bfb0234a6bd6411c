"""The peer table's bounds without I/O: sources' shares, room for members, demotion."""

from __future__ import annotations

from ledger.agentinfo import make_agent_info
from ledger.chain import now_us
from ledger.testing import identity
from node.p2p import peers as table
from node.p2p.peers import PeerTable


def info(n: int, url: str):
    return make_agent_info(identity(n), "c1", url, now_us())


def test_one_source_holds_at_most_its_share_of_unproven_candidates():
    peers = PeerTable("http://me", b"me")
    taken = [peers.add_info(info(n, f"http://x/{n}"), "address 10.0.0.0/24")
             for n in range(100, 100 + 2 * table.SOURCE_SHARE)]
    assert taken.count(True) == table.SOURCE_SHARE
    assert peers.add_info(info(500, "http://y/500"), "peer http://other")  # another source
    for peer in list(peers.by_url.values())[:4]:  # four prove their key: room for four more
        peers.proved(peer)
    taken = [peers.add_info(info(n, f"http://x/{n}"), "address 10.0.0.0/24")
             for n in range(600, 610)]
    assert taken.count(True) == 4
    assert peers.live(0.0) and all(p.proven for p in peers.live(0.0))


def test_a_full_table_evicts_candidates_and_demoted_peers_never_answering_members():
    peers = PeerTable("http://me", b"me")
    for n in range(table.MAX_PEERS):
        assert peers.add_info(info(1000 + n, f"http://m/{n}"), f"peer {n}")
        peers.proved(peers.by_url[f"http://m/{n}"])
    assert not peers.add_info(info(5000, "http://new/1"), "peer new")  # every one answers
    dead = peers.by_url["http://m/7"]
    for _ in range(table.DEMOTE_AFTER):
        peers.failed(dead, 100.0, "timeout")
    assert dead.demoted and dead.retry_at == 100.0 + table.DEMOTED_S
    assert peers.add_info(info(5001, "http://new/2"), "peer new")  # the demoted one makes room
    assert "http://m/7" not in peers.by_url and "http://new/2" in peers.by_url
    assert len(peers.by_url) == table.MAX_PEERS


def test_three_failed_proofs_forget_the_url_and_its_info_for_good():
    peers = PeerTable("http://me", b"me")
    assert peers.add_info(info(7, "http://victim"), "address 10.0.0.0/24")
    peer = peers.by_url["http://victim"]
    assert peers.to_prove(0.0) == [peer] and peers.live(0.0) == []
    for _ in range(table.PROOF_ATTEMPTS):
        peers.proof_failed(peer, 0.0, "bad signature")
    assert peers.by_url == {} and peers.infos == {}
    assert not peers.add_info(info(7, "http://victim"), "address 10.0.0.0/24")
    assert peers.member_infos(now_us()) == []


def test_an_operator_given_url_is_live_but_its_claims_are_passed_on_only_once_proven():
    peers = PeerTable("http://me", b"me")
    peers.add_url("http://boot", bootstrap=True)
    assert [p.url for p in peers.live(0.0)] == ["http://boot"]
    claim = info(8, "http://boot")
    assert peers.add_info(claim, "address 10.0.0.0/24")
    assert peers.member_infos(now_us()) == []  # not passed on yet
    for _ in range(table.PROOF_ATTEMPTS):
        peers.proof_failed(peers.by_url["http://boot"], 0.0, "another agent")
    boot = peers.by_url["http://boot"]
    assert boot.agent is None and boot.live(0.0) and peers.infos == {}
