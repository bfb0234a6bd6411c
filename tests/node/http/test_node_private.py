"""A closed community is private: real nodes, strangers, members, an auditor, replays, HTTPS.

The attack it answers: in a closed community a stranger got 200 on every read endpoint (agents,
chains, trades, readings), and nothing told a maker how to serve HTTPS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from nodeproc import (
    Cluster,
    get_json,
    head_seq,
    init_agent,
    owner_headers,
    picogrid,
    request,
    signed_request,
    start,
    wait_until,
)

from ledger.chain import now_us
from ledger.keys import Identity, load_identity
from ledger.requestauth import sign_request

INTERVAL_S = "3"


def read_paths(agent_hex: str) -> list[str]:
    """Every read endpoint that holds something private."""
    return [
        "/v1/agents", f"/v1/agents/{agent_hex}", f"/v1/agents/{agent_hex}/chain",
        f"/v1/agents/{agent_hex}/audit", f"/v1/agents/{agent_hex}/bill", "/v1/trades",
        "/v1/intervals/1", "/v1/summary", "/v1/community", "/v1/community/charters",
        "/v1/gossip/heads", f"/v1/gossip/chain/{agent_hex}?from=0&limit=10", "/v1/gossip/peers",
        "/metrics", f"/v1/actions/{'00' * 32}",
    ]


def charter_of(url: str) -> dict:
    return get_json(f"{url}/v1/community/charter", headers={"Accept": "application/json"})


def settlements_after(url: str, agent_hex: str, since_us: int, headers: dict) -> int:
    """How many settlements of `agent_hex` stamped after `since_us` the node at `url` holds."""
    page = get_json(f"{url}/v1/agents/{agent_hex}/chain?from=0&limit=1000", headers=headers)
    items = page["actions"] if isinstance(page, dict) else page
    return sum(a["type"] == "settlement" and a["ts"] > since_us for a in items)


def test_a_closed_community_answers_members_and_auditors_only(tmp_path):
    with Cluster(tmp_path) as c:
        a = c.found("A", extra=["--interval-seconds", INTERVAL_S])
        c.start(a)
        b = c.join("B")
        c.start(b, peers=[a])
        wait_until(lambda: head_seq(a.url, b.agent) >= 0, 30, "A holds B", logs=c.logs)
        # open: public to anyone
        for path in ("/v1/agents", "/v1/gossip/heads", "/v1/summary"):
            assert request("GET", a.url + path).status == 200, path
        picogrid("charter", "--dir", a.dir, "--invite-only")
        wait_until(lambda: charter_of(b.url)["open"] is False, 30, "B closes", logs=c.logs)
        closed_at = now_us()
        stranger = Identity.generate()
        for node in (a, b):
            for path in read_paths(a.agent_hex):
                plain = request("GET", node.url + path)
                assert plain.status == 401, (path, plain.status, plain.body[:200])
                assert plain.json()["code"] == "unsigned"
                other = signed_request(stranger, "c1", "GET", node.url + path)
                assert other.status == 403, (path, other.status, other.body[:200])
                assert other.json()["code"] == "not-member"
            for path in ("/v1/gossip/actions", "/v1/gossip/peers"):
                assert request("POST", node.url + path, b"\x90").status == 401
            assert signed_request(stranger, "c1", "POST", node.url + "/v1/gossip/peers",
                                  b"\x90").status == 403
            # what stays public tells nothing private
            info = get_json(f"{node.url}/v1/info")
            assert info["open"] is False and info["community"] == "c1"
            assert not {"agent", "name", "peers", "counters", "url"} & set(info)
            assert request("GET", node.url + "/").status == 200
        # a member reads; members' nodes keep gossiping and settling
        member = load_identity(b.dir / "agent.key")
        answer = signed_request(member, "c1", "GET", f"{a.url}/v1/agents")
        assert answer.status == 200 and {x["id"] for x in answer.json()} >= {a.agent_hex}
        full = signed_request(member, "c1", "GET", f"{a.url}/v1/info").json()
        assert full["agent"] == a.agent_hex and "peers" in full
        status = picogrid("status", a.url, check=False)
        assert status.returncode == 2 and "--key" in status.stdout, status.stdout
        status = picogrid("status", a.url, "--key", b.dir / "agent.key")
        assert "in community 'c1'" in status.stdout
        mine = owner_headers(a.dir)
        for who in (a, b):
            wait_until(lambda w=who: settlements_after(a.url, w.agent_hex, closed_at, mine) >= 2,
                       60, f"A holds {who.name}'s settlements after the close", logs=c.logs)
        wait_until(lambda: settlements_after(b.url, a.agent_hex, closed_at,
                                             owner_headers(b.dir)) >= 2,
                   60, "B holds A's settlements after the close", logs=c.logs)
        assert get_json(f"{a.url}/v1/info", headers=mine)["counters"].get(
            "auth_refused:not-member", 0) >= 1
        # a replayed request is refused, however valid it was the first time
        url = f"{a.url}/v1/gossip/heads"
        headers = sign_request(member, "c1", "GET", "/v1/gossip/heads", now_us())
        assert request("GET", url, headers=headers).status == 200
        again = request("GET", url, headers=headers)
        assert again.status == 401 and again.json()["code"] == "replayed"
        # a stale one too
        old = signed_request(member, "c1", "GET", url, time_us=now_us() - 300_000_000)
        assert old.status == 401 and old.json()["code"] == "stale"


def test_an_auditor_key_reads_and_audits_but_cannot_post(tmp_path):
    with Cluster(tmp_path) as c:
        a = c.found("A", extra=["--interval-seconds", INTERVAL_S])
        c.start(a)
        b = c.join("B")
        c.start(b, peers=[a])
        wait_until(lambda: head_seq(a.url, b.agent) >= 0, 30, "A holds B", logs=c.logs)
        key = tmp_path / "auditor.key"
        auditor_hex = picogrid("keygen", key).stdout.strip()
        picogrid("charter", "--dir", a.dir, "--invite-only", "--auditor", auditor_hex)
        wait_until(lambda: charter_of(b.url).get("auditors") == [auditor_hex], 30,
                   "B holds the charter that lists the auditor", logs=c.logs)
        refused = picogrid("audit", b.url, "--admin", a.admin_hex, check=False)
        assert refused.returncode == 2 and "--key" in refused.stdout, refused.stdout
        audit = picogrid("audit", b.url, "--admin", a.admin_hex, "--key", key, check=False)
        assert audit.returncode == 0 and "ALL VALID" in audit.stdout, audit.stdout + audit.stderr
        report = json.loads(picogrid("audit", a.url, "--key", key, "--json").stdout)
        assert report["ok"] is True and len(report["agents"]) == 2
        # a member's key audits as well
        assert picogrid("audit", a.url, "--key", b.dir / "agent.key", check=False).returncode == 0
        auditor = load_identity(key)
        assert signed_request(auditor, "c1", "GET", f"{a.url}/v1/trades").status == 200
        for path in ("/v1/gossip/actions", "/v1/gossip/peers"):
            post = signed_request(auditor, "c1", "POST", a.url + path, b"\x90",
                                  {"Content-Type": "application/msgpack"})
            assert post.status == 403 and post.json()["code"] == "read-only", path
        # the admin takes the key back: it reads no more
        picogrid("charter", "--dir", a.dir, "--remove-auditor", auditor_hex)
        wait_until(lambda: "auditors" not in charter_of(a.url), 30, "the auditor is removed")
        assert signed_request(auditor, "c1", "GET", f"{a.url}/v1/trades").status == 403


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the system's openssl), and its key."""
    openssl = shutil.which("openssl")
    assert openssl, "the HTTPS test needs the openssl command (Debian: apt install openssl)"
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,digitalSignature,keyCertSign"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def add_tls(directory: Path, **table: str) -> None:
    config = directory / "config.toml"
    lines = "".join(f'{k} = "{v}"\n' for k, v in table.items())
    config.write_text(config.read_text() + f"\n[tls]\n{lines}")


def test_a_node_serves_https_and_a_peer_syncs_over_it(tmp_path, monkeypatch):
    cert, key = make_certificate(tmp_path)
    with Cluster(tmp_path) as c:
        a = c.found("A")
        add_tls(a.dir, cert=str(cert), key=str(key))
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # this test's own clients trust it
        https = a.url.replace("http://", "https://")
        c.procs.append(start(a, wait=False))
        wait_until(lambda: get_json(f"{https}/v1/info", timeout=2), 30, "A serves HTTPS",
                   logs=c.logs)
        assert get_json(f"{https}/v1/info")["url"] == https  # announced as https
        with pytest.raises(OSError):  # no plain HTTP beside it
            request("GET", f"{a.url}/v1/info", timeout=5)
        # `init --join https://...` fetches the charter over TLS
        b = init_agent(tmp_path, "B", join=https, admin=a.admin_hex)
        add_tls(b.dir, ca=str(cert))  # B's node trusts exactly this CA for its peers
        c.start(b, peers=[https])
        wait_until(lambda: head_seq(b.url, a.agent) >= 0, 30, "B pulled A over HTTPS",
                   logs=c.logs)
        wait_until(lambda: head_seq(https, b.agent) >= 0, 30, "A holds B", logs=c.logs)
        monkeypatch.delenv("SSL_CERT_FILE")
        audit = picogrid("audit", https, "--ca", cert, check=False)
        assert audit.returncode == 0 and "ALL VALID" in audit.stdout, audit.stdout
        untrusted = picogrid("audit", https, check=False)  # verified by default: refused
        assert untrusted.returncode == 2 and "certificate" in untrusted.stdout.lower(), \
            untrusted.stdout


@pytest.mark.parametrize("table, message", [
    ({"cert": "missing.pem", "key": "missing.pem"}, "no such file"),
    ({"cert": "config.toml"}, "both cert and key"),
])
def test_a_wrong_tls_table_stops_the_node_with_a_clear_error(tmp_path, table, message):
    with Cluster(tmp_path) as c:
        a = c.found("A")
        add_tls(a.dir, **table)
        run = picogrid("run", "--dir", a.dir, check=False, timeout=60)
        assert run.returncode == 2 and message in run.stderr, run.stderr
