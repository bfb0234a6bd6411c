"""`GET /metrics` of real in-process nodes, and the hardware glue's error reports behind it.

The nodes trade at one interval a second on 127.0.0.1 (see `nodeinproc.community`). Traffic the
market loop would never make (a bad signature, a gap, a fork, a disputed trade) is signed here
with `ledger.testing` and posted to the gossip endpoint, as a misbehaving peer would.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import socket

import aiohttp
import msgpack
import pytest
from nodeinproc import HOME1, HOME2, HOST, SOLAR, community, eventually, free_port, start_all

from hardware.ina219 import INA219
from hardware.meter import INA219Meter
from hardware.sim_ina219 import SimulatedINA219Bus
from hardware.status import ErrorLevel, StatusReporter
from ledger.actions import Action
from ledger.chain import now_us
from ledger.errors import REASONS
from ledger.testing import ChainSigner, identity, settlement_payload
from market.book import deadlines
from node.devices.hardware import read_meter
from node.http.market_routes import interval_json
from node.node import Node

LEVELS = ("critical", "connection", "sending", "measuring", "short", "silent")
SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_]\w*="(?:[^"\\]|\\.)*",?)*\})? '
    r"(-?[0-9.e+]+|NaN|[+-]Inf)$"
)


def parse(text: str) -> dict[str, float]:
    """Samples by `name{labels}`; checks the exposition format on the way (HELP and TYPE before
    each family's samples, one family block per name, well-formed sample lines)."""
    samples: dict[str, float] = {}
    typed: dict[str, str] = {}
    helped: set[str] = set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helped, f"two HELP lines for {name}"
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge"), line
            assert name in helped and name not in typed, line
            typed[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name = match.group(1)
            assert name in typed, f"{name} has no TYPE line before it"
            assert name == list(typed)[-1], f"{name} is outside its family's block"
            if typed[name] == "counter":
                assert name.endswith("_total"), name
            key = name + (match.group(2) or "")
            assert key not in samples, f"{key} twice"
            samples[key] = float(match.group(3))
    return samples


async def scrape(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return parse(await resp.text())


async def post_actions(url: str, actions) -> tuple[dict, int]:
    body = msgpack.packb(
        [a.wire() if isinstance(a, Action) else list(a) for a in actions], use_bin_type=True
    )
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{url}/v1/gossip/actions", data=body, headers={"Content-Type": "application/msgpack"}
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return msgpack.unpackb(await resp.read(), raw=False), len(body)


def test_parse_refuses_what_prometheus_would():
    good = "# HELP a_total x\n# TYPE a_total counter\na_total 1\n"
    assert parse(good) == {"a_total": 1.0}
    for bad in (
        "a_total 1\n",
        "# HELP a x\n# TYPE a counter\na 1\n",
        good + 'a_total{x="1} 2\n',
        good + "a_total 2\n",
        good.rstrip("\n"),
    ):
        with pytest.raises(AssertionError):
            parse(bad)


async def test_metrics_of_a_trading_node(tmp_path):
    cfgs = community(tmp_path, [HOME1, SOLAR, HOME2])
    nodes = await start_all(cfgs)
    home = nodes[0]
    url = cfgs[0].url
    try:
        await eventually(
            lambda: (
                home.agent.last_settled is not None
                and home.metrics["gossip_rounds"] >= 3
                and all(p.lag is not None for p in home.peers.all())
            ),
            15,
            "a settled interval and a few gossip rounds",
        )
        m = await scrape(url)
        for reason in REASONS:  # every reason code, 0 included
            assert m[f'picogrid_actions_rejected_total{{reason="{reason}"}}'] == 0
        for level in LEVELS:
            assert f'picogrid_meter_errors_total{{level="{level}"}}' in m
        assert m["picogrid_peers"] == 2
        for cfg in cfgs[1:]:
            assert m[f'picogrid_peer_lag{{peer="{cfg.url}"}}'] >= 0
        assert m['picogrid_gossip_bytes_total{direction="in"}'] > 0
        assert m['picogrid_gossip_bytes_total{direction="out"}'] > 0
        assert m["picogrid_gossip_rounds_total"] >= 3
        assert 1 <= m["picogrid_intervals_settled_total"] <= home.metrics["intervals_settled"]
        assert m["picogrid_actions_stored"] >= 3 + 2 * m["picogrid_intervals_settled_total"]
        assert m["picogrid_forked_agents"] == 0
        disputed = m["picogrid_trades_disputed"]  # a node that starts late may cause some
        assert m['picogrid_trades{status="confirmed"}'] >= 1
        assert m["picogrid_uptime_seconds"] > 0
        assert "picogrid_influx_queued_points" not in m  # no exporter configured

        # A misbehaving peer: a dispute, a bad signature, a gap, a fork.
        k = home.agent.last_settled
        ts = now_us() - 1_000_000
        x, y = ChainSigner(identity(901), ts, 1000), ChainSigner(identity(902), ts, 1000)
        gx = x.genesis("c", "kit", name="X", role="generator", household="x")
        gy = y.genesis("c", "kit", name="Y", household="y")
        trade = [x.agent, y.agent, 100, 15000, bytes(32), bytes([1]) * 32]
        sx = x.next("settlement", settlement_payload(k, [trade]))
        sy = y.next("settlement", settlement_payload(k, []))
        forger = x.next("settlement", settlement_payload(k + 1, []))
        forged = (forger.action_bytes, bytes(64))  # a signature that does not verify
        z = ChainSigner(identity(903), ts, 1000)
        z.genesis("c", "kit", name="Z", household="z")
        z.next("bid")
        gap = z.next("bid")  # seq 2 without 0 and 1: held as pending
        w = ChainSigner(identity(904), ts, 1000)
        gw = w.genesis("c", "kit", name="W", household="w")
        w1 = w.next("bid")
        w1b = w.at(gw, "bid")  # another action at seq 1: a fork
        bytes_in = m['picogrid_gossip_bytes_total{direction="in"}']
        posted, answers = 0, []
        for batch in ([gx, gy, sx, sy], [forged], [gap], [gw, w1], [w1b]):
            answer, size = await post_actions(url, batch)
            posted += size
            answers.append((answer["accepted"], answer["pending"], answer["rejected"]))
        assert answers == [
            (4, 0, []),
            (0, 0, [[0, "bad-signature"]]),
            (0, 1, []),
            (2, 0, []),
            (1, 0, []),
        ]

        await eventually(lambda: home.store.pending_count() == 1, 5, "only the gap pending")
        # Protocol 2: a trade the two sides disagree on is pending until k's final deadline
        # (a revision could still heal it), then disputed.
        final_us = deadlines(home.charters, k).final_us
        await asyncio.sleep(max(0.0, (final_us - now_us()) / 1e6 + 0.1))
        m = await scrape(url)
        assert m['picogrid_actions_rejected_total{reason="bad-signature"}'] == 1
        for reason in set(REASONS) - {"bad-signature"}:
            assert m[f'picogrid_actions_rejected_total{{reason="{reason}"}}'] == 0, reason
        assert m["picogrid_pending_actions"] >= 1
        assert m["picogrid_forked_agents"] == 1
        assert m["picogrid_forks_detected_total"] == 1
        assert m['picogrid_gossip_bytes_total{direction="in"}'] >= bytes_in + posted
        view = interval_json(home, "kit", k)
        assert [t["status"] for t in view["trades"] if t["seller_name"] == "X"] == ["disputed"]
        assert m["picogrid_trades_disputed"] >= disputed + 1
        assert m['picogrid_trades{status="disputed"}'] == m["picogrid_trades_disputed"]

        short = m['picogrid_meter_errors_total{level="short"}']
        home.status.report(ErrorLevel.SHORT, "a loose wire, for the test")
        m = await scrape(url)
        assert m['picogrid_meter_errors_total{level="short"}'] == short + 1
    finally:
        for node in nodes:
            await node.stop()


def answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


async def test_critical_stops_a_node_run_like_picogrid_run(tmp_path):
    cfg = community(tmp_path, [HOME1])[0]
    node = Node(cfg)
    node.managed = True  # what `picogrid run` does: it waits on node.stop_event
    await node.start()
    stop = node.stop_event
    try:
        node.status.report(ErrorLevel.MEASURING, "a bad sample: not a reason to stop")
        node.status.report(ErrorLevel.SENDING, "a failed send: not a reason to stop")
        await asyncio.sleep(0.3)
        assert not stop.is_set() and answers(cfg.listen_host_port()[1])
        node.status.report(ErrorLevel.CRITICAL, "the store's disk is gone")
        await asyncio.wait_for(stop.wait(), 5)
    finally:
        await node.stop()
    assert node.stop_reason == "the store's disk is gone"  # picogrid run then exits 1
    assert node.hardware.critical == "the store's disk is gone"
    assert node.status.counts()["critical"] == 1
    assert not answers(cfg.listen_host_port()[1])


async def test_critical_stops_an_embedded_node(tmp_path):
    cfg = community(tmp_path, [HOME1])[0]
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # nobody handles SIGTERM
    try:
        node = Node(cfg)
        await node.start()
        port = cfg.listen_host_port()[1]
        assert answers(port)
        node.status.report(ErrorLevel.CRITICAL, "meter wiring shorted")
        await eventually(lambda: not answers(port), 5, "the node to stop listening")
        await eventually(lambda: node.hardware._stop_task.done(), 5, "the stop to finish")
        assert node.hardware._stop_task.exception() is None
        assert all(t.done() for t in node.tasks)
    finally:
        signal.signal(signal.SIGTERM, previous)


async def test_connection_failures_are_reported_once_not_every_round(tmp_path, caplog):
    dead = [f"http://{HOST}:{free_port()}" for _ in range(3)]
    cfg = community(tmp_path, [HOME1])[0]
    cfg.peers = dead
    node = Node(cfg)
    caplog.set_level(logging.ERROR, logger="picogrid.hardware")
    await node.start()
    node.hardware.startup_grace_s = 0  # peers started together get 10 s to come up; not here
    try:
        await eventually(lambda: node.status.counts()["connection"] >= 1, 10, "a CONNECTION report")
        await asyncio.sleep(3)  # many more failed rounds (round_ms = 200), back-off included
        assert sum(p.failures for p in node.peers.all()) > 3
        assert node.status.counts()["connection"] == 1
        m = await scrape(cfg.url)
        assert m['picogrid_meter_errors_total{level="connection"}'] == 1
        assert m["picogrid_peers_live"] == 0
    finally:
        await node.stop()
    logged = [r.getMessage() for r in caplog.records if "connection error" in r.getMessage()]
    assert len(logged) == 1 and any(url in logged[0] for url in dead)


async def test_hardware_node_drives_its_own_leds(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="picogrid.hardware")
    cfgs = community(tmp_path, [HOME1, SOLAR, HOME2])
    cfgs[0].hardware = True  # off a Pi: gpiozero's mock pins (said once in the log)
    cfgs[0].extra = {"leds": {"Home 1/grid": 5}}
    cfgs[2].hardware = True  # one machine, one status LED: Home 2's node can't have it
    nodes = await start_all(cfgs)
    home = nodes[0]
    glue = home.hardware
    try:
        await eventually(
            lambda: glue.led_interval is not None, 15, "LEDs set after a settled interval"
        )

        def shows_the_interval() -> bool:  # what the API says of the interval the LEDs show
            leds = interval_json(home, "kit", glue.led_interval)["leds"]
            mine = {name: mode.value for name, mode in glue.led_modes.items()}
            return mine == {n: v for n, v in leds.items() if n.startswith("Home 1/")}

        await eventually(shows_the_interval, 5, "Home 1's LEDs to match its interval")
        await eventually(
            lambda: glue.led_modes["Home 1/solar"].value == "solid",
            5,
            "the solar LED lit: mid-morning, the community's sun feeds Home 1",
        )
        assert set(glue._leds) == {"status", "Home 1/grid", "Home 1/battery", "Home 1/solar"}
        assert glue._leds["Home 1/grid"].pin.info.name == "GPIO5"  # [leds] moved it
        for name, mode in glue.led_modes.items():
            assert glue._leds[name].is_lit == (mode.value == "solid")
        assert nodes[1].hardware.led_modes == {}  # LEDs only where the hardware is enabled
        other = nodes[2].hardware
        await eventually(lambda: other.led_interval is not None, 10, "Home 2's LEDs")
        assert set(other._leds) == {"Home 2/grid", "Home 2/battery", "Home 2/solar"}
        # The status pin was taken: a short error, said once. (A loaded machine can add another
        # short one, an interval's settlement missed; those are not what this checks.)
        taken = [r.getMessage() for r in caplog.records if "LED 'status'" in r.getMessage()]
        assert len(taken) == 1 and "short error" in taken[0], taken
        assert nodes[2].status.counts()["short"] >= 1
        assert nodes[2].status.counts()["critical"] == 0
    finally:
        for node in nodes:
            await node.stop()
    assert glue._leds == {}  # pins released when the node stops


async def test_a_sensor_is_sampled_and_its_failures_reported(tmp_path):
    cfg = community(tmp_path, [HOME1])[0]
    cfg.extra = {"meter": {"sensor": {"address": 0x40}, "energy_scale": 1_000_000}}
    node = Node(cfg)  # a simulated INA219 at 0x40 (no hardware here), kit-sized currents
    await node.start()
    glue = node.hardware
    try:
        await eventually(lambda: glue.samples >= 2, 10, "meter samples about once a second")
        bus = node.agent.meter.ina219.bus
        bus.fail(0x40)  # the sensor stops answering
        await eventually(lambda: glue._measuring.last > 0, 10, "the sampler's MEASURING report")
        assert node.status.counts()["measuring"] >= 1
        await asyncio.sleep(2.5)  # more failed samples: counted, not logged every second
        assert glue._measuring.held >= 1
        bus.heal(0x40)
        samples = glue.samples
        await eventually(lambda: glue.samples > samples, 5, "sampling to go on")
        m = await scrape(cfg.url)
        assert m['picogrid_meter_errors_total{level="measuring"}'] >= 1
        assert m['picogrid_meter_errors_total{level="critical"}'] == 0
    finally:
        await node.stop()


async def test_read_meter_takes_the_last_sample_off_the_loop_and_reports_failures():
    status = StatusReporter()  # a node without its glue: read_meter still works and reports

    bus = SimulatedINA219Bus({0x40: 0.1})
    bus.set_load(0x40, current_ua=200_000, bus_mv=5000)
    meter = INA219Meter(INA219(bus, 0x40, 0.1), "consumer", spacing_s=0.0)
    reading = await read_meter(meter, 7, status=status)
    assert reading["interval"] == 7 and reading["samples"] == 10
    assert status.counts()["measuring"] == 0
    bus.fail(0x40)
    reading = await read_meter(meter, 8, status=status)  # the last sample fails: still a reading
    assert reading["interval"] == 8 and reading["samples"] == 0
    assert status.counts()["measuring"] == 1
