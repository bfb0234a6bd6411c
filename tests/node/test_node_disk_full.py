"""A full disk, on real `picogrid run` processes: one node's data directory is a small tmpfs.

Two agents of the default kit trade at demo pace. Right after the consumer signed its bid for an
interval, its disk is filled to the last byte: its settlement of that interval cannot be signed.
While the disk is full the node says so (a 503 with a JSON body to a peer's push, the flag in
/v1/info and /metrics, a log line a minute rather than a traceback a second); once space is freed
it signs the settlement it owes, and the readings it kept.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from pathlib import Path

import pytest
from nodehttp import get_json, get_msgpack, heads, post_msgpack, request

from market.scenario import default_scenario
from node.cli import launcher
from node.cli.processes import run_argv, spawn, stop_processes

INTERVAL_S = 2
FULL = "Home 1"  # the consumer: it bids in every interval

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a small tmpfs for the data directory needs root"
)


def wait_for(predicate, timeout: float, what: str, logs=lambda: ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # not yet
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last error {last!r}\n{logs()}")


def chain(url: str, agent: str, start: int = 0) -> list[dict]:
    """An agent's chain from `start`, as the node serves it."""
    out: list[dict] = []
    nxt: int | None = start
    while nxt is not None:
        page = get_json(f"{url}/v1/agents/{agent}/chain?from={nxt}&limit=1000")
        out += page["actions"]
        nxt = page["next"]
    return out


def metric(url: str, name: str) -> float:
    text = request("GET", url + "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def fill(directory: Path) -> Path:
    """Write zeros into `directory` until its file system has no byte left."""
    path = directory / "filler"
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return path


@pytest.fixture
def kit(tmp_path):
    full_dir = tmp_path / launcher.slug(FULL)
    full_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(full_dir)],
                   check=True)
    kit = default_scenario()
    scenario = dataclasses.replace(
        kit, agents=tuple(a for a in kit.agents if a.name in (FULL, "Home solar")))
    port = launcher.free_port_run(2)
    nodes = launcher.prepare(tmp_path, scenario, port, INTERVAL_S, "merit-order",
                             start_in_s=3.0, first_interval=10, round_ms=300)
    try:
        for node in nodes:
            node.proc = spawn(run_argv(node.dir), tmp_path / f"{node.dir.name}.log")
        assert not launcher.wait_ready(nodes), "nodes did not start"
        yield {n.name: n for n in nodes}, tmp_path
    finally:
        stop_processes([n.proc for n in nodes if n.proc is not None])
        subprocess.run(["umount", "-l", str(full_dir)], check=False)


def test_a_full_disk_is_named_and_signing_resumes_once_space_returns(kit):
    nodes, tmp = kit
    node, other = nodes[FULL], nodes["Home solar"]
    log_path = tmp / f"{node.dir.name}.log"

    def logs() -> str:
        return log_path.read_text()[-4000:]

    agent = get_json(node.url + "/v1/info")["agent"]

    def just_bid() -> int | None:  # the interval it bid for and has not settled yet
        actions = chain(node.url, agent)
        last = actions[-1]
        settled = {a["payload"]["interval"] for a in actions if a["type"] == "settlement"}
        if last["type"] == "bid" and last["payload"]["interval"] not in settled:
            return last["payload"]["interval"]
        return None

    k = wait_for(just_bid, 40, "a bid not settled yet", logs)
    filler = fill(node.dir)
    wait_for(lambda: get_json(node.url + "/v1/info")["disk"]["full"], 20, "the disk-full flag",
             logs)
    assert metric(node.url, "picogrid_disk_full") == 1
    assert metric(node.url, "picogrid_disk_full_errors_total") >= 1
    time.sleep(4 * INTERVAL_S)  # settlements and readings fail, pushes from the peer too
    settled = [a for a in chain(node.url, agent) if a["type"] == "settlement"]
    assert k not in {a["payload"]["interval"] for a in settled}

    # A peer's push: 503 with a JSON body, not a reason code of the peer's actions.
    other_agent = bytes.fromhex(get_json(other.url + "/v1/info")["agent"])
    wait_for(lambda: heads(other.url)[other_agent][0] > heads(node.url).get(other_agent,
                                                                          [-1])[0],
             20, "the peer signing what the full node cannot store", logs)
    start = heads(node.url).get(other_agent, [-1])[0] + 1
    items = get_msgpack(f"{other.url}/v1/gossip/chain/{other_agent.hex()}?from={start}")
    answer = post_msgpack(node.url + "/v1/gossip/actions", items)
    assert answer.status == 503, answer.body
    body = answer.json()
    assert body["error"] == "disk-full" and "send it again later" in body["message"]
    assert answer.headers.get("retry-after") == "30"
    info = get_json(node.url + "/v1/info")
    assert info["disk"]["full"] and info["disk"]["refused_writes"] >= 2
    assert info["counters"].get("rejected:bad-encoding", 0) == 0

    # The log says it once (a minute at most), without a traceback.
    text = log_path.read_text()
    assert "Traceback" not in text, text[-4000:]
    said = [line for line in text.splitlines() if "disk error" in line]
    assert 1 <= len(said) <= 2, "\n".join(said)

    filler.unlink()  # space returns: the node signs again, and says what it could not sign
    # Protocol 2: a settlement counts only when signed by the interval's final deadline (gate +
    # 4 x grace), which passed while the disk was full; the node names the interval it could not
    # settle (never signs a settlement that would not count) and settles the next ones.
    def settled_after() -> bool:
        return any(a["payload"]["interval"] > k for a in chain(node.url, agent)
                   if a["type"] == "settlement")
    wait_for(settled_after, 30, f"a settlement after interval {k}, once space returned", logs)
    owed = {a["payload"]["interval"] for a in chain(node.url, agent) if a["type"] == "settlement"}
    # (named in /v1/info: the log holds back a second "short error" line within a minute)
    abstained = get_json(node.url + "/v1/info")["settlement"]["abstained"]
    assert k in owed or str(k) in abstained, (abstained, logs())
    wait_for(lambda: not get_json(node.url + "/v1/info")["disk"]["full"], 10,
             "the flag going down", logs)
    assert metric(node.url, "picogrid_disk_full") == 0
    # Nor is the reading of interval k lost (kept by the journal, or signed after the settlement).
    wait_for(lambda: k in {a["payload"]["interval"] for a in chain(node.url, agent)
                           if a["type"] == "reading"}, 20, f"the reading of interval {k}", logs)
    # The peer gets what the node signed meanwhile, and the node what the peer signed.
    me = bytes.fromhex(agent)
    wait_for(lambda: heads(other.url).get(me) == heads(node.url).get(me), 60,
             "the peer holding the node's chain again", logs)
    wait_for(lambda: heads(node.url).get(other_agent) is not None
             and heads(node.url)[other_agent][0] >= heads(other.url)[other_agent][0] - 3,
             60, "the node catching up with the peer", logs)
    assert "Traceback" not in log_path.read_text()
