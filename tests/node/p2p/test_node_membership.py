"""Closing a community keeps its members: real nodes, `picogrid charter --invite-only`, audits.

The attack it answers: after the founder closed the community, every node that joined refused
the founder's genesis (no invite), the founder's own audit failed, and the joiner's audit said
ALL VALID without naming the member it had refused.
"""

from __future__ import annotations

import json
import re

import msgpack
from nodeproc import (
    Author,
    Cluster,
    get_json,
    head_seq,
    init_agent,
    owner_headers,
    picogrid,
    signed_request,
    wait_until,
)

from ledger.keys import load_identity


def join_closed(c: Cluster, tmp_path, name: str):
    """Join the closed community of `c.founder` the way a maker does: ask, get invited, join."""
    a = c.founder
    first = picogrid("init", "--dir", tmp_path / name.lower(), "--name", name, "--role",
                     "consumer", "--household", name.lower(), "--grid", "g1", "--community",
                     "c1", "--join", a.url, "--admin", a.admin_hex, check=False)
    assert first.returncode == 2 and "invite only" in first.stderr
    agent_hex = load_identity(tmp_path / name.lower() / "agent.key").agent_hex
    invite = picogrid("invite", "--admin-key", a.dir / "admin.key", "--community", "c1",
                      "--grid", "g1", agent_hex).stdout.strip()
    return init_agent(tmp_path, name, join=a, admin=a.admin_hex, invite=invite)


def test_closing_keeps_the_founder_and_earlier_members_and_the_audit_names_the_missing(
    tmp_path,
):
    with Cluster(tmp_path) as c:
        a = c.found("A")
        c.start(a)
        b = c.join("B")  # joins while the community is open: no invite
        c.start(b, peers=[a])
        wait_until(lambda: head_seq(a.url, b.agent) >= 0, 20, "A holds B", logs=c.logs)
        closed = picogrid("charter", "--dir", a.dir, "--invite-only")
        assert "2 member(s) admitted so far stay members" in closed.stdout
        charter = get_json(f"{a.url}/v1/community", headers=owner_headers(a.dir))["charter"]
        assert charter["open"] is False
        # a node that joins after the close admits the founder and B
        d = join_closed(c, tmp_path, "D")
        c.start(d, peers=[a])
        for member in (a, b):
            wait_until(lambda m=member: head_seq(d.url, m.agent, owner_headers(d.dir)) >= 0, 30,
                       f"D admits {member.name}", logs=c.logs)
        assert "wrong-community" not in c.logs()
        # still closed to strangers
        stranger = Author(name="stranger")
        body = msgpack.packb([stranger.genesis().wire()], use_bin_type=True)
        answer = signed_request(stranger.identity, "c1", "POST", f"{d.url}/v1/gossip/actions",
                                body, {"Content-Type": "application/msgpack"})
        assert answer.msgpack()["rejected"] == [[0, "wrong-community"]]
        for node in (a, d):  # the founder's own audit and the joiner's: all valid
            audit = picogrid("audit", node.url, "--admin", a.admin_hex, "--key",
                             node.dir / "agent.key", check=False)
            assert audit.returncode == 0 and "ALL VALID" in audit.stdout, audit.stdout
        # a node that holds the closing charter but not the members' chains: never ALL VALID
        e = join_closed(c, tmp_path, "E")
        config = e.dir / "config.toml"
        config.write_text(re.sub(r"peers = \[[^\]]*\]", "peers = []", config.read_text()))
        c.start(e)
        audit = picogrid("audit", e.url, "--admin", a.admin_hex, "--key", e.dir / "agent.key",
                         check=False)
        assert audit.returncode == 1 and "ALL VALID" not in audit.stdout
        for member in (a, b):
            assert f"member {member.agent_hex} (listed by the charter) is not served" \
                in audit.stdout
        report = json.loads(picogrid("audit", e.url, "--json", "--key", e.dir / "agent.key",
                                     check=False).stdout)
        assert sorted(report["missing_members"]) == sorted([a.agent_hex, b.agent_hex])
        assert report["ok"] is False
