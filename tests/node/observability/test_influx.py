"""The InfluxDB exporter against a real `influxd` (Debian's InfluxDB 1.x) on 127.0.0.1.

The server is started by this module with its own config and data under a temporary directory
and a free port; nodes run in-process on 127.0.0.1 and trade at one interval a second. Where the
order of writes matters, a small recording proxy (a real aiohttp server) sits between the node
and influxd: it can also refuse writes (503) like a failing server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from nodeinproc import HOME1, HOME2, HOST, SOLAR, community, eventually, free_port, start_all

from ledger.charter import parse_charter
from ledger.store import Store
from market.intervals import interval_start_us
from node.config import NodeConfig
from node.errors import UserError
from node.node import Node
from node.observability.influx import DiskQueue, InfluxSettings, point
from node.trading.interval_view import interval_state

# -- a real influxd ------------------------------------------------------------------------------


class Influxd:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.conf = root / "influxdb.conf"
        self.conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "{HOST}:{free_port()}"\n'
            f'[meta]\n  dir = "{root / "meta"}"\n'
            f'[data]\n  dir = "{root / "data"}"\n  wal-dir = "{root / "wal"}"\n'
            "  query-log-enabled = false\n"
            f'[http]\n  bind-address = "{HOST}:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
        )

    def start(self, binary: str) -> None:
        log = open(self.root / "influxd.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [binary, "-config", str(self.conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"influxd exited {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    pass
                if self._get("/ping")[0] == 204:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"influxd did not answer within 30 s:\n{self.log()}")

    def _get(self, path: str) -> tuple[int, bytes]:
        import urllib.request

        with urllib.request.urlopen(self.url + path, timeout=5) as resp:  # noqa: S310
            return resp.status, resp.read()

    def log(self) -> str:
        path = self.root / "influxd.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


MISSING = (
    "influxd (InfluxDB 1.x) is not installed: `make test` installs the Debian package "
    "`influxdb` (as root: apt-get install influxdb)"
)


def influxd_binary() -> str | None:
    return shutil.which("influxd") or (
        "/usr/bin/influxd" if Path("/usr/bin/influxd").exists() else None
    )


def test_influxd_is_installed():
    if influxd_binary() is None:
        pytest.fail(MISSING, pytrace=False)


@pytest.fixture(scope="module")
def influxd(tmp_path_factory):
    binary = influxd_binary()
    if binary is None:
        pytest.fail(MISSING, pytrace=False)
    server = Influxd(tmp_path_factory.mktemp("influxd"))
    server.start(binary)
    yield server
    server.stop()


async def query(influx_url: str, db: str, q: str) -> list[dict]:
    """Rows of an InfluxQL query (times in microseconds), every series together."""
    async with (  # bounded: a server slow on a loaded machine fails the test, never hangs it
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s,
        s.get(f"{influx_url}/query", params={"db": db, "q": q, "epoch": "u"}) as resp,
    ):
        assert resp.status == 200, await resp.text()
        data = await resp.json()
    rows = []
    for result in data["results"]:
        assert "error" not in result, result
        for series in result.get("series", []):
            for values in series["values"]:
                rows.append(dict(zip(series["columns"], values, strict=True)))
    return rows


# -- a recording proxy (or a stand-in server when it has no target) ---------------------------


class Proxy:
    def __init__(self, target: str | None = None, fail_writes: int = 0) -> None:
        self.target = target
        self.fail_writes = fail_writes
        self.requests: list[dict] = []
        self.accepted: list[str] = []  # lines of writes the server took, in arrival order
        self.failed: list[str] = []  # lines of writes answered 503
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        is_write = request.path in ("/write", "/api/v2/write")
        record = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": dict(request.headers),
            "body": body,
        }
        self.requests.append(record)
        if is_write and self.fail_writes > 0:
            self.fail_writes -= 1
            self.failed += body.decode().splitlines()
            return web.Response(status=503, text="overloaded, try later")
        if self.target is None:
            status, data = 204, b""
        else:
            async with (
                aiohttp.ClientSession() as s,
                s.request(
                    request.method,
                    self.target + request.path_qs,
                    data=body,
                    headers={"Content-Type": request.headers.get("Content-Type", "text/plain")},
                ) as resp,
            ):
                status, data = resp.status, await resp.read()
        if is_write and 200 <= status < 300:
            self.accepted += body.decode().splitlines()
        return web.Response(status=status, body=data)

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, HOST, port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def own_readings(cfg: NodeConfig) -> tuple[dict[int, dict], list]:
    """interval -> our signed reading payload, read from the (stopped) node's store; charters."""
    store = Store(cfg.store_path)
    try:
        charters = [parse_charter(s, bytes.fromhex(cfg.admin)) for s in store.charters()]
        me = next(r["author"] for r in store.agents() if r["name"] == cfg.name)
        readings = {
            a.payload["interval"]: a.payload
            for a in store.chain(me, 0, 10_000)
            if a.type == "reading"
        }
        return readings, charters
    finally:
        store.close()


READING_FIELDS = ("import_wh", "export_wh", "bus_mv", "current_ua", "power_uw", "samples")


# -- line protocol ---------------------------------------------------------------------------------


def test_line_protocol_types_and_escapes():
    line = point(
        "m x",
        {"b": "v,1 =2", "a": "x", "empty": "", "none": None},
        {"i": 5, "f": 0.25, "s": 'say "hi" \\', "t": True, "n": None},
        1700,
    )
    assert line == ('m\\ x,a=x,b=v\\,1\\ \\=2 i=5i,f=0.25,s="say \\"hi\\" \\\\",t=true 1700')
    assert point("m", {"a": "x"}, {"n": None}, 1) is None  # a point needs a field
    assert point("m", {"a": "tail\\"}, {"v": 1}, 1) == "m,a=tail/ v=1i 1"
    assert (
        point("m", {"a": "two\nlines"}, {"v": float("nan"), "w": 1}, 1) == "m,a=two\\ lines w=1i 1"
    )


async def test_escaped_point_reads_back_from_influxd(influxd):
    db = "escapes"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{influxd.url}/query", params={"q": f'CREATE DATABASE "{db}"'}) as r:
            assert r.status == 200
        line = point(
            "probe",
            {"agent": 'Home, "1" = a\\b c'},
            {"text": 'say "hi" \\ ok', "wh": 7, "ratio": 0.5},
            1_000_000,
        )
        async with s.post(
            f"{influxd.url}/write", params={"db": db, "precision": "u"}, data=line.encode()
        ) as r:
            assert r.status == 204, await r.text()
    rows = await query(influxd.url, db, "SELECT * FROM probe")
    assert rows == [
        {
            "time": 1_000_000,
            "agent": 'Home, "1" = a/b c',
            "text": 'say "hi" \\ ok',
            "wh": 7,
            "ratio": 0.5,
        }
    ]


def test_settings_are_checked(tmp_path):
    cfg = NodeConfig(
        dir=tmp_path,
        name="n",
        role="consumer",
        household="h",
        grid="g",
        community="c",
        admin="00" * 32,
        influx_url="http://127.0.0.1:1",
    )
    assert InfluxSettings.from_config(cfg).write_request() == (
        "http://127.0.0.1:1/write",
        {"db": "picogrid", "precision": "u"},
    )
    cfg.extra = {"influx": {"url": "http://127.0.0.1:1/", "bucket": "b", "org": "o"}}
    s = InfluxSettings.from_config(cfg)
    assert s.version == 2
    assert s.write_request() == (
        "http://127.0.0.1:1/api/v2/write",
        {"org": "o", "bucket": "b", "precision": "us"},
    )
    for bad in (
        {"url": "127.0.0.1:8086"},
        {"url": "http://x", "version": 3},
        {"url": "http://x", "version": 2, "bucket": "b"},
        {"url": "http://x", "batch_lines": 0},
    ):
        cfg.extra = {"influx": bad}
        with pytest.raises(UserError):
            InfluxSettings.from_config(cfg)


# -- a trading node exports to influxd -------------------------------------------------------------


async def test_readings_trades_and_kpis_arrive(tmp_path, influxd):
    db = "live"
    cfgs = community(
        tmp_path,
        [HOME1, SOLAR, HOME2],
        influx={"url": influxd.url, "database": db, "max_backoff_s": 1},
    )
    nodes = await start_all(cfgs)
    home = nodes[0]
    try:
        assert home.influx is not None and getattr(nodes[1], "influx", None) is None

        async def enough() -> bool:
            kpis = await query(influxd.url, db, "SELECT * FROM kpi")
            return len(kpis) >= 2 and home.influx.sent_points > 0

        await eventually(enough, 25, "two intervals of KPIs in InfluxDB")
        assert home.status.counts()["sending"] == 0
    finally:
        for node in nodes:
            await node.stop()

    readings, charters = own_readings(cfgs[0])
    rows = await query(influxd.url, db, "SELECT * FROM reading")
    assert rows, "no reading arrived"
    by_time = {r["time"]: r for r in rows}
    assert len(by_time) == len(rows)
    start_of = {interval_start_us(charters, k): k for k in readings}
    last = max(start_of[t] for t in by_time)
    for k, payload in readings.items():  # every reading up to the last one sent: no gap
        if k > last:
            continue
        row = by_time[interval_start_us(charters, k)]
        assert {f: row[f] for f in READING_FIELDS} == {f: payload[f] for f in READING_FIELDS}
        assert (row["agent"], row["role"], row["grid"], row["household"], row["sensor"]) == (
            "Home 1",
            "consumer",
            "kit",
            "home1",
            payload["sensor"],
        )

    kpis = await query(influxd.url, db, "SELECT * FROM kpi")
    trades = await query(influxd.url, db, "SELECT * FROM trade")
    store = Store(cfgs[0].store_path)
    try:
        me = next(r["author"] for r in store.agents() if r["name"] == "Home 1")
        for kpi in kpis:
            k = start_of[kpi["time"]]
            assert 0 <= kpi["self_sufficiency"] <= 1
            state = interval_state(store, charters, "kit", k)
            mine = [s for s in state.statuses if me in (s.trade.seller, s.trade.buyer)]
            sent = sorted((t for t in trades if t["time"] == kpi["time"]), key=lambda t: t["n"])
            assert [
                (t["seller"], t["buyer"], t["energy_wh"], t["price"], t["status"]) for t in sent
            ] == [
                (
                    state.participants[s.trade.seller].name,
                    state.participants[s.trade.buyer].name,
                    s.trade.energy_wh,
                    s.trade.price,
                    s.status,
                )
                for s in mine
            ]
        assert any(t["status"] == "confirmed" and t["buyer"] == "Home 1" for t in trades)
    finally:
        store.close()


async def test_unreachable_then_failing_server_loses_nothing(tmp_path, influxd):
    db = "outage"
    port = free_port()  # nothing listens here until the proxy starts
    cfg = community(
        tmp_path,
        [HOME1],
        influx={"url": f"http://{HOST}:{port}", "database": db, "max_backoff_s": 1},
    )[0]
    queue_dir = cfg.dir / "influx" / "queue"

    node = Node(cfg)
    await node.start()
    try:
        await eventually(
            lambda: len(node.influx.queue) >= 3 and node.status.counts()["sending"] >= 2,
            20,
            "readings queued while InfluxDB is unreachable",
        )
        on_disk = [
            line for p in sorted(queue_dir.glob("*.lp")) for line in p.read_text().splitlines()
        ]
        assert on_disk == node.influx.queue.all_lines()
        assert "Cannot connect" in node.influx.last_error or "Connect" in node.influx.last_error
        # the "sending" code shows: two blinks on the status LED (a mock pin here)
        status_pin = node.hardware.status.status_led.pin
        assert sum(1 for s in status_pin.states if s.state) >= 2
        async with aiohttp.ClientSession() as s, s.get(f"{cfg.url}/metrics") as r:
            text = await r.text()
        values = dict(
            line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
        )
        assert float(values['picogrid_meter_errors_total{level="sending"}']) >= 2
        assert float(values["picogrid_influx_queued_points"]) >= 3
    finally:
        await node.stop()

    leftover = DiskQueue(queue_dir).all_lines()
    assert len(leftover) >= 3

    proxy = Proxy(influxd.url, fail_writes=2)  # up, but failing its first two writes
    await proxy.start(port)
    node = Node(cfg)  # the restart
    await node.start()
    try:
        await eventually(
            lambda: len(proxy.accepted) > len(leftover) and len(node.influx.queue) == 0,
            25,
            "the leftovers and new points sent",
        )
        assert proxy.failed and set(proxy.failed) <= set(proxy.accepted)  # refused, then resent
        assert node.status.counts()["sending"] >= 2  # each 503 reported
    finally:
        await node.stop()
        await proxy.stop()
    # in order: the server took the leftovers first, exactly as they were queued, then the rest
    assert proxy.accepted[: len(leftover)] == leftover
    assert len(set(proxy.accepted)) == len(proxy.accepted)
    # nothing lost: every reading signed, while the server was down or not, is in InfluxDB
    readings, charters = own_readings(cfg)
    rows = await query(influxd.url, db, "SELECT * FROM reading")
    times = {r["time"] for r in rows}
    last = max(times)
    expected = {interval_start_us(charters, k) for k in readings}
    assert {t for t in expected if t <= last} == times
    assert len(times) >= 4


async def test_a_point_the_server_refuses_is_set_aside(tmp_path, influxd):
    db = "refusals"
    cfg = community(
        tmp_path, [HOME1], influx={"url": influxd.url, "database": db, "max_backoff_s": 1}
    )[0]
    good1, bad, good2 = (
        "probe,case=t v=1i 1000000",
        'probe,case=t v="text" 1000001',
        "probe,case=t v=2i 1000002",
    )
    DiskQueue(cfg.dir / "influx" / "queue").put([good1, bad, good2])
    node = Node(cfg)
    await node.start()
    try:
        await eventually(
            lambda: node.influx.rejected_points == 1 and node.influx.sent_points >= 2,
            15,
            "the refused point set aside",
        )
    finally:
        await node.stop()
    assert (cfg.dir / "influx" / "rejected.lp").read_text() == bad + "\n"
    rows = await query(influxd.url, db, "SELECT v FROM probe")
    assert [(r["time"], r["v"]) for r in rows] == [(1_000_000, 1), (1_000_002, 2)]
    assert node.status.counts()["sending"] >= 1


async def test_version_2_write_api(tmp_path):
    port = free_port()
    server = Proxy(target=None)  # a stand-in for an InfluxDB 2.x: records and answers 204
    await server.start(port)
    cfg = community(
        tmp_path,
        [HOME1],
        influx={
            "url": f"http://{HOST}:{port}",
            "version": 2,
            "bucket": "energy",
            "org": "village",
            "token": "s3cret",
            "max_backoff_s": 1,
        },
    )[0]
    node = Node(cfg)
    await node.start()
    try:
        await eventually(lambda: node.influx.sent_points >= 2, 15, "points written")
    finally:
        await node.stop()
        await server.stop()
    assert server.requests
    for r in server.requests:  # no database to create in 2.x: only writes
        assert (r["method"], r["path"]) == ("POST", "/api/v2/write")
        assert r["query"] == {"org": "village", "bucket": "energy", "precision": "us"}
        assert r["headers"]["Authorization"] == "Token s3cret"
    assert all(line.startswith(("reading,", "kpi,")) for line in server.accepted)
