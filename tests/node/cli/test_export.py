"""`picogrid export` against the store of a short real run: three in-process nodes trade a few
one-second intervals, then the real command line exports what one node's store holds, and the
rows must be what the node's own API functions (`trades_in`, `bill_json`) compute."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from nodeinproc import HOME1, HOME2, SOLAR, community, eventually, start_all

from node.config import load_config
from node.http.market_routes import bill_json, trades_in
from node.node import Node

PICOGRID = str(Path(sys.executable).with_name("picogrid"))


def export(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [PICOGRID, "export", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def traded(tmp_path_factory) -> Path:
    """The data directory of Home 1 after a few settled and metered intervals (nodes stopped)."""
    root = tmp_path_factory.mktemp("export")
    cfgs = community(root, [HOME1, SOLAR, HOME2])
    for cfg in cfgs:
        cfg.save()

    async def run() -> None:
        nodes = await start_all(cfgs)
        try:
            home = nodes[0]
            # Three metered intervals with three trades among them: under load an interval can
            # go unsettled (its views late), so readings alone do not promise the trades.
            def traded_enough() -> bool:
                if home.metrics["readings_signed"] < 3:
                    return False
                frm, to = held_range(home)
                return len(trades_in(home, "kit", frm, to, None)) >= 3

            await eventually(traded_enough, 60, "three metered intervals and three trades")
            # the store can be exported while its node runs (SQLite readers beside the writer)
            proc = await asyncio.create_subprocess_exec(
                PICOGRID,
                "export",
                "--dir",
                str(cfgs[0].dir),
                "--format",
                "json",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await proc.communicate()
            assert proc.returncode == 0, err
            assert json.loads(out)["trades"]
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(run())
    return cfgs[0].dir


@pytest.fixture
def reference(traded):
    """The node itself (not started), as the API functions take it."""
    node = Node(load_config(traded))
    yield node
    node.journal.close()
    node.store.close()


def held_range(node) -> tuple[int, int]:
    held = node.store.intervals(node.cfg.grid)
    return held[0], held[-1]


def test_csv_has_one_row_per_trade_with_its_status(traded, reference):
    proc = export("--dir", str(traded), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    frm, to = held_range(reference)
    expected = trades_in(reference, "kit", frm, to, None)
    assert len(rows) == len(expected) >= 3
    for row, want in zip(rows, expected, strict=True):
        for key in ("seller_name", "buyer_name", "status", "seller", "buyer", "offer", "bid"):
            assert row[key] == str(want[key]), key
        for key in ("interval", "energy_wh", "price"):
            assert int(row[key]) == want[key], key
        assert row["start_utc"].endswith("Z")
    # `failed` too: a short run can leave an interval one counterparty did not settle in time
    assert {r["status"] for r in rows} <= {"confirmed", "disputed", "pending", "failed"}
    assert any(r["status"] == "confirmed" for r in rows)
    assert f"{len(rows)} trade(s)" in proc.stderr  # the summary goes to stderr, not the data


def test_json_has_trades_and_bills_per_agent(traded, reference):
    frm, to = held_range(reference)
    proc = export("--dir", str(traded), "--format", "json", "--from", str(frm), "--to", str(to))
    doc = json.loads(proc.stdout)
    assert (doc["grid"], doc["from"], doc["to"]) == ("kit", frm, to)
    assert [t["offer"] for t in doc["trades"]] == [
        t["offer"] for t in trades_in(reference, "kit", frm, to, None)
    ]
    names = {a["name"] for a in doc["agents"]}
    assert names == {"Home 1", "Home 2", "Community solar"}
    billed = 0
    for entry in doc["agents"]:
        agent = bytes.fromhex(entry["agent"])
        assert entry["bill"] == bill_json(reference, agent, "kit", frm, to)
        assert [t["offer"] for t in entry["trades"]] == [
            t["offer"] for t in trades_in(reference, "kit", frm, to, agent)
        ]
        billed += len(entry["bill"]["intervals"])
    assert billed >= 3


def test_one_agent_to_a_file(traded, reference, tmp_path):
    frm, to = held_range(reference)
    home = reference.identity.agent
    out = tmp_path / "home1.json"
    proc = export(
        "--dir", str(traded), "--format", "json", "--agent", home.hex(), "--output", str(out)
    )
    assert proc.stdout == ""
    doc = json.loads(out.read_text())
    assert [a["agent"] for a in doc["agents"]] == [home.hex()]
    assert doc["agents"][0]["bill"] == bill_json(reference, home, "kit", frm, to)
    assert doc["trades"] and all(home.hex() in (t["seller"], t["buyer"]) for t in doc["trades"])
    assert str(out) in proc.stderr


def test_a_long_range_reports_progress_on_stderr(traded, reference):
    frm, to = held_range(reference)
    proc = export("--dir", str(traded), "--format", "csv", "--from", str(to - 99), "--to", str(to))
    assert "export: interval" in proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == len(trades_in(reference, "kit", frm, to, None))  # nothing before frm


def test_mistakes_are_usage_errors(traded, tmp_path):
    demo = tmp_path / "demo"  # a demo's --dir: one agent per subfolder
    for name in ("home-1", "home-battery"):
        (demo / name).mkdir(parents=True)
        (demo / name / "config.toml").write_text((traded / "config.toml").read_text())
    cases = [
        (["--dir", str(demo)], f"holds 2 agents, one per subfolder (home-1, home-battery); "
                               f"give one of them, like --dir {demo / 'home-1'}"),
        (["--dir", str(tmp_path)], "not a PicoGrid node directory"),
        (["--dir", str(traded), "--from", "5", "--to", "4"], "--from is after --to"),
        (["--dir", str(traded), "--agent", "ab" * 32], "no agent"),
        (["--dir", str(traded), "--agent", "xyz"], "error"),
    ]
    for args, message in cases:
        proc = export(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert proc.stdout == ""
