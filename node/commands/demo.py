"""`picogrid demo`: run the default kit (or a scenario) as seven real nodes on this machine."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

from ledger.charter import MECHANISMS
from market.scenario import ScenarioError, default_scenario, load_scenario
from node import demo
from node.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="watch a whole PicoGrid trade on this machine",
                       description="Start one `picogrid run` process per agent of the default "
                                   "kit (or --scenario) on 127.0.0.1 ports P..P+n-1, follow the "
                                   "market interval by interval, and serve the dashboard.")
    p.add_argument("--intervals", type=int, help="stop by itself once this many intervals are "
                                                 "settled (default: run the day, then keep "
                                                 "serving until Ctrl-C)")
    p.add_argument("--interval-seconds", type=int, default=5, help="interval length (default 5)")
    p.add_argument("--port", type=int, default=8700, help="first port (default 8700)")
    p.add_argument("--dir", type=Path, help="where the agents' data goes (default: a new "
                                            "temporary directory)")
    p.add_argument("--mechanism", choices=MECHANISMS, help="override the scenario's mechanism")
    p.add_argument("--scenario", type=Path, help="a scenario TOML file (see docs/)")
    p.add_argument("--hardware", action="store_true", help="drive the kit's real LEDs/sensors")
    p.add_argument("--start-hour", type=int, default=0,
                   help="hour of the day the demo starts at (default 0; try 10 for sunshine)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.interval_seconds < 2:
        raise UserError("--interval-seconds must be at least 2")
    if args.intervals is not None and args.intervals < 1:
        raise UserError("--intervals must be at least 1")
    if not 0 <= args.start_hour <= 23:
        raise UserError("--start-hour must be between 0 and 23")
    if not 1024 <= args.port <= 65000:
        raise UserError("--port must be between 1024 and 65000")
    try:
        scenario = load_scenario(args.scenario) if args.scenario else default_scenario()
    except (ScenarioError, OSError) as exc:
        raise UserError(f"scenario {args.scenario}: {exc}") from None
    mechanism = args.mechanism or scenario.mechanism
    base = args.dir or Path(tempfile.mkdtemp(prefix="picogrid-demo-"))
    if base.exists() and any(base.iterdir()):
        raise UserError(f"{base} is not empty; give an empty or new --dir")
    total = args.intervals or scenario.intervals
    n = len(scenario.agents)
    print(f"PicoGrid demo: {n} agents of {scenario.name!r}, {mechanism}, "
          f"{total} intervals of {args.interval_seconds} s; data in {base}")
    nodes = demo.prepare(base, scenario, args.port, args.interval_seconds, mechanism,
                         start_in_s=3.0 + 0.4 * n,
                         scenario_path=str(args.scenario.resolve()) if args.scenario else "",
                         first_interval=args.start_hour)
    board = None
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        demo.start(nodes, hardware=args.hardware)
        late = demo.wait_ready(nodes)
        if late:
            print(f"these nodes did not start: {', '.join(late)}; see node.log in {base}",
                  file=sys.stderr)
            return 1
        url = nodes[0].url
        print(f"dashboard: {url}/   (every node serves one; Ctrl-C stops the PicoGrid)")
        board = _board() if args.hardware else None
        follow(nodes, total, first=args.start_hour, board=board)
        if args.intervals is not None:
            return 0
        print(f"the day is done; the nodes keep trading. Dashboard: {url}/  Ctrl-C to stop.")
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping the PicoGrid ...")
        return 0
    finally:
        demo.stop(nodes)
        if board is not None:
            board.close()


def _board():
    """The kit's LED board (gpiozero's mock pins off a Pi, said once in the log)."""
    from hardware.leds import KitBoard

    try:
        return KitBoard()
    except Exception as exc:  # noqa: BLE001 - LEDs are a nicety here; never stop the demo
        print(f"LEDs unavailable: {exc}", file=sys.stderr)
        return None


def follow(nodes: list[demo.DemoNode], total: int, first: int = 0, board=None) -> None:
    """Print a line per settled interval and a progress bar, until `total` are settled."""
    from hardware.leds import LedMode

    url = nodes[0].url
    n = len(nodes)
    k = first
    tty = demo.is_tty()
    while k < first + total:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is not None:
                raise SystemExit(f"node {node.name} exited (code {node.proc.returncode}); "
                                 f"see {node.dir / 'node.log'}")
        view = demo.get_json(f"{url}/v1/intervals/{k}")
        if view is None or not demo.interval_settled(view, n):
            if tty:
                print("\r" + demo.progress_bar(k - first, total), end="", flush=True)
            time.sleep(0.25)
            continue
        summary = demo.get_json(f"{url}/v1/summary?from={first}&to={k}")
        line = demo.interval_line(view, summary.get("kpis") if summary else None)
        print(("\r" if tty else "") + line + (" " * 4 if tty else ""))
        if board is not None and view.get("leds"):
            board.apply({name: LedMode(mode) for name, mode in view["leds"].items()})
        k += 1
    if tty:
        print("\r" + demo.progress_bar(total, total))
