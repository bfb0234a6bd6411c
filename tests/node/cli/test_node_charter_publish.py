"""`picogrid charter` publishes through the running node or tells why not: it waits out the node's
429s (a busy address block is no verdict on the charter), and when a node answers but does not
take the charter it says so and saves nothing. Only when no node answers is the charter saved
for the node to publish when it next runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from nodeproc import init_agent, picogrid

from ledger.store import Store

CHARTER_PATH = "/v1/community/charter"


@contextmanager
def fake_node(statuses: list[int]) -> Iterator[tuple[int, list[int]]]:
    """A server on 127.0.0.1 answering each POST of a charter with the next of `statuses` (the
    last one from then on); yields its port and the statuses it answered."""
    answered: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = statuses[min(len(answered), len(statuses) - 1)]
            if self.path != CHARTER_PATH:
                status = 404
            answered.append(status)
            body = b'{"accepted": true}' if status == 200 else b'{"error": "no"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if status == 429:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], answered
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def charters_held(directory) -> int:
    store = Store(directory / "store.sqlite3")
    try:
        return len(store.charters())
    finally:
        store.close()


def test_charter_waits_out_a_busy_node(tmp_path):
    with fake_node([429, 429, 200]) as (port, answered):
        a = init_agent(tmp_path, "A", port=port)
        done = picogrid("charter", "--dir", a.dir, "--invite-only")
    assert f"published through http://127.0.0.1:{port}" in done.stdout, done.stdout
    assert answered == [429, 429, 200]
    assert charters_held(a.dir) == 1  # the node keeps it, not the command behind its back


def test_a_charter_the_running_node_refuses_is_not_saved(tmp_path):
    with fake_node([400]) as (port, answered):
        a = init_agent(tmp_path, "A", port=port)
        done = picogrid("charter", "--dir", a.dir, "--invite-only", check=False)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "did not take charter version 2" in done.stderr and "nothing was saved" in done.stderr
    assert "Traceback" not in done.stderr and answered == [400]
    assert charters_held(a.dir) == 1


def test_with_no_node_running_the_charter_is_saved_for_it(tmp_path):
    with fake_node([200]) as (port, _):
        pass  # the port is free again: nothing answers there
    a = init_agent(tmp_path, "A", port=port)
    done = picogrid("charter", "--dir", a.dir, "--invite-only")
    assert "saved; the node publishes it when it next runs" in done.stdout, done.stdout
    assert charters_held(a.dir) == 2
