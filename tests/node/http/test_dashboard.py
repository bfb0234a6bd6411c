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
import re
import time

import pytest
from nodebrowser import (
    ARTIFACTS,
    Console,
    Demo,
    chromium,
    fetch,
    get_json,
    overflowing,
    page_text,
    shot,
    size,
    wait_for,
)
from selenium.webdriver.common.by import By

AGENTS = 7
INTERVAL_S = 2
WIDTH = 1440
SIZES = [(1280, 900), (390, 844)]


def settled_view(url: str, k: int) -> dict | None:
    view = get_json(f"{url}/v1/intervals/{k}")
    done = len(view["settlements"]) >= AGENTS and all(
        t["status"] != "pending" for t in view["trades"]
    )
    return view if done else None


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    demo = Demo(tmp_path_factory.mktemp("dashboard"), AGENTS, INTERVAL_S)
    try:
        wait_for(
            lambda: demo.proc.poll() is None and get_json(f"{demo.url}/v1/info"),
            30,
            "the demo's first node to answer",
        )
        # The demo's day starts at 08:00, or later when the nodes were slow to start (a loaded
        # machine): wait for whichever interval settles first.
        wait_for(lambda: any(settled_view(demo.url, r["interval"]) for r in
                             get_json(f"{demo.url}/v1/summary")["series"][:3]), 40,
                 "the first interval to settle")
        yield demo
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- picogrid demo said:\n{demo.output()}") from None
    finally:
        demo.stop()


@pytest.fixture(scope="module")
def browser():
    with chromium(WIDTH, 1000) as driver:
        yield driver


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


ANIMATIONS = """
const out = {};
for (const el of document.querySelectorAll('[data-board] [data-led]')) {
  out[el.getAttribute('data-led')] = [el.getAttribute('data-mode'), getComputedStyle(el).animationName];
}
return out;
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
    # each LED's mode and its CSS animation, read at one moment (the board moves on by itself):
    # flashing ones animate, the others stand still
    animated = wait_for(
        lambda: (a := driver.execute_script(ANIMATIONS))
        and any(mode == "flashing" for mode, _ in a.values()) and a,
        40,
        "a moment with flashing LEDs to look at",
    )
    for name, (mode, animation) in animated.items():
        assert animation == ("led-flash" if mode == "flashing" else "none"), (name, animated)
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

    # chain heights are this node's (the page polls, so it may be a poll behind: on a loaded
    # machine a poll can come late, so the table is read again until it is within one), sync shown
    def heights_shown():
        before = {a["id"]: a["length"] for a in get_json(f"{kit.url}/v1/agents")}
        table = driver.execute_script(
            "return [...document.querySelectorAll('#agents tr[data-agent]')].map(tr => ["
            "tr.getAttribute('data-agent'), tr.querySelector('.c-height b').textContent,"
            "tr.querySelector('[data-sync]').textContent])"
        )
        after = {a["id"]: a["length"] for a in get_json(f"{kit.url}/v1/agents")}
        heights_shown.last = (before, table, after)
        return {agent for agent, _, _ in table} == set(after) and all(
            before[agent] - 6 <= int(height.replace(",", "")) <= after[agent]
            for agent, height, _ in table
        ) and table

    heights_shown.last = None
    try:
        table = wait_for(heights_shown, 20, "the agents table to show this node's chain heights")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nAPI before, page, API after: {heights_shown.last}") from None
    for agent, _, sync in table:
        assert sync in ("this node", "in sync", "linked", "via gossip") or sync.startswith(
            "syncing"
        ), (agent, sync)

    # trades: statuses, and links to the offer and the bid that the browser can verify
    wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, '#trades tr[data-status="confirmed"]'),
        10,
        "a confirmed trade in the table",
    )
    row = driver.execute_script(
        # (disputed and failed trades head the table; the first confirmed or pending one is
        # the newest of those)
        "const tr = document.querySelector('#trades tr[data-status=confirmed],"
        " #trades tr[data-status=pending]');"
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
    width, shot_height = shot(driver, ARTIFACTS / "dashboard.png", full=True)
    assert width == WIDTH and shot_height >= 1000
    assert len((ARTIFACTS / "dashboard.png").read_bytes()) > 50_000
    assert not console.errors(), f"console errors: {console.errors()}"


BOARD_AND_HEADER = """
return {board: document.querySelector('[data-board]').getAttribute('data-interval'),
        header: document.getElementById('current-interval').getAttribute('data-header-interval'),
        caption: document.getElementById('board-caption').textContent,
        rel: document.getElementById('current-rel').textContent};
"""


def test_the_demo_at_1280_and_at_a_phone(kit, browser, tmp_path):
    driver = browser
    console = Console(driver)
    driver.get(kit.url + "/")
    agents = get_json(f"{kit.url}/v1/agents")
    for width, height in SIZES:
        size(driver, width, height)
        # the header names the interval the board shows, with the same word (now / up next)
        shown = wait_for(
            lambda: (m := driver.execute_script(BOARD_AND_HEADER))["board"]
            and m["board"] == m["header"] and m,
            20, "the header and the board to name one interval")
        assert not shown["rel"] or shown["rel"] in shown["caption"]
        assert driver.find_element(By.ID, "board-card").get_attribute("data-drawing") == "kit"
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#trades tr[data-trade]"), 20,
                 "the trades table")
        text = page_text(driver)
        assert "(none)" not in text and "undefined" not in text and "NaN" not in text
        for agent in agents:  # every agent by name: in the table, and drawn on a phone too
            row = driver.find_element(By.CSS_SELECTOR, f'#agents tr[data-agent="{agent["id"]}"]')
            assert agent["name"] in row.text
        # (read in one go: the drawing is redrawn when the interval changes)
        drawn = driver.execute_script(
            "return [...document.querySelectorAll('#households [data-member]')].map(m =>"
            " [m.querySelector('.m-name').textContent, m.getClientRects().length > 0])")
        assert {name for name, _ in drawn} == {a["name"] for a in agents}
        # on a phone the kit's words move below the drawing, readable; at 1280 they are on it
        assert all(shown == (width < 500) for _, shown in drawn), drawn
        for status in ("pending", "disputed", "failed"):
            assert driver.find_element(
                By.CSS_SELECTOR, f'[data-status-help="{status}"]').is_displayed()
        # a trade that is not confirmed says on its row why and what follows; disputed and
        # failed ones come first
        rows = driver.execute_script(
            "return [...document.querySelectorAll('#trades tr[data-trade]')].map(tr =>"
            " [tr.getAttribute('data-status'), tr.querySelector('.why').textContent])")
        assert all(why for status, why in rows if status != "confirmed"), rows
        attention = [status in ("disputed", "failed") for status, _ in rows]
        assert attention == sorted(attention, reverse=True), rows
        summary = driver.find_element(By.ID, "now-trades")
        assert summary.size["width"] >= driver.execute_script(
            "return arguments[0].scrollWidth", summary)  # "5 confirmed", never "5 confirm..."
        assert overflowing(driver) == [], f"cut off at {width} px"
        assert shot(driver, tmp_path / f"demo-{width}.png") == (width, height)
        shot(driver, tmp_path / f"demo-{width}-full.png", full=True)
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
