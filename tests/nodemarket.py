"""A market of real node processes, for protocol-2 tests and benchmarks (a helper, not a test).

    with Kit(tmp_path, interval_s=4) as kit:   # the default kit, 7 `picogrid run` processes
        k = kit.first                          # the first interval every node can order for
        views = kit.final(k)                   # each node's /v1/intervals/k after F_k
        assert kit.audit(0)[0] == 0            # `picogrid audit` of node 0 exits 0

`Kit` starts the nodes with the demo's launcher (as `picogrid demo` does), knows the charter's
deadlines, and can SIGKILL, SIGSTOP and restart a node. `Sybils` are members without a node
(`nodedata.Author`) that sign orders, views and settlements in-process and post them to the
real nodes: a grid of 1,000 agents on a few processes. Every wait has a deadline.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nodedata import Author
from nodehttp import get_json, get_msgpack, heads, post_actions, request

from ledger.actions import Action
from ledger.charter import Charter, parse_charter
from ledger.membrane import Membrane
from ledger.store import Store
from ledger.view import trades_digest
from market.book import Deadlines, deadlines
from market.clearing import clear
from market.scenario import Scenario, default_scenario
from market.settle import settlement_payload_v2
from node.cli import launcher
from node.cli.processes import run_argv, spawn
from node.p2p.wire import batches
from node.trading.grid_views import book_of, interval_book, view_to_sign

GRID = launcher.GRID


def now_us() -> int:
    return time.time_ns() // 1000


def wait_for(predicate, timeout: float, what: str, every: float = 0.2):
    """`predicate()` once truthy, or AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def sleep_until(us: int) -> None:
    """Sleep until the wall clock reads `us`."""
    time.sleep(max(0.0, (us - now_us()) / 1e6))


class Kit:
    """A scenario's agents as real node processes (7 for the default kit), on free ports."""

    def __init__(
        self,
        base: Path,
        interval_s: int = 4,
        scenario: Scenario | None = None,
        first: int = 10,
        round_ms: int = 300,
        start_in_s: float | None = None,
    ) -> None:
        self.scenario = scenario or default_scenario()
        n = len(self.scenario.agents)
        port = launcher.free_port_run(n)
        lead = start_in_s if start_in_s is not None else 3.0 + 0.8 * n
        self.nodes = launcher.prepare(
            Path(base),
            self.scenario,
            port,
            interval_s,
            self.scenario.mechanism,
            start_in_s=lead,
            first_interval=first,
            round_ms=round_ms,
        )
        launcher.start(self.nodes)
        late = launcher.wait_ready(self.nodes, timeout=60)
        assert not late, f"nodes did not start: {late}\n{self.logs()}"
        self.urls = [node.url for node in self.nodes]
        self.charter: Charter = parse_charter(
            request("GET", f"{self.urls[0]}/v1/community/charter").body
        )
        self.first = launcher.first_open_interval(self.urls[0], first, margin_s=1.0)

    def __enter__(self) -> Kit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every node (SIGCONT first: a stopped process cannot take SIGTERM)."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                os.kill(node.proc.pid, signal.SIGCONT)
        launcher.stop(self.nodes)

    def logs(self) -> str:
        out = []
        for node in self.nodes:
            log = node.dir / "node.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            out.append(f"--- {node.name}\n{text[-4000:]}")
        return "\n".join(out)

    def tracebacks(self) -> list[str]:
        """Names of nodes whose log holds a traceback."""
        return [
            n.name
            for n in self.nodes
            if "Traceback" in (n.dir / "node.log").read_text(errors="replace")
        ]

    # -- time ------------------------------------------------------------------------------

    def deadlines(self, k: int) -> Deadlines:
        return deadlines(self.charter, k)

    def next_interval(self, margin_s: float = 1.0) -> int:
        """The first interval whose gate closes more than `margin_s` from now."""
        k = self.first
        while self.deadlines(k).gate_us <= now_us() + margin_s * 1e6:
            k += 1
        return k

    # -- reading ---------------------------------------------------------------------------

    def view(self, k: int, i: int = 0) -> dict:
        return get_json(f"{self.urls[i]}/v1/intervals/{k}", timeout=60)

    def final(self, k: int, nodes: list[int] | None = None, timeout: float = 60.0) -> list[dict]:
        """Each node's view of `k` once its final deadline passed and no trade is pending."""
        sleep_until(self.deadlines(k).final_us + 200_000)
        out = []
        for i in nodes if nodes is not None else range(len(self.nodes)):
            out.append(
                wait_for(
                    lambda i=i: _final_view(self.view(k, i)),
                    timeout,
                    f"interval {k} final on {self.nodes[i].name}",
                    every=0.5,
                )
            )
        return out

    def audit(self, i: int) -> tuple[int, dict]:
        """`picogrid audit <node i> --json`: exit code and report."""
        done = subprocess.run(
            [sys.executable, "-m", "node.cli", "audit", self.urls[i], "--json"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        try:
            return done.returncode, json.loads(done.stdout)
        except ValueError:
            return done.returncode, {"stdout": done.stdout, "stderr": done.stderr}

    # -- faults ----------------------------------------------------------------------------

    def kill(self, i: int) -> None:
        """SIGKILL node `i` (no clean stop: whatever it had not written is lost)."""
        proc = self.nodes[i].proc
        assert proc is not None
        proc.kill()
        proc.wait(10)

    def restart(self, i: int) -> None:
        """Start node `i` again from its data directory; returns once it answers."""
        node = self.nodes[i]
        node.proc = spawn(run_argv(node.dir), node.dir / "node.log")
        assert not launcher.wait_ready([node], timeout=60), self.logs()

    def pause(self, i: int, seconds: float) -> None:
        """SIGSTOP node `i` for `seconds` (it hears nothing and says nothing), then SIGCONT."""
        proc = self.nodes[i].proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(proc.pid, signal.SIGCONT)


def _final_view(view: dict | None) -> dict | None:
    if not view or not view.get("settlements"):
        return None
    return None if any(t["status"] == "pending" for t in view["trades"]) else view


def counts(view: dict) -> dict[str, int]:
    """Trades of an interval view by status."""
    out: dict[str, int] = {}
    for t in view["trades"]:
        out[t["status"]] = out.get(t["status"], 0) + 1
    return out


def post_all(url: str, actions: list[Action]) -> dict:
    """Post actions in gossip batches; the summed answer (accepted, rejected)."""
    accepted, rejected = 0, []
    for batch in batches([a.wire() for a in actions]):
        got = post_actions(url, batch)
        accepted += got["accepted"]
        rejected += got.get("rejected", [])
    return {"accepted": accepted, "rejected": rejected}


class Sybils:
    """`n` consumers without nodes in the kit's grid; they bid, view and settle in-process."""

    def __init__(
        self, kit: Kit, n: int, bid_wh: int = 1, price: int = 40_000, name: str = "sybil"
    ) -> None:
        self.kit = kit
        self.bid_wh, self.price = bid_wh, price
        self.authors = [
            Author(community=launcher.COMMUNITY, grid=GRID, name=f"{name} {i}") for i in range(n)
        ]
        self.store: Store | None = None
        self.voted: dict[bytes, frozenset[bytes]] = {}  # our views: voter -> order hashes

    def join(self) -> None:
        """Sign and post every sybil's genesis to every node."""
        self.post_everywhere([a.genesis() for a in self.authors])

    def bid(self, k: int, urls: list[str] | None = None) -> list[Action]:
        """Each sybil bids for `k` (stamped now), posted to `urls` (default: every node)."""
        bids = [
            a.next("bid", {"interval": k, "energy_wh": self.bid_wh, "price": self.price})
            for a in self.authors
        ]
        if urls is None:
            self.post_everywhere(bids)
        for url in urls or ():
            got = post_all(url, bids)
            assert not got["rejected"], got["rejected"][:3]
        return bids

    def local_store(self) -> Store:
        """An in-memory store of our chains without their views (those are `self.voted`) and
        of every other chain node 0 holds, as gossip would copy them; kept up to date."""
        if self.store is None:
            self.store = Store(":memory:", Membrane(launcher.COMMUNITY))
        ours = {a.agent for a in self.authors}
        mine = [
            (x.action_bytes, x.signature)
            for a in self.authors
            for x in a.actions
            if x.type in ("genesis", "offer", "bid")
        ]
        self.store.ingest(mine, now_us())
        url = self.kit.urls[0]
        for author, (seq, _) in heads(url).items():
            held = self.store.head(author)
            if author not in ours and (held is None or held.seq < seq):
                _copy_chain(self.store, url, author.hex(), 0 if held is None else held.seq + 1)
        return self.store

    def view(self, k: int, voters: int | None = None, early: bool = False) -> list[Action]:
        """After `k`'s grace (`early`: just after its gate, as soon as a view may be stamped),
        the first `voters` sybils (default all) sign their views of every order node 0 held
        by the gate, stamped before the view deadline."""
        d = self.kit.deadlines(k)
        sleep_until(d.gate_us + 300_000 if early else d.view_from_us + 50_000)
        pages = view_to_sign(self.local_store(), GRID, k, d.gate_us)
        hashes = frozenset(h for p in pages for h in p["orders"])
        views = []
        for a in self.authors[:voters]:
            views += [a.next("view", page) for page in pages]
            self.voted[a.agent] = hashes
        assert all(v.ts <= d.view_us for v in views), "the sybils' views were stamped late"
        self.post_everywhere(views)  # they count by their stamp, however long the posts take
        return views

    def post_everywhere(self, actions: list[Action]) -> None:
        """Post to every node at once (one thread each); every action must be taken."""
        with ThreadPoolExecutor(len(self.kit.urls)) as pool:
            for got in pool.map(lambda url: post_all(url, actions), self.kit.urls):
                assert not got["rejected"], got["rejected"][:3]

    def settle(self, k: int) -> list[Action]:
        """After `k`'s view deadline, every sybil settles over the book of the views held."""
        sleep_until(self.kit.deadlines(k).view_us + 300_000)
        ib = interval_book(self.local_store(), [self.kit.charter], GRID, k)
        assert ib is not None
        ctx = dataclasses.replace(ib.context, views={**ib.context.views, **self.voted})
        book = book_of(ctx)
        assert book.quorum and not book.missing, book
        clearing = clear(
            list(book.orders), dict(ctx.participants), ctx.rules, interval_ms=ctx.interval_ms
        )
        first = settlement_payload_v2(
            self.authors[0].agent, k, ctx.rules.mechanism, book, clearing, ctx.settlers
        )
        settlements = []
        for a in self.authors:  # the same book and views for all: only their trades differ
            trades = [t.to_wire() for t in clearing.trades_of(a.agent)]
            payload = {
                **first,
                "trades": trades,
                "trade_count": len(trades),
                "trades_digest": trades_digest(trades),
                "grid_import_wh": clearing.grid_import_wh.get(a.agent, 0),
                "grid_export_wh": clearing.grid_export_wh.get(a.agent, 0),
            }
            settlements.append(a.next("settlement", payload))
        self.post_everywhere(settlements)
        return settlements


def _copy_chain(store: Store, url: str, author_hex: str, start: int = 0) -> None:
    while True:
        page = _chain_page(url, author_hex, start)
        if not page:
            return
        store.ingest([(bytes(b), bytes(s)) for b, s in page], now_us())
        start += len(page)


def _chain_page(url: str, author_hex: str, start: int) -> list:
    return get_msgpack(f"{url}/v1/gossip/chain/{author_hex}?from={start}&limit=1000")


__all__ = ["GRID", "Kit", "Sybils", "counts", "now_us", "post_all", "sleep_until", "wait_for"]
