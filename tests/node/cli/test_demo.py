"""`picogrid demo` as a user runs it: a real process that starts seven real node processes.

Each test runs the demo command in its own session (as a terminal runs a foreground job) and
talks to it only as a user would: its output, its exit code, Ctrl-C (SIGINT to its process
group), the HTTP API of its nodes while it runs, and the data directories it leaves behind.
Every test checks that no process of its demo outlives it. The demo as a process is
`tests/nodedemo.py`; the `run_demo` fixture (tests/conftest.py) kills whatever a test left.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from nodedemo import (
    SUMMARY,
    Demo,
    alive,
    first_interval,
    get_json,
    own_settled_intervals,
    processes_mentioning,
)

from ledger.charter import parse_charter
from ledger.store import Store
from market.scenario import day_scenario, default_scenario
from node.cli.launcher import free_port_run
from node.config import load_config

KIT = [spec.name for spec in default_scenario().agents]
CURVE = default_scenario().agents[-1].generation_curve
KIT_SOLAR_SCALE = sum(a.generation_scale for a in default_scenario().agents)  # 150 + 600


def kit_demand_wh(hour: int) -> int:
    """The three homes' demand in `hour` of the demo's day (the documented daily profile)."""
    return sum(a.consumption_wh[hour] for a in day_scenario().agents if a.role == "consumer")


STOP_WITHIN_S = 15

# A PicoGrid of four agents whose day is two intervals long: without --intervals the demo runs
# the day, then keeps serving until Ctrl-C.
SMALL_SCENARIO = """\
name = "Two houses"
mechanism = "merit-order"
intervals = 2
generation_curve = [0, 0, 0, 0, 0, 0, 2, 3, 4, 7, 9, 10, 10, 10, 10, 9, 9, 7, 4, 1, 0, 0, 0, 0]

[[agents]]
name = "Cottage"
role = "consumer"
household = "cottage"
consumption_wh = 300

[[agents]]
name = "Farmhouse"
role = "consumer"
household = "farm"
consumption_wh = 900

[[agents]]
name = "Barn roof"
role = "generator"
household = "farm"
generation_scale = 100

[[agents]]
name = "Village battery"
role = "storage"
household = "community"
capacity_wh = 5000
max_power_w = 2000
"""


# -- (a) a run that ends by itself ----------------------------------------------------------------


def test_demo_runs_three_intervals_and_exits_cleanly(run_demo, tmp_path):
    port = free_port_run(7)
    launched = time.monotonic()
    demo = run_demo(
        "--intervals",
        "3",
        "--port",
        str(port),
        "--dir",
        str(tmp_path / "demo"),
    )
    demo.wait_output("dashboard:", 60)
    pids = demo.wait_for(
        lambda: len(demo.node_pids) >= 7 and demo.node_pids, 10, "seven node processes"
    )
    assert len(pids) == 7
    # While it runs, every agent answers on its own port of P..P+6.
    names = {get_json(f"http://127.0.0.1:{port + i}/v1/info")["name"] for i in range(7)}
    assert names == set(KIT)
    demo.wait_for(demo.lines, 60, "the first interval's line")
    first_line_s = time.monotonic() - launched
    code = demo.wait(60)
    out = demo.stdout()
    assert code == 0, out + demo.stderr()

    assert f"dashboard: http://127.0.0.1:{port}/" in out
    lines = demo.lines()
    first = first_interval(out, 8)  # the default start: 08:00, the sun is up
    if first == 8:  # the nodes started as planned: trades show within 10 s of the command
        assert first_line_s < 10, (first_line_s, out)
    assert [int(m["k"]) for m in lines] == [first, first + 1, first + 2], out
    # Every line fits 100 columns (but the one naming the data directory, as long as its path).
    assert all(len(line) <= 100 for line in out.splitlines()
               if not line.startswith("data in ")), out
    for m in lines:
        hour = int(m["k"]) % 24
        assert m["hour"] == f"{hour:02d}"
        assert int(m["demand"]) == kit_demand_wh(hour)  # the daily profile, not a flat figure
        assert int(m["gen"]) == CURVE[hour] * KIT_SOLAR_SCALE
        assert int(m["confirmed"]) >= 1  # the sun is up: trades from the first line on
        assert m["disputed"] is None
    # The batteries charge from the first hour: each line's levels are at least the last's.
    levels = [list(map(int, m["batteries"].split("+"))) for m in lines]
    assert all(a <= b for prev, cur in zip(levels, levels[1:], strict=False)
               for a, b in zip(prev, cur, strict=True)), levels
    assert sum(levels[-1]) > 0, levels
    # The summary counts every trade of the three intervals once final: all confirmed.
    summary = SUMMARY.search(out)
    assert summary is not None, out
    assert (int(summary["frm"]), int(summary["to"]), int(summary["n"])) == (first, first + 2, 3)
    assert int(summary["confirmed"]) >= 3, out
    assert (summary["disputed"], summary["failed"]) == ("0", "0"), out
    assert len({kit_demand_wh(h) for h in range(24)}) > 5  # demand follows the day

    # Seven data dirs, each agent settled every interval shown, every store re-verifies.
    dirs = demo.agent_dirs()
    assert len(dirs) == 7
    for d in dirs:
        assert {first, first + 1, first + 2} <= own_settled_intervals(d), d
    assert demo.assert_stores_intact() == 7
    for pid in pids:
        assert not alive(pid), f"node {pid} outlived the demo"
    demo.assert_nothing_left()
    demo.assert_no_tracebacks()


# -- (b) Ctrl-C at different moments --------------------------------------------------------------


def _ctrl_c_and_check(demo: Demo) -> None:
    started = time.monotonic()
    demo.ctrl_c()
    code = demo.wait(STOP_WITHIN_S)
    assert code == 0, f"exit {code}\n{demo.stdout()}\n{demo.stderr()}"
    assert time.monotonic() - started < STOP_WITHIN_S
    assert "stopping the PicoGrid" in demo.stdout()
    demo.assert_nothing_left()
    demo.assert_stores_intact()
    demo.assert_no_tracebacks()


def test_ctrl_c_while_the_nodes_start(run_demo, tmp_path):
    demo = run_demo(
        "--interval-seconds", "2", "--port", str(free_port_run(7)), "--dir", str(tmp_path / "demo")
    )
    # The header is printed just before the agents' directories are made and their nodes
    # started: Ctrl-C lands while they are being created or are starting up.
    demo.wait_output("PicoGrid demo:", 30)
    _ctrl_c_and_check(demo)
    assert "dashboard:" not in demo.stdout()


def test_ctrl_c_once_every_node_answers(run_demo, tmp_path):
    demo = run_demo(
        "--interval-seconds", "2", "--port", str(free_port_run(7)), "--dir", str(tmp_path / "demo")
    )
    demo.wait_output("dashboard:", 60)
    assert (
        len(demo.wait_for(lambda: len(demo.node_pids) >= 7 and demo.node_pids, 10, "seven nodes"))
        == 7
    )
    _ctrl_c_and_check(demo)
    assert not demo.lines()


def test_ctrl_c_in_the_middle_of_an_interval(run_demo, tmp_path):
    demo = run_demo(
        "--interval-seconds",
        "2",
        "--port",
        str(free_port_run(7)),
        "--dir",
        str(tmp_path / "demo"),
        "--start-hour",
        "10",
    )
    demo.wait_for(lambda: demo.lines(), 60, "a settled interval")
    time.sleep(0.9)  # about halfway through the next one
    _ctrl_c_and_check(demo)
    assert len(demo.agent_dirs()) == 7
    # The intervals shown as settled were settled by every agent, and that survived the stop.
    shown = {int(m["k"]) for m in demo.lines()}
    for d in demo.agent_dirs():
        assert shown <= own_settled_intervals(d), d


# -- (c) bad input ----------------------------------------------------------------------------


def _refused(run_demo, tmp_path, sub: str, *args: str, data_dir: Path | None = None) -> str:
    data_dir = data_dir or tmp_path / sub / "demo"
    demo = run_demo(*args, "--dir", str(data_dir), data_dir=data_dir, sub=sub)
    code = demo.wait(30)
    err = demo.stderr()
    assert code == 2, f"exit {code}\n{demo.stdout()}\n{err}"
    assert err.startswith("picogrid: error: "), err
    assert "Traceback" not in err, err
    assert not processes_mentioning(str(data_dir))
    return err


def test_bad_input_exits_2_with_a_clear_message(run_demo, tmp_path):
    def port() -> str:  # other programs take ports too: a fresh free range for each case
        return str(free_port_run(7))

    err = _refused(run_demo, tmp_path, "zero", "--interval-seconds", "0", "--port", port())
    assert "--interval-seconds must be at least 2" in err
    assert not (tmp_path / "zero" / "demo").exists()

    err = _refused(run_demo, tmp_path, "port", "--port", "80")
    assert "--port must be between 1024 and" in err

    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine\n")
    err = _refused(run_demo, tmp_path, "full-run", "--port", port(), data_dir=full)
    assert "is not empty" in err
    assert sorted(p.name for p in full.iterdir()) == ["notes.txt"]

    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL_SCENARIO.replace('role = "generator"', 'role = "wizard"'))
    err = _refused(run_demo, tmp_path, "scenario", "--scenario", str(bad), "--port", port())
    assert str(bad) in err and "role must be one of" in err and "wizard" in err

    err = _refused(
        run_demo, tmp_path, "missing", "--scenario", str(tmp_path / "nope.toml"), "--port", port()
    )
    assert "nope.toml" in err

    # A port of the range already taken: said before anything starts.
    base = int(port())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 3))
        taken.listen()
        err = _refused(run_demo, tmp_path, "busy", "--port", str(base))
    assert f"{base + 3}" in err and "in use" in err


# -- (d) a scenario file ----------------------------------------------------------------------


def test_scenario_runs_its_agents_then_serves_until_ctrl_c(run_demo, tmp_path):
    scenario = tmp_path / "two-houses.toml"
    scenario.write_text(SMALL_SCENARIO)
    port = free_port_run(4)
    demo = run_demo(
        "--scenario",
        str(scenario),
        "--interval-seconds",
        "2",
        "--port",
        str(port),
        "--dir",
        str(tmp_path / "demo"),
        "--start-hour",
        "11",
    )
    demo.wait_output("the day is done", 60)
    out = demo.stdout()
    assert "4 agents of 'Two houses'" in out
    lines = demo.lines()
    first = first_interval(out, 11)
    assert [int(m["k"]) for m in lines] == [first, first + 1], out
    # What the two homes use: 300 + 900 Wh. (Shown before the meters are read, from the orders:
    # on a loaded machine a home's bid may miss an interval's gate, and the line then shows the
    # other's alone. At least one interval has both.)
    assert {int(m["demand"]) for m in lines} <= {0, 300, 900, 300 + 900}, out
    assert any(int(m["demand"]) == 300 + 900 for m in lines), out
    for m in lines:
        assert int(m["gen"]) == CURVE[int(m["k"]) % 24] * 100
        assert re.fullmatch(r"\d+", m["batteries"]), m["batteries"]
        assert int(m["confirmed"]) >= 1 and m["disputed"] is None
    assert (
        len(demo.wait_for(lambda: len(demo.node_pids) >= 4 and demo.node_pids, 10, "four nodes"))
        == 4
    )

    # The day is over but the PicoGrid keeps running: its four agents, and only them.
    time.sleep(1)
    assert demo.proc.poll() is None
    agents = get_json(f"http://127.0.0.1:{port}/v1/agents")
    assert sorted(a["name"] for a in agents) == [
        "Barn roof",
        "Cottage",
        "Farmhouse",
        "Village battery",
    ]
    assert sorted(p.name for p in demo.agent_dirs()) == [
        "barn-roof",
        "cottage",
        "farmhouse",
        "village-battery",
    ]
    _ctrl_c_and_check(demo)


# -- (e) another mechanism --------------------------------------------------------------------


def test_pay_as_clear_runs_and_settles(run_demo, tmp_path):
    demo = run_demo(
        "--mechanism",
        "pay-as-clear",
        "--intervals",
        "2",
        "--interval-seconds",
        "2",
        "--port",
        str(free_port_run(7)),
        "--dir",
        str(tmp_path / "demo"),
        "--start-hour",
        "10",
    )
    code = demo.wait(90)
    out = demo.stdout()
    assert code == 0, out + demo.stderr()
    assert "pay-as-clear" in out.splitlines()[0]
    lines = demo.lines()
    first = first_interval(out, 10)
    assert [int(m["k"]) for m in lines] == [first, first + 1], out
    assert all(int(m["confirmed"]) >= 1 and m["disputed"] is None for m in lines), out
    # The community's signed charter says pay-as-clear, in every agent's store.
    for d in demo.agent_dirs():
        store = Store(d / "store.sqlite3")
        try:
            charter = parse_charter(store.charters()[-1], bytes.fromhex(load_config(d).admin))
        finally:
            store.close()
        assert charter.grids["kit"].mechanism == "pay-as-clear"
        assert {first, first + 1} <= own_settled_intervals(d)
    demo.assert_stores_intact()
    demo.assert_nothing_left()
    demo.assert_no_tracebacks()
