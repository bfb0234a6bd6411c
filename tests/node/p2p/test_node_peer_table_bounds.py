"""The peer table's bounds without I/O: sources' shares, room for members, demotion."""

from __future__ import annotations

from ledger.agentinfo import make_agent_info
from ledger.chain import now_us
from ledger.testing import identity
from node.p2p import peers as table
from node.p2p.peers import PeerTable


def info(n: int, url: str):
    return make_agent_info(identity(n), "c1", url, now_us())


def candidates(peers: PeerTable) -> set[str]:
    return {p.url for p in peers.by_url.values() if not p.given}


def test_one_source_holds_at_most_its_share_of_unproven_candidates():
    peers = PeerTable("http://me", b"me")
    flood = [info(n, f"http://x/{n}") for n in range(100, 100 + 2 * table.SOURCE_SHARE)]
    assert all(peers.add_info(i, "address 10.0.0.0/24") for i in flood)  # every info is kept
    assert len(candidates(peers)) == table.SOURCE_SHARE  # ... half of the URLs wait
    assert len(peers.member_infos(now_us())) == 2 * table.SOURCE_SHARE  # all passed on
    assert peers.add_info(info(500, "http://y/500"), "peer http://other")  # another source
    assert "http://y/500" in candidates(peers)
    for peer in [p for p in peers.by_url.values() if p.source.startswith("address")][:4]:
        peers.proved(peer)  # four prove their key: room for four of the waiting
    assert peers.live(0.0) and all(p.proven for p in peers.live(0.0))
    assert len(candidates(peers)) == table.SOURCE_SHARE + 1 + 4
    assert len(peers.waiting) == table.SOURCE_SHARE - 4


def test_a_full_table_evicts_candidates_and_demoted_peers_never_answering_members():
    peers = PeerTable("http://me", b"me")
    for n in range(table.MAX_PEERS):
        assert peers.add_info(info(1000 + n, f"http://m/{n}"), f"peer {n}")
        peers.proved(peers.by_url[f"http://m/{n}"])
    waiting = info(5000, "http://new/1")
    assert peers.add_info(waiting, "peer new")  # kept and passed on ...
    assert "http://new/1" not in peers.by_url  # ... but every peer answers: no room for its URL
    assert waiting in peers.member_infos(now_us())
    dead = peers.by_url["http://m/7"]
    for _ in range(table.DEMOTE_AFTER):
        peers.failed(dead, 100.0, "timeout")
    assert dead.demoted and dead.retry_at == 100.0 + table.DEMOTED_S
    assert peers.add_info(info(5001, "http://new/2"), "peer new")  # the demoted one makes room
    assert "http://m/7" not in peers.by_url and "http://new/2" in peers.by_url
    assert len(peers.by_url) == table.MAX_PEERS
    assert list(peers.waiting) == [waiting.agent, dead.agent]  # the demoted one waits, behind
    del peers.by_url["http://m/8"]  # gone with its info, say: the first waiting URL takes it
    peers.live(0.0)
    assert "http://new/1" in peers.by_url and list(peers.waiting) == [dead.agent]


def test_a_member_of_our_grid_takes_the_place_of_another_grids_peer():
    ours = {identity(9000 + n).agent for n in range(3)}
    peers = PeerTable("http://me", b"me", prefer=lambda agent: agent in ours)
    for n in range(table.MAX_PEERS):
        peers.add_info(info(1000 + n, f"http://m/{n}"), f"peer {n}")
        peers.proved(peers.by_url[f"http://m/{n}"])
    for n in range(3):
        assert peers.add_info(info(9000 + n, f"http://ours/{n}"), "peer ours")
        assert f"http://ours/{n}" in peers.by_url
    assert len(peers.by_url) == table.MAX_PEERS
    for n in range(3):  # proven, our grid: not evicted by our grid's next member either
        peers.proved(peers.by_url[f"http://ours/{n}"])
    ours.add(identity(9003).agent)
    peers.add_info(info(9003, "http://ours/3"), "peer ours")
    assert all(f"http://ours/{n}" in peers.by_url for n in range(4))
    # Another grid's member never takes our grid's place, even a candidate's not yet proven.
    del peers.by_url[next(u for u in peers.by_url if u.startswith("http://m/"))]
    ours.add(identity(9004).agent)
    assert peers.add_info(info(9004, "http://ours/4"), "peer ours")
    assert peers.add_info(info(6000, "http://theirs"), "peer theirs")
    assert "http://ours/4" in peers.by_url and "http://theirs" not in peers.by_url


def test_three_failed_proofs_forget_the_url_for_good_and_two_such_urls_the_agent():
    peers = PeerTable("http://me", b"me")
    victim = info(7, "http://victim")
    assert peers.add_info(victim, "address 10.0.0.0/24")
    peer = peers.by_url["http://victim"]
    assert peers.to_prove(0.0) == [peer] and peers.live(0.0) == []
    for _ in range(table.PROOF_ATTEMPTS):
        peers.proof_failed(peer, 0.0, "bad signature")
    assert peers.by_url == {}
    # The info stays, passed on as its agent's word: other nodes check it for themselves.
    assert peers.member_infos(now_us()) == [victim]
    assert peers.add_info(make_agent_info(identity(7), "c1", "http://victim", now_us() + 1))
    assert peers.by_url == {} and peers.to_prove(0.0) == []  # that URL is never tried again
    assert peers.add_info(make_agent_info(identity(7), "c1", "http://victim/2", now_us() + 2))
    for _ in range(table.PROOF_ATTEMPTS):  # a second URL is tried, and fails too
        peers.proof_failed(peers.by_url["http://victim/2"], 0.0, "bad signature")
    third = make_agent_info(identity(7), "c1", "http://victim/3", now_us() + 3)
    assert peers.add_info(third) and peers.member_infos(now_us()) == [third]
    assert peers.by_url == {}  # two URLs of the agent failed: its next ones are not called
    assert len(peers.disproved[identity(7).agent]) == table.DISPROVED_PER_AGENT


def test_an_operator_given_url_is_live_and_a_false_claim_on_it_is_dropped():
    peers = PeerTable("http://me", b"me")
    peers.add_url("http://boot", bootstrap=True)
    assert [p.url for p in peers.live(0.0)] == ["http://boot"]
    claim = info(8, "http://boot")
    assert peers.add_info(claim, "address 10.0.0.0/24")
    assert peers.to_prove(0.0) == [peers.by_url["http://boot"]]  # asked for its proof
    for _ in range(table.PROOF_ATTEMPTS):
        peers.proof_failed(peers.by_url["http://boot"], 0.0, "another agent")
    boot = peers.by_url["http://boot"]
    assert boot.agent is None and boot.live(0.0) and peers.to_prove(0.0) == []


def test_an_evicted_candidate_waits_for_room_unless_it_failed_a_proof():
    peers = PeerTable("http://me", b"me")
    for n in range(table.MAX_PEERS):
        peers.add_info(info(1000 + n, f"http://m/{n}"), f"peer {n}")
        if n >= 2:
            peers.proved(peers.by_url[f"http://m/{n}"])
    failed, untried = peers.by_url["http://m/0"], peers.by_url["http://m/1"]
    peers.proof_failed(failed, 0.0, "timeout")  # one of its three attempts
    assert peers.add_info(info(5000, "http://new/1"), "peer new")
    assert "http://m/0" not in peers.by_url and not peers.waiting  # its count is not restarted
    assert peers.add_info(info(5001, "http://new/2"), "peer new")
    assert "http://m/1" not in peers.by_url and list(peers.waiting) == [untried.agent]
    assert {failed.info, untried.info} <= set(peers.member_infos(now_us()))  # both passed on
