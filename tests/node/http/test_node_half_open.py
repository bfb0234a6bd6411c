"""Half-open connections against a real node limited to 1,024 open files (systemd's default),
and a stalled header and body against a real node.

The attack it answers: 1,100 connections that send part of a request line and stall made
`/v1/info` answer 0 of 8 probes and wrote 60 MB of "Too many open files" tracebacks in 30 s.
Now the node keeps its connections below its open-file limit, closing the ones that wait (not in
a request) to make room, and rate-limits its warnings.
"""

from __future__ import annotations

import re
import resource
import socket
import sys
import time

from nodeagent import HOST, PICOGRID
from nodeproc import Cluster, Proc, get_json, request, wait_until

from node.cli.processes import run_argv, spawn
from node.http.connections import BODY_TIMEOUT_S, KEEPALIVE_S

LIMIT = 1024
HALF_OPEN = 1100
# Runs `picogrid run` with its open-file limit (soft and hard) at LIMIT, as systemd's default.
LIMITED = ("import os, resource, sys; "
           f"resource.setrlimit(resource.RLIMIT_NOFILE, ({LIMIT}, {LIMIT})); "
           "os.execv(sys.argv[1], sys.argv[1:])")


def start_limited(agent) -> Proc:
    argv = run_argv(agent.dir, program=(sys.executable, "-c", LIMITED, PICOGRID),
                    listen=f"{HOST}:{agent.port}", round_ms=200)
    proc = Proc(agent, spawn(argv, agent.dir / "run.out", agent.dir / "run.err"), argv)
    proc.wait_ready()
    return proc


def probe(url: str) -> float:
    """Seconds `GET /v1/info` took on a fresh connection."""
    started = time.monotonic()
    info = get_json(f"{url}/v1/info", timeout=5.0)
    assert info["agent"]
    return time.monotonic() - started


def stall(port: int) -> socket.socket | None:
    """A connection that sends part of a request line and then nothing."""
    try:
        s = socket.create_connection((HOST, port), timeout=2.0)
        s.sendall(b"GET /v1/info HT")
        return s
    except OSError:
        return None


def test_1100_half_open_connections_leave_info_answering_under_a_second(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = HALF_OPEN + 200  # this test process holds every stalled socket
    assert hard == resource.RLIM_INFINITY or hard >= needed, f"hard open-file limit {hard}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    held: list[socket.socket] = []
    try:
        with Cluster(tmp_path) as c:
            a = c.found("A")
            proc = start_limited(a)
            try:
                with open(f"/proc/{proc.pid}/limits") as f:
                    line = next(x for x in f if x.startswith("Max open files"))
                assert line.split()[3:5] == [str(LIMIT), str(LIMIT)], line
                for _ in range(HALF_OPEN):
                    s = stall(a.port)
                    if s is not None:
                        held.append(s)
                assert len(held) >= LIMIT, f"only {len(held)} connections opened"
                times = [probe(a.url) for _ in range(8)]
                assert max(times) < 1.0, times
                assert proc.alive()
                time.sleep(2.0)  # more stalled connections, while the log is written
                for _ in range(200):
                    s = stall(a.port)
                    if s is not None:
                        held.append(s)
                wait_until(lambda: probe(a.url) < 1.0, 10, "info still answers")
                metrics = request("GET", f"{a.url}/metrics", timeout=5.0).body.decode()
                closed = re.search(r"^picogrid_http_connections_closed_for_room_total (\S+)$",
                                   metrics, re.M)  # a float, as prometheus_client writes it
                assert closed and float(closed.group(1)) >= HALF_OPEN - LIMIT, metrics[-500:]
            finally:
                proc.terminate()
            log = (a.dir / "run.err").read_text() + (a.dir / "run.out").read_text()
            assert log.count("Too many open files") <= 2, log[-3000:]
            assert log.count("Traceback") <= 2 and len(log) < 100_000, log[-3000:]
    finally:
        for s in held:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_stalled_header_and_a_stalled_body_are_cut_off(tmp_path):
    with Cluster(tmp_path) as c:
        a = c.found("A")
        c.start(a)
        header = socket.create_connection((HOST, a.port), timeout=KEEPALIVE_S + 15)
        header.sendall(b"GET /v1/info HTTP/1.1\r\nHost: x\r\n")  # never ends its header
        body = socket.create_connection((HOST, a.port), timeout=BODY_TIMEOUT_S + 15)
        body.sendall(b"POST /v1/gossip/actions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/msgpack\r\nContent-Length: 100\r\n\r\n\x91")
        started = time.monotonic()
        try:
            assert header.recv(1024) == b""  # closed, unanswered
            header_s = time.monotonic() - started
            answer = body.recv(4096)
            body_s = time.monotonic() - started
        finally:
            header.close()
            body.close()
        assert KEEPALIVE_S - 1 <= header_s <= KEEPALIVE_S + 10, header_s
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert BODY_TIMEOUT_S - 1 <= body_s <= BODY_TIMEOUT_S + 10, body_s
        assert get_json(f"{a.url}/v1/info")["agent"] == a.agent_hex
