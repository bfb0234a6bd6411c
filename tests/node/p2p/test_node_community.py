"""Community rules between real `picogrid run` processes: membrane, charters, grids, forks.

A node of another community is refused; a charter signed by a stranger is refused; a new charter
version reaches every node, one whose numbers do not fit 64 bits never does; two grids of one community see and audit each other's agents; an
invite-only community admits an invited agent and refuses the others; a fork made at one node
reaches every node as a warrant and `picogrid audit` exits 1.
"""

from __future__ import annotations

import dataclasses
import json

from nodeproc import (
    Author,
    get_json,
    head_seq,
    heads,
    init_agent,
    invited_author,
    owner_headers,
    picogrid,
    post_actions,
    request,
    wait_until,
)

from ledger import codec
from ledger.charter import parse_charter
from ledger.keys import Identity, load_identity


def charter_version(url: str) -> int:
    return get_json(f"{url}/v1/info")["charter_version"]


def test_a_node_of_another_community_is_refused(cluster, tmp_path):
    a = cluster.found("A")
    cluster.start(a)
    o = init_agent(tmp_path / "other", "O", community="c2")  # founds community c2
    cluster.start(o, peers=[a])
    wait_until(
        lambda: get_json(f"{a.url}/v1/info")["counters"].get("rejected:wrong-community"),
        10,
        "A refused O's chain",
        logs=cluster.logs,
    )
    wait_until(
        lambda: get_json(f"{o.url}/v1/info")["counters"].get("rejected:wrong-community"),
        10,
        "O refused A's chain",
        logs=cluster.logs,
    )
    assert o.agent not in heads(a.url) and a.agent not in heads(o.url)
    assert request("GET", f"{a.url}/v1/agents/{o.agent_hex}").status == 404
    infos = request("GET", f"{a.url}/v1/gossip/peers").msgpack()
    assert all(o.agent not in codec.decode(body)[1:2] for body, _ in infos)
    refused = picogrid("join", "--dir", o.dir, a.url, check=False)
    assert refused.returncode == 2 and "belongs to community 'c1'" in refused.stderr
    refused = picogrid(
        "init",
        "--dir",
        tmp_path / "p",
        "--name",
        "P",
        "--role",
        "consumer",
        "--household",
        "p",
        "--grid",
        "g1",
        "--community",
        "c2",
        "--join",
        a.url,
        "--yes",
        check=False,
    )
    assert refused.returncode == 2 and "belongs to community 'c1'" in refused.stderr
    assert not (tmp_path / "p" / "config.toml").exists()


def test_a_charter_signed_by_a_stranger_is_refused(cluster, tmp_path):
    a = cluster.found("A")
    cluster.start(a)
    # A stranger founds a community of the same name, raises its charter to version 2, and
    # offers it to A both by gossip (a higher version in its heads) and by POST.
    s = init_agent(tmp_path / "stranger", "S", community="c1")
    cluster.start(s, peers=[a])
    assert picogrid("charter", "--dir", s.dir, "--grid", "g1", "--retail", "1").returncode == 0
    assert charter_version(s.url) == 2
    signed = request("GET", f"{s.url}/v1/community/charter").body
    assert parse_charter(signed).admin.hex() == s.admin_hex != a.admin_hex
    resp = request(
        "POST", f"{a.url}/v1/community/charter", signed, {"Content-Type": "application/msgpack"}
    )
    assert resp.status == 400 and "pinned admin" in resp.json()["error"]
    wait_until(
        lambda: "charter version 2, refused" in (a.dir / "run.err").read_text(),
        10,
        "A saw the stranger's version by gossip and refused it",
        logs=cluster.logs,
    )
    assert charter_version(a.url) == 1
    assert parse_charter(request("GET", f"{a.url}/v1/community/charter").body).version == 1
    refused = picogrid("join", "--dir", s.dir, a.url, check=False)
    assert refused.returncode == 2 and "admin key" in refused.stderr
    wrong_admin = Identity.generate().agent_hex
    refused = picogrid(
        "init",
        "--dir",
        tmp_path / "q",
        "--name",
        "Q",
        "--role",
        "consumer",
        "--household",
        "q",
        "--grid",
        "g1",
        "--community",
        "c1",
        "--join",
        a.url,
        "--admin",
        wrong_admin,
        check=False,
    )
    assert refused.returncode == 2 and "differs from --admin" in refused.stderr


def test_a_charter_whose_numbers_do_not_fit_64_bits_is_refused(cluster):
    # Signed by the right admin, valid msgpack, but the store (SQLite) and every settlement hold
    # signed 64-bit integers only: 400 with the reason, the node keeps its charter.
    a = cluster.found("A")
    proc = cluster.start(a)
    admin = load_identity(a.dir / "admin.key")
    current = parse_charter(request("GET", f"{a.url}/v1/community/charter").body)
    rules = current.grids["g1"]
    for change in (
        {"version": 2**64 - 1},
        {"version": 2, "effective_from": 2**63},
        {"version": 2, "grids": {"g1": dataclasses.replace(rules, community_price=2**64 - 1)}},
    ):
        # Signed by hand: our own `Charter.sign` refuses to sign such a charter at all.
        body = dataclasses.replace(current, **change).charter_bytes()
        signed = codec.encode([body, admin.sign(body)])
        resp = request(
            "POST", f"{a.url}/v1/community/charter", signed, {"Content-Type": "application/msgpack"}
        )
        assert resp.status == 400 and "64 bits" in resp.json()["error"], (change, resp.body)
    assert charter_version(a.url) == 1
    fits = dataclasses.replace(current, version=2, effective_from=2**63 - 1).sign(admin).signed
    resp = request(
        "POST", f"{a.url}/v1/community/charter", fits, {"Content-Type": "application/msgpack"}
    )
    assert resp.status == 200 and charter_version(a.url) == 2
    assert "Traceback" not in proc.logs()


def test_a_new_charter_version_reaches_every_node(cluster):
    a = cluster.found("A")
    cluster.start(a)
    b, c = cluster.join("B"), cluster.join("C")
    hidden = cluster.join("Hidden", public_url="")
    cluster.start_many([b, c, hidden], peers=[a])
    out = picogrid("charter", "--dir", a.dir, "--grid", "g1", "--retail", "31000").stdout
    assert "charter version 2" in out
    for node in (a, b, c, hidden):
        wait_until(
            lambda n=node: charter_version(n.url) == 2,
            10,
            f"{node.name} has version 2",
            logs=cluster.logs,
        )
        doc = json.loads(
            request(
                "GET", f"{node.url}/v1/community/charter", headers={"Accept": "application/json"}
            ).body
        )
        assert doc["version"] == 2 and doc["grids"]["g1"]["retail"] == 31000
        assert doc["admin"] == a.admin_hex and doc["effective_from"] >= 1


def test_two_grids_see_and_audit_each_other(cluster):
    a = cluster.found("A", grid="g1")
    cluster.start(a)
    picogrid("charter", "--dir", a.dir, "--grid", "g2", "--mechanism", "pay-as-clear")
    b = cluster.join("B", grid="g1")
    g, h = cluster.join("G", grid="g2"), cluster.join("H", grid="g2", role="generator")
    cluster.start(b, peers=[a])
    cluster.start_many([g, h], peers=[b])  # the second grid knows the first through one node
    nodes = (a, b, g, h)
    for node in nodes:
        wait_until(
            lambda n=node: all(head_seq(n.url, m.agent) >= 0 for m in nodes),
            10,
            f"{node.name} holds all four chains",
            logs=cluster.logs,
        )
    community = get_json(f"{g.url}/v1/community")
    assert {r["id"] for r in community["grids"]["g1"]["agents"]} == {a.agent_hex, b.agent_hex}
    assert {r["id"] for r in community["grids"]["g2"]["agents"]} == {g.agent_hex, h.agent_hex}
    assert community["grids"]["g2"]["rules"]["mechanism"] == "pay-as-clear"
    for url, agent in ((g.url, a), (a.url, h), (h.url, b)):
        report = json.loads(picogrid("audit", url, "--agent", agent.agent_hex, "--json").stdout)
        assert report["ok"] and [r["agent"] for r in report["agents"]] == [agent.agent_hex]
        assert get_json(f"{url}/v1/agents/{agent.agent_hex}/audit")["status"] == "valid"


def test_an_invite_only_community_admits_the_invited_only(cluster, tmp_path):
    a = cluster.found("A")
    cluster.start(a)
    picogrid("charter", "--dir", a.dir, "--invite-only")
    mine = owner_headers(a.dir)  # a closed community's node answers its owner
    assert get_json(f"{a.url}/v1/community", headers=mine)["charter"]["open"] is False
    join = [
        "init",
        "--dir",
        tmp_path / "b",
        "--name",
        "B",
        "--role",
        "consumer",
        "--household",
        "b",
        "--grid",
        "g1",
        "--community",
        "c1",
        "--join",
        a.url,
        "--admin",
        a.admin_hex,
    ]
    first = picogrid(*join, check=False)
    assert first.returncode == 2 and "invite only" in first.stderr
    agent_hex = load_identity(tmp_path / "b" / "agent.key").agent_hex  # kept for the retry
    assert f"--grid g1 {agent_hex}" in first.stderr  # the command to give the admin
    invite = picogrid(
        "invite", "--admin-key", a.dir / "admin.key", "--community", "c1", "--grid", "g1", agent_hex
    ).stdout.strip()
    assert len(invite) == 128
    b = init_agent(tmp_path, "B", join=a, admin=a.admin_hex, invite=invite)
    assert b.agent_hex == agent_hex
    cluster.start(b, peers=[a])
    wait_until(
        lambda: head_seq(a.url, b.agent, mine) >= 0, 10, "A admits the invited B",
        logs=cluster.logs,
    )
    invited = invited_author(a.dir / "admin.key", "c1", "lab", "invited member")
    uninvited = Author(name="uninvited")
    wrong_grid = invited_author(a.dir / "admin.key", "c1", "g1", "grid-swapper")
    wrong_grid.grid = "lab"  # an invite is for one grid
    forged = invited_author(b.dir / "agent.key", "c1", "lab", "forged")  # not the admin's key
    answer = post_actions(
        a.url, [invited.genesis(), uninvited.genesis(), wrong_grid.genesis(), forged.genesis()],
        signed_by=uninvited.identity,  # any key may post actions; the membrane judges each
    )
    assert answer["accepted"] == 1
    assert answer["rejected"] == [
        [1, "wrong-community"],
        [2, "wrong-community"],
        [3, "wrong-community"],
    ]


def test_a_fork_reaches_every_node_as_a_warrant_and_audit_exits_1(cluster):
    a = cluster.found("A")
    cluster.start(a)
    b, c = cluster.join("B"), cluster.join("C")
    cluster.start_many([b, c], peers=[a])
    f = Author(name="two-faced")
    post_actions(b.url, f.extend(4))
    for node in (a, b, c):
        wait_until(lambda n=node: head_seq(n.url, f.agent) == 3, 10, "all hold f's chain")
    assert picogrid("audit", c.url).returncode == 0
    answer = post_actions(a.url, [f.fork(2)])  # f signs a second action at seq 2, seen by A
    assert answer["accepted"] == 1 and answer["rejected"] == []
    for node in (a, b, c):
        wait_until(
            lambda n=node: get_json(f"{n.url}/v1/agents/{f.agent_hex}")["forked"],
            10,
            f"{node.name} knows f is forked",
            logs=cluster.logs,
        )
        assert get_json(f"{node.url}/v1/agents/{f.agent_hex}/audit")["status"] == "forked"
    chain = get_json(f"{c.url}/v1/agents/{a.agent_hex}/chain?limit=1000")["actions"]
    warrants = [x for x in chain if x["type"] == "warrant"]
    assert len(warrants) == 1
    evidence = {e["action_bytes"] for e in warrants[0]["payload"]["evidence"]}
    assert evidence == {f.actions[2].action_bytes.hex(), f.fork(2).action_bytes.hex()}
    done = picogrid("audit", b.url, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "forked" in done.stdout and "PROBLEMS FOUND" in done.stdout
    report = json.loads(picogrid("audit", c.url, "--json", check=False).stdout)
    assert report["ok"] is False and report["forked"] >= 1
    assert {r["agent"]: r["status"] for r in report["agents"]}[f.agent_hex] == "forked"
    assert post_actions(c.url, [f.next()])["rejected"] == [[0, "forked-author"]]
