"""Reads are bounded in bytes: 10 clients reading the largest chain pages of a real node keep it
under 150 MB of memory, and `/v1/info` answers meanwhile (the attack: 1,069 MB and 4.6 s)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nodeproc import Author, Cluster, get_msgpack, post_actions, request

from ledger.queries import PAGE_BYTES

MB = 2**20


def largest_settlement(author: Author, interval: int):
    """A settlement of 110 trades (the most allowed) with wide integers: about 16.4 KB."""
    other = bytes([7]) * 32
    trades = [[author.agent, other, 2**20, 2**20, bytes(32), bytes(32)] for _ in range(110)]
    payload = {"interval": interval, "mechanism": "merit-order", "book": bytes(32),
               "trades": trades, "grid_import_wh": 0, "grid_export_wh": 0}
    return author.next("settlement", payload)


def rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


def test_ten_clients_reading_the_largest_pages_stay_under_150_mb(tmp_path):
    with Cluster(tmp_path) as c:
        a = c.found("A")
        proc = c.start(a)
        author = Author(name="big")
        actions = [author.genesis()] + [largest_settlement(author, i) for i in range(1, 1000)]
        assert min(len(x.action_bytes) for x in actions[1:]) > 16_000
        for i in range(0, 1000, 200):
            assert post_actions(a.url, actions[i : i + 200])["accepted"] == len(actions[i:i + 200])
        # the page is cut by bytes, and walking `next` still gives the whole chain
        page = request("GET", f"{a.url}/v1/agents/{author.agent_hex}/chain?limit=1000").json()
        assert 0 < len(page["actions"]) < 1000 and page["next"] == len(page["actions"])
        raw = get_msgpack(f"{a.url}/v1/gossip/chain/{author.agent_hex}?limit=1000")
        assert sum(len(b) + len(s) for b, s in raw) <= PAGE_BYTES and len(raw) < 1000
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # the peak from here on
        stop = threading.Event()
        slowest = [0.0]

        def reader(k: int) -> int:
            pages = 0
            while not stop.is_set():
                path = (f"/v1/agents/{author.agent_hex}/chain?limit=1000&from={k * 50}"
                        if k % 2 else f"/v1/gossip/chain/{author.agent_hex}?limit=1000")
                assert request("GET", a.url + path, timeout=60).status == 200
                pages += 1
            return pages

        with ThreadPoolExecutor(10) as pool:
            readers = [pool.submit(reader, k) for k in range(10)]
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                t = time.monotonic()
                assert request("GET", f"{a.url}/v1/info", timeout=30).status == 200
                slowest[0] = max(slowest[0], time.monotonic() - t)
                time.sleep(0.2)
            stop.set()
            pages = sum(r.result() for r in readers)
        peak = rss_mb(proc.pid, "VmHWM")
        assert pages >= 10, pages
        assert peak < 150, f"peak RSS {peak:.0f} MB over {pages} pages"
        assert slowest[0] < 1.0, f"/v1/info took {slowest[0]:.2f} s while 10 clients read"
