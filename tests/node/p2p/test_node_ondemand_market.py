"""Another grid's market on demand, on real processes: the kit (7 `picogrid run` nodes, grid
"kit") trades; a node of grid "g9" that keeps its own grid only (`replicate = "grid"`) serves
the kit's settled interval as the kit's own nodes do, `picogrid audit --grid kit` against it
recomputes the kit's settlements, and `picogrid export --grid kit` from its directory gives
the trades a kit node's own export gives, while its own store still holds the kit's geneses
only."""

from __future__ import annotations

import json
import time

import pytest
from nodemarket import Kit
from nodeproc import get_json, head_seq, init_agent, picogrid, start, wait_until

from node.cli import launcher
from node.config import load_config

SAME = ("interval", "grid", "book", "trades", "settlements", "readings", "views", "agents")


def export(directory, k: int) -> dict:
    done = picogrid("export", "--dir", directory, "--grid", "kit", "--format", "json",
                    "--from", str(k), "--to", str(k), timeout=120)
    return json.loads(done.stdout)


@pytest.mark.timeout(400)
def test_a_node_of_another_grid_serves_audits_and_exports_the_kits_market(tmp_path):
    with Kit(tmp_path / "kit", interval_s=4) as kit:
        outside = init_agent(tmp_path, "Outside", grid="g9", community=launcher.COMMUNITY,
                             join=kit.urls[0], extra=["--new-grid"])
        cfg = load_config(outside.dir)
        cfg.replicate = "grid"
        cfg.save()
        proc = start(outside, peers=kit.urls[:2], round_ms=300)
        try:
            k = kit.next_interval()
            theirs = kit.final(k, nodes=[0])[0]
            assert theirs["trades"], "the kit traded nothing in the interval"
            members = [bytes.fromhex(a) for a in theirs["agents"]]

            def ready() -> bool:
                peers = [p for p in get_json(f"{outside.url}/v1/info")["peers"] if p["proven"]]
                return len(peers) >= 2 and all(head_seq(outside.url, a) == 0 for a in members)

            wait_until(ready, 60, "Outside knows kit peers and holds the kit's geneses",
                       logs=proc.logs)
            ours = get_json(f"{outside.url}/v1/intervals/{k}?grid=kit", 30)
            assert {key: ours[key] for key in SAME} == {key: theirs[key] for key in SAME}
            assert all(head_seq(outside.url, a) == 0 for a in members)  # geneses only, still

            audit = picogrid("audit", outside.url, "--grid", "kit", "--json", check=False,
                             timeout=300)
            report = json.loads(audit.stdout)
            assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-3000:]
            assert {a["agent"] for a in report["agents"]} == {a.hex() for a in members}
            assert report["market"]["settlements_checked"] >= len(members)

            # (readings of k may still be arriving at either node: bills move with them, so the
            # two exports are compared until they agree, for a bounded time)
            deadline = time.monotonic() + 60
            while True:
                mine, reference = export(outside.dir, k), export(kit.nodes[0].dir, k)
                if mine["agents"] == reference["agents"] or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert mine["trades"] and mine["trades"] == reference["trades"]
            assert mine["agents"] == reference["agents"]
        finally:
            proc.stop_quietly()
