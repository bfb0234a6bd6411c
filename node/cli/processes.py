"""Starting and stopping `picogrid` processes: the one launcher the demo and the tests share.

A node runs as its own process, the way a Pi runs it: `run_argv` writes its command line,
`spawn` starts it in a session of its own (a Ctrl-C in the terminal reaches the launcher, which
then stops its nodes cleanly) with stdin closed and its output appended to files in its data
directory, `answers` tells when its HTTP API is up, and `stop_processes` stops a group of them:
SIGTERM (each node commits its writes and exits), then SIGKILL for any that overstay.
`StopSignals` turns SIGINT and SIGTERM into KeyboardInterrupt in the launching process, so its
`finally` stops the nodes whichever way it is told to stop (a process killed with SIGKILL
cannot do that: its nodes live on in their own sessions).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

# How the demo runs `picogrid`: this Python, so a checkout works without the console script.
PICOGRID_MODULE = (sys.executable, "-m", "node.cli")


def picogrid_argv(
    *args: str | Path, program: Sequence[str] = PICOGRID_MODULE, verbose: bool = False
) -> list[str]:
    """The command line of one `picogrid` command (`-v` before the subcommand)."""
    return [*program, *(["-v"] if verbose else []), *map(str, args)]


def run_argv(
    directory: str | Path,
    *,
    program: Sequence[str] = PICOGRID_MODULE,
    listen: str | None = None,
    peers: Iterable[str] = (),
    round_ms: int | None = None,
    rate_limit: int | None = None,
    hardware: bool = False,
    verbose: bool = False,
    extra: Iterable[str] = (),
) -> list[str]:
    """The command line of `picogrid run` for a data directory; None leaves the config's value."""
    args: list[str] = ["run", "--dir", str(directory)]
    if hardware:
        args.append("--hardware")
    if listen is not None:
        args += ["--listen", listen]
    for peer in peers:
        args += ["--peer", peer]
    if round_ms is not None:
        args += ["--round-ms", str(round_ms)]
    if rate_limit is not None:
        args += ["--rate-limit", str(rate_limit)]
    return picogrid_argv(*args, *extra, program=program, verbose=verbose)


def spawn(
    argv: Sequence[str],
    out: Path,
    err: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen:
    """Start a long-running process in its own session, stdin closed, stdout appended to `out`
    and stderr to `err` (or to `out`); `env` is added to this process's environment."""
    out_file = open(out, "ab")  # noqa: SIM115 - the child keeps its own copy
    err_file = open(err, "ab") if err is not None else None  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(argv),
            stdout=out_file,
            stderr=err_file if err_file is not None else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        )
    finally:
        out_file.close()
        if err_file is not None:
            err_file.close()


def stop_processes(procs: Iterable[subprocess.Popen], timeout: float = 10.0) -> None:
    """SIGTERM every live process, then SIGKILL those not gone `timeout` s later; never raises
    for a process that is already gone."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except OSError:
                pass  # exited meanwhile
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get_json(url: str, timeout: float = 3.0) -> dict | list | None:
    """GET a JSON document from a local node; None if it does not answer with JSON."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether the node at `url` answers `GET /v1/info` (it has started)."""
    return get_json(f"{url}/v1/info", timeout) is not None


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM become KeyboardInterrupt, except inside `deferred()`.

    Inside `deferred()` a signal is only noted, and raised when the block ends: a node process
    is never started without the launcher holding its handle, so none can be left behind. After
    `stopping()` further signals are ignored, so a second Ctrl-C cannot cut the clean stop short.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._defer = 0
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True
        if not self._defer:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self):
        """Hold SIGINT/SIGTERM while the block runs; they act once it ends."""
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1
        if self.requested and not self._defer:
            raise KeyboardInterrupt

    def stopping(self) -> None:
        """Ignore further stop signals: the clean stop under way is not cut short."""
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def restore(self) -> None:
        """Put the previous signal handlers back."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
