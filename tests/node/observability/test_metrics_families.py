"""`GET /metrics` read back by prometheus_client's own parser: every family docs/observability.md
lists, with its type and labels, and nothing else; each in-process node answers from its own
registry (two nodes share this process, as they share the test run)."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
from nodeinproc import HOME1, SOLAR, community, eventually
from prometheus_client.parser import text_string_to_metric_families

from node.node import Node

DOC = Path(__file__).resolve().parents[3] / "docs" / "observability.md"
ROW = re.compile(r"^\| `(picogrid_\w+)` \| (gauge|counter) \|([^|]*)\|")
ONLY_WITH_INFLUX = "picogrid_influx_"


def documented() -> dict[str, tuple[str, set[str], set[str] | None]]:
    """The /metrics table of the doc, by the family name the parser gives (a counter's without
    `_total`): its type, its label names, and its label's values when the doc lists them."""
    table = {}
    for line in DOC.read_text().splitlines():
        row = ROW.match(line)
        if row is None:
            continue
        name, kind, labels = row.group(1), row.group(2), row.group(3).strip()
        values = None
        if "=" in labels:
            label, listed = labels.split("=", 1)
            names = {label.strip()}
            values = {v.strip() for v in listed.split(",")}
        else:
            names = {n.strip() for n in labels.split(",") if n.strip()}
        family = name.removesuffix("_total") if kind == "counter" else name
        assert kind != "counter" or name.endswith("_total"), name
        table[family] = (kind, names, values)
    assert len(table) >= 40, "the doc's /metrics table was not found"
    return table


async def scrape(url: str) -> dict:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await resp.text()
    families = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f"{family.name} twice"
        families[family.name] = family
    return families


async def test_every_documented_family_parses_with_its_type_and_labels(tmp_path):
    cfgs = community(tmp_path, [HOME1, SOLAR])
    nodes: list[Node] = []
    try:
        for cfg in cfgs:
            nodes.append(Node(cfg))
            await nodes[-1].start()
        await eventually(
            lambda: all(
                n.agent.last_settled is not None
                and all(p.lag is not None and p.behind is not None and p.last_ok > 0
                        and p.clock_offset_us is not None for p in n.peers.all())
                for n in nodes
            ),
            20,
            "both nodes settled an interval and compared with each other",
        )
        docs = documented()
        for node, cfg, other in ((nodes[0], cfgs[0], cfgs[1]), (nodes[1], cfgs[1], cfgs[0])):
            settled_before = node.agent.last_settled
            families = await scrape(cfg.url)
            # no exporter configured: the InfluxDB families are the only ones left out
            expected = {f for f in docs if not f.startswith(ONLY_WITH_INFLUX)}
            assert set(families) == expected, set(families) ^ expected
            for name, family in families.items():
                kind, labels, values = docs[name]
                assert family.type == kind, name
                assert family.samples, f"{name} has no sample"
                sample_name = name + "_total" if kind == "counter" else name
                for sample in family.samples:  # no `_created`, no other suffix
                    assert sample.name == sample_name, sample
                    assert set(sample.labels) == labels, sample
                if values is not None:
                    (label,) = labels
                    assert {s.labels[label] for s in family.samples} == values, name
            # this node's own registry: its identity, its peer, not the other node's
            (info,) = families["picogrid_info"].samples
            assert info.labels["name"] == cfg.name
            assert info.labels["agent"] == node.identity.agent_hex
            assert info.value == 1
            (lag,) = families["picogrid_peer_lag"].samples
            assert lag.labels["peer"] == other.url
            (settled,) = families["picogrid_last_settled_interval"].samples
            assert settled.value >= settled_before
    finally:
        for node in nodes:
            await node.stop()
