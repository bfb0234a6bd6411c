"""`picogrid demo`: run the default kit (or a scenario) as seven real nodes on this machine."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from ledger.charter import MECHANISMS, Charter
from market.book import deadlines
from market.scenario import Scenario, ScenarioError, day_scenario, load_scenario
from node.cli import launcher as demo
from node.cli.processes import StopSignals
from node.cli.supervisor import NodeKeepsDying, Supervisor
from node.errors import UserError

# The kit's sun rises at 06:00 (curve 2) and is at 4 by 08:00: a newcomer sees trades and
# batteries charging in the first interval instead of a night of grid imports.
DEFAULT_START_HOUR = 8


def register(sub: argparse._SubParsersAction) -> None:
    """Add `picogrid demo` to the command line."""
    p = sub.add_parser(
        "demo",
        help="watch a whole PicoGrid trade on this machine",
        description="Start one `picogrid run` process per agent of the default "
        "kit (or --scenario) on 127.0.0.1 ports P..P+n-1, follow the "
        "market interval by interval, and serve the dashboard.",
    )
    p.add_argument(
        "--intervals",
        type=int,
        help="stop by itself once this many intervals are "
        "settled (default: run the day, then keep "
        "serving until Ctrl-C)",
    )
    p.add_argument("--interval-seconds", type=int, default=5, help="interval length (default 5)")
    p.add_argument("--port", type=int, default=8700, help="first port (default 8700)")
    p.add_argument(
        "--dir", type=Path, help="where the agents' data goes (default: a new temporary directory)"
    )
    p.add_argument("--mechanism", choices=MECHANISMS, help="override the scenario's mechanism")
    p.add_argument("--scenario", type=Path, help="a scenario TOML file (see docs/)")
    p.add_argument("--hardware", action="store_true", help="drive the kit's real LEDs/sensors")
    p.add_argument(
        "--start-hour",
        type=int,
        default=DEFAULT_START_HOUR,
        help=f"hour of the day the demo starts at (default {DEFAULT_START_HOUR}: the sun is up, "
        "so trades show in the first seconds)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo: one node per agent of the scenario, followed interval by interval."""
    scenario = _checked(args)
    n = len(scenario.agents)
    mechanism = args.mechanism or scenario.mechanism
    total = args.intervals or scenario.intervals
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # each line as it happens, even into a pipe
    signals = StopSignals()
    nodes: list[demo.DemoNode] = []
    try:
        base = args.dir or Path(tempfile.mkdtemp(prefix="picogrid-demo-"))
        print(
            f"PicoGrid demo: {n} agents of {scenario.name!r}, {mechanism}, "
            f"{total} intervals of {args.interval_seconds} s"
        )
        print(f"data in {base}")
        nodes = demo.prepare(
            base,
            scenario,
            args.port,
            args.interval_seconds,
            mechanism,
            start_in_s=_start_in_s(args.interval_seconds, n),
            scenario_path=str(args.scenario.resolve()) if args.scenario else "",
            first_interval=args.start_hour,
            hardware=args.hardware,
        )
        with signals.deferred():  # every process started is one the finally below stops
            demo.start(nodes, hardware=args.hardware)
        late = demo.wait_ready(nodes)
        if late:
            print(
                f"these nodes did not start: {', '.join(late)}; see node.log in {base}",
                file=sys.stderr,
            )
            return 1
        url = nodes[0].url
        print(f"dashboard: {url}/   (every node serves one; Ctrl-C stops the PicoGrid)")
        first = demo.first_open_interval(url, args.start_hour)
        if first != args.start_hour:
            print(
                f"the nodes took longer to start than planned: the day starts at "
                f"{first % 24:02d}:00"
            )
        print(demo.LEGEND)

        def restart(node: demo.DemoNode) -> None:
            with signals.deferred():  # as at the start: no node runs without the demo's handle
                demo.start_one(node, hardware=args.hardware)

        watch = Supervisor(nodes, restart, say=_say)
        shown = follow(nodes, total, first=first, watch=watch)
        print(day_summary(watch, shown, nodes[0].charter))
        if args.intervals is not None:
            return 0
        print(f"the day is done; the nodes keep trading. Dashboard: {url}/  Ctrl-C to stop.")
        while True:
            watch.sleep(1)
    except NodeKeepsDying as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping the PicoGrid ...")
        return 0
    finally:
        signals.stopping()
        demo.stop(nodes)
        signals.restore()


def _checked(args: argparse.Namespace) -> Scenario:
    """The demo's scenario, once every argument is checked (UserError otherwise)."""
    if args.interval_seconds < 2:
        raise UserError("--interval-seconds must be at least 2")
    if args.intervals is not None and args.intervals < 1:
        raise UserError("--intervals must be at least 1")
    if not 0 <= args.start_hour <= 23:
        raise UserError("--start-hour must be between 0 and 23")
    try:
        scenario = load_scenario(args.scenario) if args.scenario else day_scenario()
    except (ScenarioError, OSError) as exc:
        raise UserError(f"scenario {args.scenario}: {exc}") from None
    n = len(scenario.agents)
    if not 1024 <= args.port <= 65535 - n + 1:
        raise UserError(
            f"--port must be between 1024 and {65535 - n + 1} (the demo uses {n} ports from it)"
        )
    if args.dir is not None and args.dir.exists():
        if not args.dir.is_dir():
            raise UserError(f"{args.dir} is not a directory")
        if any(args.dir.iterdir()):
            raise UserError(f"{args.dir} is not empty; give an empty or new --dir")
    busy = demo.busy_ports(args.port, n)
    if busy:
        raise UserError(
            f"port{'s' if len(busy) > 1 else ''} {', '.join(map(str, busy))} "
            f"already in use on 127.0.0.1 (a demo still running?); "
            f"choose other ports with --port"
        )
    return scenario


def _start_in_s(interval_s: int, agents: int) -> float:
    """When the first interval starts, from now: its gate closes 2/5 of an interval before
    that, and by then every node must be up (about half a second each on a PC, starting side
    by side; more on a Pi). A node that misses it makes the day start an interval later."""
    return 0.4 * interval_s + 2.0 + 0.5 * agents


def follow(
    nodes: list[demo.DemoNode], total: int, first: int = 0, watch: Supervisor | None = None
) -> list[int]:
    """Print a line per settled interval and a progress bar, until `total` are settled; return
    the intervals shown.

    The market is read from the first node that is up (`watch` restarts a node that dies
    meanwhile). An interval that some node never settles (it was down at the time) is printed
    with a note once it is `STUCK_INTERVALS` intervals late, so the demo never waits forever.
    """
    watch = watch or Supervisor(nodes, demo.start_one)
    n = len(nodes)
    k = first
    tty = demo.is_tty()
    local = demand = 0
    while k < first + total:
        watch.check()
        view = demo.get_json(f"{watch.url()}/v1/intervals/{k}")
        note = ""
        if view is not None and not demo.interval_settled(view, n):
            now_us = time.time_ns() // 1000
            length = view["end_us"] - view["start_us"]
            if now_us > view["settle_us"] + STUCK_INTERVALS * length:
                note = f"settled by {len(view['settlements'])} of {n} agents"
        if view is None or (not note and not demo.interval_settled(view, n)):
            if tty:
                print("\r" + demo.progress_bar(k - first, total), end="", flush=True)
            watch.sleep(_poll_delay(view))
            continue
        got, wanted = demo.home_supply(view)
        local, demand = local + got, demand + wanted
        line = demo.interval_line(view, local / demand if demand else None, note)
        print(("\r" if tty else "") + line + (" " * 4 if tty else ""))
        k += 1
    if tty:
        print("\r" + demo.progress_bar(total, total))
    return list(range(first, first + total))


def _say(message: str) -> None:
    """A line of the supervisor's, over the progress bar in a terminal."""
    tty = demo.is_tty()
    print(("\r" if tty else "") + message + (" " * 4 if tty else ""))


def day_summary(
    watch: Supervisor, shown: list[int], charter: Charter | None, timeout_s: float = 30.0
) -> str:
    """The trades of the intervals `shown`, counted by outcome once each is final.

    A trade's outcome is final after its interval's final deadline (before it, a revision may
    still heal a disagreement, and the trade shows as pending); so this waits for the last
    interval's, then reads every trade of the day from one node (`GET /v1/trades`), asking
    again (at most `timeout_s`) while one is still pending there (a settlement it has not
    expanded).
    """
    if not shown:
        return "no interval settled"
    if charter is not None:
        final_us = deadlines([charter], shown[-1]).final_us
        watch.sleep(max(0.0, (final_us - time.time_ns() // 1000) / 1e6 + 0.2))
    frm, to = shown[0], shown[-1]
    deadline = time.monotonic() + timeout_s
    url = watch.url()
    while True:
        url = watch.url()
        rows = _trades(url, frm, to)
        pending = rows is None or any(t["status"] == "pending" for t in rows)
        if not pending or time.monotonic() > deadline:
            break
        watch.sleep(0.5)
    if rows is None:
        return f"the day's trades: no node answered {url}/v1/trades"
    counts = Counter(t["status"] for t in rows)
    parts = [f"{counts[s]} {s}" for s in ("confirmed", "disputed", "failed")]
    parts += [f"{counts[s]} {s}" for s in ("pending", "superseded") if counts[s]]
    text = f"the day's trades, intervals {frm}-{to} ({len(shown)}): " + ", ".join(parts)
    for name, ends in watch.restarts().items():
        times = "once" if len(ends) == 1 else f"{len(ends)} times"
        how = ", ".join(e if c == 1 else f"{e} x{c}" for e, c in Counter(ends).items())
        text += f"\nnode {name} died {times} ({how}) and was restarted"
    return text


def _trades(url: str, frm: int, to: int, per_request: int = 100) -> list[dict] | None:
    """Every trade of intervals `frm`..`to` as one node's API lists them (None: no answer)."""
    rows: list[dict] = []
    for start in range(frm, to + 1, per_request):
        end = min(to, start + per_request - 1)
        got = demo.get_json(f"{url}/v1/trades?from={start}&to={end}", timeout=10.0)
        if not isinstance(got, dict):
            return None
        rows += got.get("trades", [])
    return rows


STUCK_INTERVALS = 3


def _poll_delay(view: dict | None) -> float:
    """Sleep until just after the interval's settlement time (every node settles then), at
    most `MAX_POLL_S`; once it is past, ask again every 0.25 s. Each question makes the first
    node recompute the interval, so the demo asks as seldom as it can."""
    if view is None or "settle_us" not in view:
        return 0.25
    wait = (view["settle_us"] - time.time_ns() // 1000) / 1e6 + 0.2
    return min(MAX_POLL_S, max(0.25, wait))


MAX_POLL_S = 5.0
