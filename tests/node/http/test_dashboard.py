"""The dashboard, as a user sees it: a real `picogrid demo` (seven real node processes on
127.0.0.1) and the page in a real headless Chromium driven by Selenium.

Checked: the page and its assets are served with the right types and caching and load nothing
from outside the node; the page logs no console error; the LEDs it draws are the LEDs
`/v1/intervals/{k}` gives for the interval it says it shows, flashing ones animated by CSS, and
the energy flows it draws are that interval's trades and grid exchanges; an earlier interval can
be pinned and live followed again; the Audit button re-verifies a chain and shows "valid"; trades link to their two signed actions, whose
signature the browser checks. A full-page screenshot goes to `test-artifacts/dashboard.png`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from node.cli.launcher import free_port_run

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PICOGRID = Path(sys.executable).with_name("picogrid")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
AGENTS = 7
INTERVAL_S = 2
WIDTH = 1440

# -- helpers -------------------------------------------------------------------------------------




def fetch(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback only
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str):
    status, _, body = fetch(url, {"Accept": "application/json"})
    assert status == 200, f"GET {url}: HTTP {status} {body[:300]!r}"
    return json.loads(body)


def wait_for(predicate, timeout: float, what: str, every: float = 0.25):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, AssertionError, ValueError, WebDriverException) as exc:  # not yet
            value, last_error = None, exc
        if value:
            return value
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what}; last error: {last_error}"
    )


class Demo:
    """`picogrid demo` as a user starts it, in its own session; stopped with SIGTERM."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port_run(AGENTS)
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = base / "demo.out"
        argv = [
            str(PICOGRID),
            "demo",
            "--dir",
            str(base / "kit"),
            "--port",
            str(self.port),
            "--interval-seconds",
            str(INTERVAL_S),
            "--intervals",
            "500",
        ]
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.out.read_text(errors="replace")[-4000:]

    def node_pids(self) -> list[int]:
        """The node processes this demo started (their command line names its directory)."""
        mine = str(self.base / "kit")
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"run" in cmdline and any(
                arg.decode(errors="replace").startswith(mine) for arg in cmdline
            ):
                pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(25)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in self.node_pids():  # only if the demo could not stop its own nodes
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def settled_view(url: str, k: int) -> dict | None:
    view = get_json(f"{url}/v1/intervals/{k}")
    done = len(view["settlements"]) >= AGENTS and all(
        t["status"] != "pending" for t in view["trades"]
    )
    return view if done else None


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    demo = Demo(tmp_path_factory.mktemp("dashboard"))
    try:
        wait_for(
            lambda: demo.proc.poll() is None and get_json(f"{demo.url}/v1/info"),
            30,
            "the demo's first node to answer",
        )
        # The demo's day starts at 08:00 (an hour later if the nodes started late).
        wait_for(lambda: any(settled_view(demo.url, k) for k in range(8, 11)), 40,
                 "the first interval (08:00) to settle")
        yield demo
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- picogrid demo said:\n{demo.output()}") from None
    finally:
        demo.stop()


@pytest.fixture(scope="module")
def browser():
    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).exists(), (
            f"{path} is missing: `apt-get install chromium "
            "chromium-driver` (make system-deps does it)"
        )
    profile = tempfile.mkdtemp(prefix="picogrid-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Console:
    """Everything the page logged; `driver.get_log` hands each entry out once."""

    def __init__(self, driver) -> None:
        self.driver, self.entries = driver, []

    def errors(self) -> list[dict]:
        self.entries += self.driver.get_log("browser")
        return [e for e in self.entries if e["level"] == "SEVERE"]


# -- the served files ----------------------------------------------------------------------------


def test_page_and_assets_are_served_with_types_caching_and_nothing_external(kit):
    status, headers, body = fetch(kit.url + "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    page = body.decode()
    assert fetch(kit.url + "/", {"If-None-Match": headers["ETag"]})[0] == 304

    assets = dict(re.findall(r'(?:href|src)="/static/([\w.-]+)\?v=(\w+)"', page))
    assert set(assets) == {"dashboard.js", "dashboard.css", "favicon.svg"}
    types = {
        "dashboard.js": "text/javascript; charset=utf-8",
        "dashboard.css": "text/css; charset=utf-8",
        "favicon.svg": "image/svg+xml; charset=utf-8",
    }
    texts = [page]
    for name, version in assets.items():
        status, headers, body = fetch(f"{kit.url}/static/{name}?v={version}")
        assert status == 200, name
        assert headers["Content-Type"] == types[name]
        assert headers["ETag"] == f'"{version}"'
        assert "max-age=86400" in headers["Cache-Control"]
        assert fetch(f"{kit.url}/static/{name}", {"If-None-Match": f'"{version}"'})[0] == 304
        # without the current version the browser must revalidate
        assert fetch(f"{kit.url}/static/{name}")[1]["Cache-Control"] == "no-cache"
        texts.append(body.decode())
    for bad in ("nope.js", "..%2Fdashboard.py", ".hidden", "index.html%00.js"):
        status, headers, body = fetch(f"{kit.url}/static/{bad}")
        assert status == 404, bad
        assert "error" in json.loads(body)
    # offline on a Pi: nothing may come from another host
    for text in texts:
        assert not re.search(r'(?:src|href)\s*=\s*["\']?(?:https?:)?//', text)
        assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", text)
        assert not re.search(r"(?:fetch|import)\(\s*[`'\"](?:https?:)?//", text)


# -- the page in Chromium ------------------------------------------------------------------------

SNAPSHOT = """
const board = document.querySelector('[data-board]');
const leds = {};
for (const el of document.querySelectorAll('[data-board] [data-led]')) {
  leds[el.getAttribute('data-led')] = el.getAttribute('data-mode');
}
const flows = [...document.querySelectorAll('#flows [data-flow]')].map(e => e.getAttribute('data-flow'));
return {interval: board.getAttribute('data-interval'), leds: leds, flows: flows};
"""


def board_matches_api(driver, url: str) -> dict | None:
    """The board's interval and LEDs, when they equal the API's for that interval."""
    shown = driver.execute_script(SNAPSHOT)
    if not shown["interval"]:
        return None
    view = get_json(f"{url}/v1/intervals/{shown['interval']}")
    wanted = {"leds": view["leds"], "flows": sorted(expected_flows(view))}
    if {"leds": shown["leds"], "flows": sorted(shown["flows"])} != wanted:
        # readings or a late settlement may change an interval after the page fetched it; the
        # page catches up on its next poll, so only a lasting difference fails
        board_matches_api.last = (shown, wanted)
        return None
    return {**shown, "view": view}


def expected_flows(view: dict) -> set[str]:
    """The interval's trades (seller > buyer) and exchanges with the utility grid."""
    flows = {f"{t['seller_name']}>{t['buyer_name']}" for t in view["trades"]}
    for s in view["settlements"].values():  # keyed by agent id, the name beside it
        name = s["name"]
        flows |= {f"grid>{name}"} if s["grid_import_wh"] else set()
        flows |= {f"{name}>grid"} if s["grid_export_wh"] else set()
    return flows


board_matches_api.last = None


def test_dashboard_in_chromium(kit, browser):
    driver = browser
    console = Console(driver)
    driver.get(kit.url + "/")
    assert driver.title.startswith("PicoGrid")

    # the board shows the latest settled interval, LED for LED as the API says
    try:
        first = wait_for(
            lambda: board_matches_api(driver, kit.url),
            20,
            "the board to show a settled interval's LEDs",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nlast page vs API: {board_matches_api.last}") from None
    k = int(first["interval"])
    assert len(first["leds"]) == 13
    assert set(first["leds"].values()) <= {"off", "solid", "flashing"}
    assert any(mode != "off" for mode in first["leds"].values())
    current = get_json(f"{kit.url}/v1/summary?from={max(0, k - 3)}&to={k + 3}")["current"]
    assert k >= current - 2, f"the board shows interval {k}, but {current} is current"

    # with the sun up some LEDs flash: still equal to the API, and animated by CSS
    try:
        sunny = wait_for(
            lambda: (
                (m := board_matches_api(driver, kit.url)) and "flashing" in m["leds"].values() and m
            ),
            40,
            "a settled interval with flashing LEDs",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nlast page vs API: {board_matches_api.last}") from None
    assert int(sunny["interval"]) >= k  # the demo opens in daylight: it may be the first one
    # the board follows the market live: a later interval replaces it, still as the API says
    later = wait_for(
        lambda: (m := board_matches_api(driver, kit.url)) and int(m["interval"]) > k and m,
        20,
        "the board to show the next settled interval",
    )
    assert int(later["interval"]) > k
    flashing = [name for name, mode in sunny["leds"].items() if mode == "flashing"]
    animations = driver.execute_script(
        "return arguments[0].map(n => getComputedStyle([...document.querySelectorAll("
        "'[data-board] [data-led]')].find(e => e.getAttribute('data-led') === n)).animationName)",
        flashing,
    )
    assert animations == ["led-flash"] * len(flashing)
    solid = [name for name, mode in sunny["leds"].items() if mode != "flashing"]
    still = driver.execute_script(
        "return arguments[0].map(n => getComputedStyle([...document.querySelectorAll("
        "'[data-board] [data-led]')].find(e => e.getAttribute('data-led') === n)).animationName)",
        solid,
    )
    assert set(still) == {"none"}
    # the energy flows drawn were that interval's (checked above): trades, so some flows
    assert sunny["view"]["trades"] and sunny["flows"], "a sunny interval has trades and flows"

    # an earlier interval can be looked at, LED for LED, then back to following the live one
    shown = int(driver.execute_script(SNAPSHOT)["interval"])
    driver.find_element(By.ID, "prev-interval").click()
    caption = driver.find_element(By.ID, "board-caption")
    # (the board may have moved on by one interval between reading it and the click)
    earlier = wait_for(
        lambda: "pinned" in caption.text and board_matches_api(driver, kit.url),
        10,
        "the board to show the interval before",
    )
    pinned = int(earlier["interval"])
    assert pinned in (shown - 1, shown)
    time.sleep(2 * INTERVAL_S)  # the market moves on; a pinned board does not
    assert int(driver.execute_script(SNAPSHOT)["interval"]) == pinned
    driver.find_element(By.ID, "follow-live").click()
    wait_for(
        lambda: int(driver.execute_script(SNAPSHOT)["interval"]) > pinned + 1,
        10,
        "the board to follow the latest interval again",
    )

    # the Audit button re-verifies a chain and says "valid"
    for name in ("Home 1", "Community solar"):
        row = driver.find_element(By.CSS_SELECTOR, f'tr[data-agent-name="{name}"]')
        row.find_element(By.CSS_SELECTOR, "button.audit-button").click()
        status = wait_for(
            lambda row=row: (
                (s := row.find_element(By.CSS_SELECTOR, "[data-audit]").get_attribute("data-audit"))
                != "running"
                and s
            ),
            15,
            f"the audit of {name} to finish",
        )
        assert status == "valid", f"audit of {name}: {status}"
        assert "valid" in row.find_element(By.CSS_SELECTOR, ".audit-result").text
        agent_id = row.get_attribute("data-agent")
        assert get_json(f"{kit.url}/v1/agents/{agent_id}/audit")["status"] == "valid"

    # chain heights are this node's (the page polls, so it may be a poll behind), sync shown
    before = {a["id"]: a["length"] for a in get_json(f"{kit.url}/v1/agents")}
    table = driver.execute_script(
        "return [...document.querySelectorAll('#agents tr[data-agent]')].map(tr => ["
        "tr.getAttribute('data-agent'), tr.querySelector('.c-height b').textContent,"
        "tr.querySelector('[data-sync]').textContent])"
    )
    after = {a["id"]: a["length"] for a in get_json(f"{kit.url}/v1/agents")}
    assert {agent for agent, _, _ in table} == set(after)
    for agent, height, sync in table:
        assert before[agent] - 6 <= int(height.replace(",", "")) <= after[agent], agent
        assert sync in ("this node", "in sync", "linked", "via gossip") or sync.startswith(
            "syncing"
        )

    # trades: statuses, and links to the offer and the bid that the browser can verify
    wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, '#trades tr[data-status="confirmed"]'),
        10,
        "a confirmed trade in the table",
    )
    row = driver.execute_script(
        "const tr = document.querySelector('#trades tr[data-trade]');"
        "const link = (side) => tr.querySelector(`a[data-side=${side}]`);"
        "return {id: tr.getAttribute('data-trade'), status: tr.getAttribute('data-status'),"
        " cells: [...tr.cells].map(c => c.textContent.trim()),"
        " offer: link('offer').getAttribute('data-action'), offer_href: link('offer').href,"
        " bid: link('bid').getAttribute('data-action'), bid_href: link('bid').href}"
    )
    k, offer_hash, bid_hash = row["id"].split(":")
    assert row["offer_href"] == f"{kit.url}/v1/actions/{offer_hash}" and offer_hash == row["offer"]
    assert row["bid_href"] == f"{kit.url}/v1/actions/{bid_hash}" and bid_hash == row["bid"]
    trade = next(
        t
        for t in get_json(f"{kit.url}/v1/trades?from={k}&to={k}")["trades"]
        if (t["offer"], t["bid"]) == (offer_hash, bid_hash)
    )
    assert row["cells"][1] == trade["seller_name"] and row["cells"][3] == trade["buyer_name"]
    # the newest trade may still wait for a settlement; confirmed is final
    assert {row["status"], trade["status"]} <= {"confirmed", "pending"}
    assert row["status"] != "confirmed" or trade["status"] == "confirmed"
    offer = get_json(row["offer_href"])
    bid = get_json(row["bid_href"])
    assert (offer["type"], offer["hash"], offer["author"]) == ("offer", offer_hash, trade["seller"])
    assert (bid["type"], bid["hash"], bid["author"]) == ("bid", bid_hash, trade["buyer"])
    wait_for(
        lambda: (
            driver.find_element(
                By.CSS_SELECTOR, f'#trades tr[data-trade="{row["id"]}"] a[data-side="offer"]'
            ).click()
            or True
        ),
        5,
        "a click on the offer link",
    )
    dialog = driver.find_element(By.ID, "action-dialog")
    wait_for(
        lambda: "verified by this browser" in dialog.text,
        10,
        "the browser to verify the offer's Ed25519 signature",
    )
    assert offer_hash in dialog.text
    driver.find_element(By.ID, "action-close").click()

    # KPIs, charts, bills and the community are filled in
    assert driver.find_element(By.CSS_SELECTOR, "#kpi-self-sufficiency .kpi-value").text.endswith(
        "%"
    )
    assert driver.execute_script(
        "return document.querySelectorAll('#chart-energy path.line').length"
    )
    assert driver.find_elements(By.CSS_SELECTOR, '#bills tr[data-bill="Home 1"]')
    assert driver.find_elements(By.CSS_SELECTOR, '#grids [data-grid="kit"]')

    assert not console.errors(), f"console errors: {console.errors()}"

    # a full-page screenshot, kept as a test artifact
    height = driver.execute_script(
        "window.scrollTo(0, 0); return document.documentElement.scrollHeight"
    )
    driver.set_window_size(WIDTH, height)
    time.sleep(0.5)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    assert driver.save_screenshot(str(shot))
    data = shot.read_bytes()
    width, shot_height = png_size(data)
    assert width == WIDTH and shot_height >= 1000 and len(data) > 50_000
    assert not console.errors(), f"console errors: {console.errors()}"


def test_actions_route_answers_by_hash(kit):
    trades = wait_for(
        lambda: get_json(f"{kit.url}/v1/trades?from=0&to=40")["trades"], 30, "a trade"
    )
    t = trades[0]
    offer = get_json(f"{kit.url}/v1/actions/{t['offer']}")
    bid = get_json(f"{kit.url}/v1/actions/{t['bid'].upper()}")
    assert (offer["type"], offer["author"], offer["hash"]) == ("offer", t["seller"], t["offer"])
    assert (bid["type"], bid["author"], bid["hash"]) == ("bid", t["buyer"], t["bid"])
    assert offer["payload"]["interval"] == t["interval"] == bid["payload"]["interval"]
    assert len(offer["signature"]) == 128 and offer["action_bytes"]
    status, _, body = fetch(f"{kit.url}/v1/actions/{'0' * 64}")
    assert status == 404 and "error" in json.loads(body)
    status, _, body = fetch(f"{kit.url}/v1/actions/not-a-hash")
    assert status == 400 and "error" in json.loads(body)
