"""Disputes in `picogrid demo`: how many trades end disputed over a day, beside busy cores.

Runs `picogrid demo --intervals N` (the demo's own pace: 5 s intervals, the day from 08:00)
`--runs` times, one after the other, each on free ports in a temporary directory, while
`--busy` processes spin (`while True: pass`) on this machine's cores. With `--kill NAME`, the
node of agent NAME is SIGKILLed (its pid read from its data directory's `node.lock`) once
`--kill-after` interval lines are printed; the demo restarts it. Per run, from the demo's own
output: the intervals shown, the trades it counts by final outcome (its summary line: confirmed,
disputed, failed), the disputed trades its interval lines showed, and for a killed node the
seconds until it answered again. `disputed_total` (by the summaries) and
`lines_disputed_total` (by the interval lines) must be 0 (issue #10).

Prints one JSON line; progress goes to stderr.

    python benchmarks/demo_disputes.py                               # 5 runs x 24 intervals
    python benchmarks/demo_disputes.py --runs 2 --kill "Home 2"      # a SIGKILL mid-day
    python benchmarks/demo_disputes.py --runs 1 --intervals 3 --interval-seconds 2 --busy 0
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.cli.launcher import free_port_run, slug  # noqa: E402

LINE = re.compile(
    r"^interval\s+(?P<k>\d+) .*trades (?P<confirmed>\d+)"
    r"(?:, (?P<disputed>\d+) DISPUTED)?(?:, (?P<failed>\d+) failed)?"
)
SUMMARY = re.compile(
    r"the day's trades, intervals (?P<frm>\d+)-(?P<to>\d+) \(\d+\): "
    r"(?P<confirmed>\d+) confirmed, (?P<disputed>\d+) disputed, "
    r"(?P<failed>\d+) failed"
)
BACK = re.compile(r"node (?P<name>.+) is back: \S+ answers, (?P<s>[\d.]+) s after it died")


def one_run(intervals: int, interval_s: int, kill: str | None, kill_after: int, keep: bool) -> dict:
    """One demo run to its end; its figures."""
    base = Path(tempfile.mkdtemp(prefix="picogrid-disputes-"))
    out_path = base / "demo.out"
    data = base / "demo"
    argv = [
        sys.executable,
        "-m",
        "node.cli",
        "demo",
        "--intervals",
        str(intervals),
        "--interval-seconds",
        str(interval_s),
        "--port",
        str(free_port_run(7)),
        "--dir",
        str(data),
    ]
    started = time.monotonic()
    killed_pid = None
    with open(out_path, "wb") as out:
        demo = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=ROOT,
        )
    try:
        deadline = started + intervals * interval_s * 3 + 180
        while demo.poll() is None and time.monotonic() < deadline:
            text = out_path.read_text(errors="replace")
            lines = [m for m in map(LINE.match, text.splitlines()) if m]
            if kill and killed_pid is None and len(lines) >= kill_after:
                killed_pid = int((data / slug(kill) / "node.lock").read_text().strip())
                os.kill(killed_pid, signal.SIGKILL)
                print(
                    f"  killed {kill} (pid {killed_pid}) after {len(lines)} lines", file=sys.stderr
                )
            time.sleep(0.2)
        code = demo.poll()
    finally:
        stop(demo, data)
    text = out_path.read_text(errors="replace")
    lines = [m for m in map(LINE.match, text.splitlines()) if m]
    summary = SUMMARY.search(text)
    back = [float(m["s"]) for m in BACK.finditer(text)]
    row = {
        "exit": code,
        "seconds": round(time.monotonic() - started, 1),
        "first_interval": int(lines[0]["k"]) if lines else None,
        "intervals_shown": len(lines),
        "lines_disputed": sum(int(m["disputed"] or 0) for m in lines),
        "lines_failed": sum(int(m["failed"] or 0) for m in lines),
        "confirmed": int(summary["confirmed"]) if summary else None,
        "disputed": int(summary["disputed"]) if summary else None,
        "failed": int(summary["failed"]) if summary else None,
    }
    if kill:
        row.update(
            killed=kill,
            killed_pid=killed_pid,
            back_after_s=back[0] if back else None,
            restarts=text.count(f"node {kill} restarted"),
        )
    if keep or code != 0 or not summary or row["disputed"] or row["lines_disputed"]:
        row["kept"] = str(base)  # for a look at the nodes' logs
    else:
        shutil.rmtree(base, ignore_errors=True)
    return row


def stop(demo: subprocess.Popen, data: Path) -> None:
    """Ctrl-C the demo if it still runs; then nothing of it survives (group, node processes)."""
    if demo.poll() is None:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    for entry in Path("/proc").iterdir():  # its nodes run in sessions of their own
        try:
            if entry.name.isdigit() and str(data) in (entry / "cmdline").read_text():
                os.kill(int(entry.name), signal.SIGKILL)
        except OSError:
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--intervals", type=int, default=24)
    parser.add_argument("--interval-seconds", type=int, default=5, help="the demo's default")
    parser.add_argument("--busy", type=int, default=2, help="busy loops beside the demo")
    parser.add_argument("--kill", metavar="NAME", help="SIGKILL this agent's node mid-run")
    parser.add_argument("--kill-after", type=int, help="after this many lines (default: half)")
    parser.add_argument("--keep", action="store_true", help="keep every run's data directory")
    args = parser.parse_args()
    kill_after = args.kill_after if args.kill_after is not None else args.intervals // 2
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    runs = []
    try:
        for i in range(args.runs):
            print(f"run {i + 1} of {args.runs} ...", file=sys.stderr)
            runs.append(
                one_run(args.intervals, args.interval_seconds, args.kill, kill_after, args.keep)
            )
            print(f"  {json.dumps(runs[-1])}", file=sys.stderr)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    print(
        json.dumps(
            {
                "bench": "demo_disputes",
                "runs": runs,
                "intervals": args.intervals,
                "interval_s": args.interval_seconds,
                "busy": args.busy,
                "kill": args.kill,
                "cores": os.cpu_count(),
                "load_1m_after": round(os.getloadavg()[0], 2),
                "disputed_total": sum(r["disputed"] or 0 for r in runs),
                "lines_disputed_total": sum(r["lines_disputed"] for r in runs),
                "all_summarised": all(r["disputed"] is not None for r in runs),
                "all_exit_0": all(r["exit"] == 0 for r in runs),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
