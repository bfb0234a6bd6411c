"""Another grid's chains fetched on demand, between real `picogrid run` processes on 127.0.0.1.

Every node keeps its own grid only (`replicate = "grid"`). A node of grid g1 asked for a chain
of grid g2 fetches it from g2's nodes, verified, answers it, and keeps it out of its own store
(its heads still show the genesis only); `picogrid audit` of that agent against the g1 node
verifies the whole chain; when one g2 node is gone the other serves; when both are gone the
node answers 503 naming the grid, and the audit says so.
"""

from __future__ import annotations

import json

from nodeproc import (
    Author,
    Cluster,
    get_json,
    head_seq,
    picogrid,
    post_actions,
    request,
    wait_until,
)

from node.config import load_config


def scoped(agent) -> None:
    cfg = load_config(agent.dir)
    cfg.replicate = "grid"
    cfg.save()


def chain_of(url: str, author: Author) -> list[dict]:
    """Every action of `author`'s chain as the node's JSON API serves it, page by page."""
    out: list[dict] = []
    start: int | None = 0
    while start is not None:
        page = get_json(f"{url}/v1/agents/{author.agent_hex}/chain?from={start}&limit=1000", 15)
        out += page["actions"]
        start = page["next"]
    return out


def knows_live(url: str, *others) -> bool:
    peers = {p["url"]: p for p in get_json(f"{url}/v1/info")["peers"]}
    return all(o.url in peers and peers[o.url]["proven"] for o in others)


def test_a_node_serves_another_grids_chain_fetched_from_that_grid(cluster: Cluster) -> None:
    a = cluster.found("A", grid="g1")
    scoped(a)
    cluster.start(a)
    b1 = cluster.join("B1", grid="g2", extra=["--new-grid"])
    b2 = cluster.join("B2", grid="g2", extra=["--new-grid"])
    scoped(b1)
    scoped(b2)
    p1, p2 = cluster.start_many([b1, b2], peers=[a])
    x = Author(grid="g2", name="x")
    post_actions(b1.url, x.extend(40))
    wait_until(lambda: head_seq(b2.url, x.agent) == 39, 20, "B2 holds x's chain",
               logs=cluster.logs)
    wait_until(lambda: head_seq(a.url, x.agent) == 0 and knows_live(a.url, b1, b2), 30,
               "A holds x's genesis and knows B1 and B2", logs=cluster.logs)

    served = chain_of(a.url, x)
    assert [s["hash"] for s in served] == [act.hash.hex() for act in x.actions]
    assert head_seq(a.url, x.agent) == 0  # not in its own store, not announced to peers
    info = get_json(f"{a.url}/v1/info")
    assert info["replicate"] == "grid" and "g2" in info["fetched"]
    assert info["counters"]["ondemand_fetches"] >= 1
    trades = get_json(f"{a.url}/v1/trades?grid=g2&format=json", 15)
    assert trades["grid"] == "g2" and trades["trades"] == []  # g2 has no market
    assert get_json(f"{a.url}/v1/summary?grid=g2", 15)["grid"] == "g2"

    audit = picogrid("audit", a.url, "--agent", x.agent_hex, "--json", check=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    report = json.loads(audit.stdout)
    assert report["ok"] and [(r["status"], r["length"]) for r in report["agents"]] == \
        [("valid", 40)]

    # B1 goes; what B2 holds is still served, new actions included.
    assert p1.terminate() == 0
    post_actions(b2.url, x.extend(5))
    wait_until(lambda: len(chain_of(a.url, x)) == 45, 30, "A serves x's 45 actions from B2",
               logs=cluster.logs)

    # B2 goes too: no node of g2 answers, and the node says so (503, the grid named).
    assert p2.terminate() == 0

    def refused() -> dict | None:
        answer = request("GET", f"{a.url}/v1/agents/{x.agent_hex}/chain", timeout=15)
        return answer.json() if answer.status == 503 else None

    body = wait_until(refused, 30, "A answers 503 for g2", logs=cluster.logs)
    assert body["grid"] == "g2" and body["reason"] == "no-peer" and "g2" in body["error"]
    summary = request("GET", f"{a.url}/v1/summary?grid=g2", timeout=15)
    assert summary.status == 503 and summary.json()["grid"] == "g2"
    assert request("GET", f"{a.url}/v1/summary", timeout=15).status == 200  # its own grid as ever
    audit = picogrid("audit", a.url, "--agent", x.agent_hex, check=False)
    assert audit.returncode == 2 and "g2" in audit.stdout, audit.stdout + audit.stderr
