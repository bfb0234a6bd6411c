"""`picogrid demo` run as a user runs it, for tests (a helper, not a test).

`Demo` starts the demo command in its own session (as a terminal runs a foreground job) and
talks to it only as a user would: its output, its exit code, Ctrl-C (SIGINT to its process
group), the HTTP API of its nodes, the data directories it leaves behind. `kill_leftovers`
SIGKILLs the demo's process group and every node process it started (restarted ones too), so a
test leaves nothing running whatever happens; the `run_demo` fixture (tests/conftest.py) calls it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ledger.keys import load_identity
from ledger.store import Store

# One line of the demo per settled interval.
LINE = re.compile(
    r"interval\s+(?P<k>\d+) \((?P<hour>\d\d):00\)  made\s+(?P<gen>\d+) Wh  "
    r"used\s+(?P<demand>\d+) Wh  stored (?P<batteries>[\d+]+) Wh  "
    r"trades (?P<confirmed>\d+)(?P<disputed>, \d+ DISPUTED)?(?P<failed>, \d+ failed)?  "
    r"local (?P<ss>\d+%|-)"
)
# The demo's summary once its intervals are done: each trade's final outcome.
SUMMARY = re.compile(
    r"the day's trades, intervals (?P<frm>\d+)-(?P<to>\d+) \((?P<n>\d+)\): "
    r"(?P<confirmed>\d+) confirmed, (?P<disputed>\d+) disputed, (?P<failed>\d+) failed"
)


def first_interval(out: str, planned: int) -> int:
    """The interval the demo's lines start at: the one planned, unless the nodes took longer to
    start than the demo allowed (a loaded machine), which the demo then says."""
    m = re.search(r"the nodes took longer to start than planned: the day starts at (\d\d):00", out)
    if m is None:
        return planned
    first = int(m[1]) if int(m[1]) >= planned % 24 else int(m[1]) + 24
    assert 0 < first - planned <= 6, out
    return first


def processes_mentioning(text: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if text in cmdline and stat[stat.rindex(")") + 2] != "Z":
            found.append(int(entry.name))
    return found


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


class Demo:
    """One `picogrid demo` process, started as a terminal starts a foreground job."""

    def __init__(self, tmp: Path, *args: str, data_dir: Path | None = None) -> None:
        self.dir = data_dir if data_dir is not None else tmp / "demo"
        self.out, self.err = tmp / "demo.out", tmp / "demo.err"
        self.argv = [sys.executable, "-m", "node.cli", "demo", *args]
        # As from a user's shell: output into a file or pipe is block-buffered unless the demo
        # flushes its lines itself.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=err,
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.node_pids: set[int] = set()

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def lines(self) -> list[re.Match]:
        return [m for line in self.stdout().splitlines() if (m := LINE.search(line))]

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.node_pids.update(children_of(self.proc.pid))
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the demo exited ({self.proc.returncode}) before {what}\n"
                    f"{self.stdout()}\n{self.stderr()}"
                )
            time.sleep(0.05)
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what}\n{self.stdout()}\n{self.stderr()}"
        )

    def wait_output(self, text: str, timeout: float = 60) -> None:
        self.wait_for(lambda: text in self.stdout(), timeout, repr(text))

    def ctrl_c(self) -> None:
        """What Ctrl-C does: SIGINT to the terminal's foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the demo still runs after {timeout} s\n{self.stdout()}\n{self.stderr()}"
            ) from None

    def kill_leftovers(self) -> None:
        """For the finaliser: whatever the test found, nothing of this demo survives it. The
        demo's process group goes first (a live demo would restart a node killed before it),
        then every node process it started."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass  # gone already
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        for pid in {*self.node_pids, *processes_mentioning(str(self.dir))}:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def assert_nothing_left(self) -> None:
        left = [pid for pid in self.node_pids if alive(pid)]
        left += processes_mentioning(str(self.dir))
        assert not left, f"processes left behind: {sorted(set(left))}"

    def agent_dirs(self) -> list[Path]:
        return sorted(p for p in self.dir.iterdir() if (p / "config.toml").exists())

    def assert_stores_intact(self) -> int:
        """Every store the demo made reopens and re-verifies clean; returns how many."""
        stores = sorted(self.dir.glob("*/store.sqlite3"))
        for path in stores:
            store = Store(path)
            try:
                assert store.integrity_problems() == [], path
            finally:
                store.close()
        return len(stores)

    def assert_no_tracebacks(self) -> None:
        assert "Traceback" not in self.stderr(), self.stderr()
        for log in self.dir.glob("*/node.log"):
            text = log.read_text(errors="replace")
            assert "Traceback" not in text, f"{log}:\n{text[-3000:]}"


def own_settled_intervals(agent_dir: Path) -> set[int]:
    """The intervals this agent signed a settlement for, from its own chain in its store."""
    me = load_identity(agent_dir / "agent.key").agent
    store = Store(agent_dir / "store.sqlite3")
    try:
        return {a.payload["interval"] for a in store.chain(me, 0, 10_000) if a.type == "settlement"}
    finally:
        store.close()
