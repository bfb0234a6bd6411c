"""Demo footprint: memory and CPU of `picogrid demo` (seven nodes and the demo itself).

Starts the demo at its default pace (5 s intervals) on free ports in a temporary directory,
lets the nodes start and warm up, then measures each process over a window:

- `rss_mb`: the largest VmRSS seen (from /proc/PID/status, sampled every second);
- `pss_mb`: the proportional set size at the end of the window (/proc/PID/smaps_rollup), which
  shares the pages the processes have in common (libraries) between them: what they really
  cost together;
- `cpu_percent`: utime + stime over the window (/proc/PID/stat), in percent of one core.

The reference, measured in the same run, is a bare interpreter that imports what a node imports
and does nothing: the part of each node's RSS that is Python and its libraries. Then the demo is
stopped as Ctrl-C would (SIGINT), and must exit 0. One JSON line on stdout.

    python benchmarks/demo_footprint.py                  # 60 s window from 08:00
    python benchmarks/demo_footprint.py --seconds 120 --start-hour 0
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.cli.launcher import free_port_run  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
TARGETS = {"rss_mb_total": 400, "cpu_percent_total": 10}
NODE_IMPORTS = "import aiohttp, nacl.signing, node.node"  # node.node imports every service




def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def pss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from every process's parent id."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            out.append(int(entry.name))
    return sorted(out)


def node_name(pid: int) -> str:
    """The node's data directory name (its agent's slug), from its command line."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    for i, arg in enumerate(argv):
        if arg == b"--dir" and i + 1 < len(argv):
            return Path(argv[i + 1].decode()).name
    return str(pid)


def wait_for_line(path: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the demo exited ({proc.returncode}):\n{path.read_text()}")
        time.sleep(0.2)
    raise RuntimeError(f"no {text!r} from the demo within {timeout} s:\n{path.read_text()}")


def reference_rss_mb() -> float:
    """VmRSS of an interpreter that imported what a node imports, idle."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"{NODE_IMPORTS}; print(1, flush=True); import time; time.sleep(60)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        proc.stdout.readline()
        return status_kb(proc.pid, "VmRSS") / 1024
    finally:
        proc.kill()
        proc.wait()


def measure(seconds: float, warmup: float, interval_s: int, start_hour: int) -> dict:
    port = free_port_run(7)
    with tempfile.TemporaryDirectory(prefix="picogrid-footprint-") as tmp:
        out = Path(tmp) / "demo.out"
        cmd = [
            sys.executable,
            "-m",
            "node.cli",
            "demo",
            "--port",
            str(port),
            "--dir",
            str(Path(tmp) / "demo"),
            "--interval-seconds",
            str(interval_s),
            "--start-hour",
            str(start_hour),
        ]
        with open(out, "wb") as sink:
            demo = subprocess.Popen(
                cmd,
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_for_line(out, "dashboard:", demo, 60)
            time.sleep(warmup)
            pids = children(demo.pid)
            names = {pid: node_name(pid) for pid in pids}
            watched = [demo.pid, *pids]
            t0 = time.monotonic()
            ticks0 = {pid: cpu_ticks(pid) for pid in watched}
            peak = dict.fromkeys(watched, 0)
            while time.monotonic() - t0 < seconds:
                for pid in watched:
                    peak[pid] = max(peak[pid], status_kb(pid, "VmRSS"))
                time.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - t0))))
            elapsed = time.monotonic() - t0
            ticks1 = {pid: cpu_ticks(pid) for pid in watched}
            pss = {pid: pss_kb(pid) for pid in watched}
            hwm = {pid: status_kb(pid, "VmHWM") for pid in watched}
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground group
            try:
                code = demo.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                code = demo.wait()
        settled = sum(line.startswith("interval") for line in out.read_text().splitlines())
        leftover = [pid for pid in pids if Path(f"/proc/{pid}").exists()]

    def row(pid: int, name: str) -> dict:
        return {
            "name": name,
            "pid": pid,
            "rss_mb": round(peak[pid] / 1024, 1),
            "rss_peak_mb": round(hwm[pid] / 1024, 1),
            "pss_mb": round(pss[pid] / 1024, 1) if pss[pid] is not None else None,
            "cpu_percent": round(100 * (ticks1[pid] - ticks0[pid]) / TICKS / elapsed, 2),
        }

    nodes = [row(pid, names[pid]) for pid in pids]
    parent = row(demo.pid, "demo")
    everyone = [*nodes, parent]
    rss_total = round(sum(r["rss_mb"] for r in everyone), 1)
    cpu_total = round(sum(r["cpu_percent"] for r in everyone), 2)
    pss_values = [r["pss_mb"] for r in everyone]
    return {
        "bench": "demo_footprint",
        "nodes": nodes,
        "demo": parent,
        "rss_mb_total": rss_total,
        "pss_mb_total": round(sum(pss_values), 1) if None not in pss_values else None,
        "cpu_percent_total": cpu_total,
        "seconds": round(elapsed, 1),
        "interval_seconds": interval_s,
        "intervals_settled": settled,
        "demo_exit_code": code,
        "processes_left": len(leftover),
        "reference": {"idle_interpreter_with_node_imports_rss_mb": round(reference_rss_mb(), 1)},
        "targets": {
            **TARGETS,
            "rss_met": rss_total < TARGETS["rss_mb_total"],
            "cpu_met": cpu_total < TARGETS["cpu_percent_total"],
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "cpu_model": cpu_model(),
        },
        "date": time.strftime("%Y-%m-%d"),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="measuring window (60)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=10,
        help="seconds after every node answers before measuring (10)",
    )
    parser.add_argument("--interval-seconds", type=int, default=5, help="demo pace (5)")
    parser.add_argument(
        "--start-hour",
        type=int,
        default=8,
        help="hour the demo's day starts (8: the window covers the sunny hours)",
    )
    args = parser.parse_args()
    if not Path("/proc/self/stat").exists():
        parser.error("this benchmark reads /proc (Linux only)")
    result = measure(args.seconds, args.warmup, args.interval_seconds, args.start_hour)
    print(json.dumps(result))
    return 0 if result["demo_exit_code"] == 0 and not result["processes_left"] else 1


if __name__ == "__main__":
    sys.exit(main())
