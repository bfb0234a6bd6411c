"""The `picogrid` commands as users run them: init, join, status, audit, run (SIGTERM), and the
promise that keys never show up in logs or API answers."""

from __future__ import annotations

import json
import signal
import stat
import threading
import time
import tomllib

from nodeproc import (
    Author,
    free_port,
    get_json,
    head_seq,
    init_agent,
    picogrid,
    post_actions,
    request,
    wait_until,
)

from ledger.charter import parse_charter
from ledger.store import Store


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_founds_with_private_keys_and_refuses_to_overwrite(tmp_path):
    a = init_agent(tmp_path, "A", role="storage", capacity_wh=4000)
    assert mode(a.dir / "agent.key") == 0o600 and mode(a.dir / "admin.key") == 0o600
    cfg = a.config()
    assert cfg["agent"]["role"] == "storage" and cfg["agent"]["capacity_wh"] == 4000
    assert cfg["community"]["name"] == "c1" and len(cfg["community"]["admin"]) == 64
    store = Store(a.dir / "store.sqlite3")
    try:
        assert [row["name"] for row in store.agents()] == ["A"]
        assert len(store.charters()) == 1
    finally:
        store.close()
    keys = {p: p.read_bytes() for p in (a.dir / "agent.key", a.dir / "admin.key")}
    again = picogrid(
        "init",
        "--dir",
        a.dir,
        "--name",
        "A2",
        "--role",
        "consumer",
        "--household",
        "h",
        "--grid",
        "g1",
        "--community",
        "c1",
        check=False,
    )
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    assert {p: p.read_bytes() for p in keys} == keys
    assert a.config() == cfg
    (a.dir / "config.toml").unlink()  # even without a config, an existing key is not replaced
    again = picogrid(
        "init",
        "--dir",
        a.dir,
        "--name",
        "A2",
        "--role",
        "consumer",
        "--household",
        "h",
        "--grid",
        "g1",
        "--community",
        "c1",
        check=False,
    )
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    assert {p: p.read_bytes() for p in keys} == keys


def test_join_checks_the_url_and_the_community(cluster, tmp_path):
    a = cluster.found("A")
    cluster.start(a)
    b = cluster.join("B")  # init --join: key 0600, no admin key, the admin pinned
    assert mode(b.dir / "agent.key") == 0o600 and not (b.dir / "admin.key").exists()
    assert b.admin_hex == a.admin_hex and b.config()["node"]["peers"] == [a.url]
    other = cluster.found("Other")  # a second, unrelated community of the same name
    dead = f"http://127.0.0.1:{free_port()}"
    for url, message in (
        (dead, "nothing answers at"),
        (other.url, "is the node running there"),
        ("not-a-url", "a URL starts with http://"),
    ):
        done = picogrid("join", "--dir", b.dir, url, check=False)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    cluster.start(other)
    done = picogrid("join", "--dir", b.dir, other.url, check=False)
    assert done.returncode == 2 and "admin key" in done.stderr
    c = cluster.join("C")
    cluster.start(c, peers=[a])
    done = picogrid("join", "--dir", b.dir, c.url)
    assert "added" in done.stdout
    assert tomllib.loads((b.dir / "config.toml").read_text())["node"]["peers"] == [a.url, c.url]
    assert "already a peer" in picogrid("join", "--dir", b.dir, c.url).stdout
    unreachable = picogrid(
        "init",
        "--dir",
        tmp_path / "z",
        "--name",
        "Z",
        "--role",
        "consumer",
        "--household",
        "z",
        "--grid",
        "g1",
        "--community",
        "c1",
        "--join",
        dead,
        "--yes",
        check=False,
    )
    assert unreachable.returncode == 2 and "cannot fetch the charter" in unreachable.stderr


def test_status_shows_peers_lag_and_heights(cluster):
    a = cluster.found("A")
    cluster.start(a)
    b = cluster.join("B")
    cluster.start(b, peers=[a])
    author = Author(name="Zed")
    post_actions(a.url, author.extend(12))
    wait_until(lambda: head_seq(b.url, author.agent) == 11, 10, "B holds Zed's chain")
    wait_until(lambda: get_json(f"{b.url}/v1/info")["peers"][0]["lag"] == 0, 10, "lag measured")
    out = picogrid("status", b.url).stdout
    lines = out.splitlines()
    assert lines[0].startswith("B (consumer, grid g1) in community 'c1'")
    header = next(line for line in lines if line.startswith("peer "))
    assert "we lack" in header and "they lack" in header
    peer_row = next(line for line in lines if line.startswith(a.url))
    assert a.agent_hex[:16] in peer_row and " yes " in peer_row
    zed = next(line for line in lines if line.startswith("Zed "))
    assert zed.split()[1] == author.agent_hex[:16] and zed.split()[4] == "12"
    down = picogrid("status", f"http://127.0.0.1:{free_port()}", check=False)
    assert down.returncode == 2 and "cannot reach" in down.stdout


def test_audit_exit_codes(cluster):
    a = cluster.found("A")
    cluster.start(a)
    post_actions(a.url, Author(name="fine").extend(5))
    done = picogrid("audit", a.url)
    assert done.returncode == 0 and "ALL VALID" in done.stdout
    report = json.loads(picogrid("audit", a.url, "--json").stdout)
    assert report["ok"] and report["community"] == "c1" and len(report["agents"]) == 2
    pinned = picogrid("audit", a.url, "--admin", Author().agent_hex, "--json", check=False)
    assert pinned.returncode == 1 and "charter refused" in json.loads(pinned.stdout)["error"]
    down = picogrid("audit", f"http://127.0.0.1:{free_port()}", check=False)
    assert down.returncode == 2 and "unreachable" in down.stdout
    assert picogrid("audit", "localhost:1", check=False).returncode == 2


def test_run_stops_cleanly_on_sigterm_and_sigint(cluster):
    a = cluster.found("A")
    proc = cluster.start(a)
    author = Author(name="busy")
    actions = author.extend(3000)
    post_actions(a.url, actions[:1000])
    post_actions(a.url, actions[1000:2000])
    answers: list = []

    def last_batch() -> None:  # in flight when the node is told to stop
        try:
            answers.append(post_actions(a.url, actions[2000:]))
        except (OSError, AssertionError) as exc:
            answers.append(exc)

    writer = threading.Thread(target=last_batch)
    writer.start()
    time.sleep(0.05)
    proc.popen.send_signal(signal.SIGTERM)
    writer.join(30)
    assert proc.popen.wait(15) == 0
    assert "stopped" in (a.dir / "run.err").read_text()
    store = Store(a.dir / "store.sqlite3")
    try:
        assert store.integrity_problems() == []
        head = store.head(author.agent).seq
    finally:
        store.close()
    # A batch is all or nothing; one the node acknowledged is on disk.
    assert head in (1999, 2999)
    if isinstance(answers[0], dict):
        assert answers[0]["accepted"] == 1000 and head == 2999
    missing = actions[head + 1 :]
    proc = cluster.start(a)
    if missing:  # the batch the stop interrupted, sent again
        post_actions(a.url, missing)
    assert head_seq(a.url, author.agent) == 2999
    proc.popen.send_signal(signal.SIGINT)
    assert proc.popen.wait(15) == 0
    busy = cluster.start(cluster.found("B"))
    clash = picogrid("run", "--dir", a.dir, "--listen", f"127.0.0.1:{busy.agent.port}", check=False)
    assert clash.returncode == 2 and "cannot listen" in clash.stderr


def test_keys_never_appear_in_logs_or_answers(cluster):
    a = cluster.found("A")
    founded = picogrid("status", "http://127.0.0.1:1", check=False)  # nothing, just output
    cluster.start(a, verbose=True)
    b = cluster.join("B")
    cluster.start(b, peers=[a], verbose=True)
    picogrid("charter", "--dir", a.dir, "--grid", "g1", "--retail", "29000")
    wait_until(lambda: get_json(f"{b.url}/v1/info")["charter_version"] == 2, 10, "charter")
    secrets = {}
    for agent in (a, b):
        secrets[agent.dir / "agent.key"] = (agent.dir / "agent.key").read_text().strip()
    secrets[a.dir / "admin.key"] = (a.dir / "admin.key").read_text().strip()
    a_id = a.agent_hex
    bodies = [founded.stdout, founded.stderr]
    for node in (a, b):
        for path in (
            "/v1/info",
            "/v1/agents",
            f"/v1/agents/{a_id}",
            f"/v1/agents/{a_id}/chain",
            f"/v1/agents/{a_id}/audit",
            "/v1/community",
            "/v1/community/charter",
            "/v1/openapi.json",
            "/v1/gossip/heads",
            "/v1/gossip/peers",
            f"/v1/gossip/chain/{a_id}",
        ):
            resp = request("GET", node.url + path)
            assert resp.status == 200, path
            bodies.append(resp.body)
        for command in (["status", node.url], ["audit", node.url, "--json"]):
            done = picogrid(*command, verbose=True)
            bodies += [done.stdout, done.stderr]
    cluster.close()  # the stop is logged too
    for node in (a, b):
        for name in ("run.out", "run.err"):
            bodies.append((node.dir / name).read_text())
    assert any("listening" in str(body) for body in bodies)  # the logs are there
    for path, seed_hex in secrets.items():
        seed = bytes.fromhex(seed_hex)
        for body in bodies:
            raw = body if isinstance(body, bytes) else body.encode()
            assert seed_hex.encode() not in raw.lower(), path
            assert seed not in raw, path


def test_charter_numbers_beyond_64_bits_are_refused_before_signing(cluster):
    # Refused with a clear message and exit 2, before anything is signed or published: no node
    # would take such a charter (PROTOCOL integers are signed 64 bits).
    a = cluster.found("A")
    for value in (2**63, 2**64 - 1, 2**64):
        done = picogrid("charter", "--dir", a.dir, "--grid", "g1", "--retail", str(value),
                        check=False)
        assert done.returncode == 2, done.stderr
        assert "64" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(Store(a.dir / "store.sqlite3").charters()) == 1


def test_charter_sets_protocol_2_deadlines_and_grid_limits(cluster):
    # The admin changes the view and final deadlines and a grid's limits; the next version holds
    # them, signed, and a negative limit is refused before anything is signed.
    a = cluster.found("A")
    grace = parse_charter(Store(a.dir / "store.sqlite3").charters()[-1]).grace_ms
    view, final = 3 * grace, 6 * grace
    done = picogrid("charter", "--dir", a.dir, "--set", f"view_ms={view}",
                    "--set", f"final_ms={final}",
                    "--grid", "g1", "--max-order-wh", "5000", "--max-price", "90000")
    assert done.returncode == 0, done.stderr
    signed = Store(a.dir / "store.sqlite3").charters()
    assert len(signed) == 2
    newest = parse_charter(signed[-1])
    assert (newest.view_ms, newest.final_ms) == (view, final)
    assert (newest.grids["g1"].max_order_wh, newest.grids["g1"].max_price) == (5000, 90000)
    refused = picogrid("charter", "--dir", a.dir, "--grid", "g1", "--max-order-wh", "-1",
                       check=False)
    assert refused.returncode == 2 and "limits must be >= 0" in refused.stderr, refused.stderr
