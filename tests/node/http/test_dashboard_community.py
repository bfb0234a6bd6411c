"""The dashboard of a community that is not the kit, as a user sees it in headless Chromium.

Nine real node processes (`picogrid init` / `init --join` / `run`, as users start them) in two
grids: "riverside", whose founder serves the page (three homes, a battery and two solar systems
in four households: not the kit's shape, so it is drawn by household), and "hilltop", a second
PicoGrid that joined (the admin added its grid to the charter). Every agent has its own name.
Intervals last two days from last midnight, so the first settlement is always more than a day
away: the page must say what happens and when (a countdown), never "(none)", draw every agent of
its grid by household and list both grids by household, with nothing cut off at 1280x900 or at a
phone's 390x844. Screenshots of both sizes go to the test's temporary directory.

And members who share a name (in-process nodes): the page draws and lists each under the label
the API's `names` gives it, never merged.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from nodebrowser import (
    Console,
    chromium,
    get_json,
    overflowing,
    page_text,
    shot,
    shot_at,
    size,
    wait_for,
)
from nodeinproc import HOST, eventually, free_port, start_all
from nodeproc import Cluster, picogrid, wait_until
from selenium.webdriver.common.by import By

from ledger.chain import now_us
from node.cli.community import create_admin, create_identity, default_charter, write_genesis
from node.config import NodeConfig

TWO_DAYS_S = 2 * 86_400
RIVERSIDE = [  # name, role, household (the founder first)
    ("Ana's house", "consumer", "ana"),
    ("Ben's flat", "consumer", "ben"),
    ("Ben's battery", "storage", "ben"),
    ("Rooftop 12", "generator", "ana"),
    ("Cora & Dan", "consumer", "cora"),
    ("School solar", "generator", "community"),
]
HILLTOP = [
    ("Eli's cottage", "consumer", "eli"),
    ("Farm barn solar", "generator", "farm"),
    ("Hill battery", "storage", "community"),
]
SIZES = [(1280, 900), (390, 844)]


@pytest.fixture(scope="module")
def community(tmp_path_factory):
    root = tmp_path_factory.mktemp("community")
    with Cluster(root, community="valley") as c:
        name, role, household = RIVERSIDE[0]
        founder = c.found(name, grid="riverside", role=role, household=household,
                          extra=["--interval-seconds", str(TWO_DAYS_S)])
        c.start(founder)
        picogrid("charter", "--dir", founder.dir, "--grid", "hilltop")
        others = [c.join(n, grid=g, role=r, household=h)
                  for g, members in (("riverside", RIVERSIDE[1:]), ("hilltop", HILLTOP))
                  for n, r, h in members]
        c.start_many(others, peers=[founder])
        everyone = [founder, *others]
        wait_until(lambda: len(get_json(f"{founder.url}/v1/agents")) == len(everyone), 60,
                   "the founder holds all nine chains", logs=c.logs)
        yield founder, everyone, root


def test_community_api_says_how_to_draw_each_grid(community):
    founder, everyone, _ = community
    body = get_json(f"{founder.url}/v1/community")
    assert body["grid"] == "riverside"
    assert body["grids"]["riverside"]["drawing"] == "generic"  # 3 homes, 1 battery: not the kit
    assert body["grids"]["riverside"]["households"] == ["ana", "ben", "community", "cora"]
    assert body["grids"]["hilltop"]["rules"] is not None  # the admin added the grid
    assert body["names"] == {a.agent_hex: a.name for a in everyone}


def test_the_page_of_a_two_grid_community_before_its_first_interval(community, tmp_path):
    founder, everyone, _ = community
    assert get_json(f"{founder.url}/v1/summary")["series"] == []  # nothing settled: days away
    with chromium() as driver:
        console = Console(driver)
        driver.get(founder.url + "/")
        for width, height in SIZES:
            size(driver, width, height)
            # the countdown: which interval comes first, and when its orders close
            panel = wait_for(
                lambda: (p := driver.find_element(By.ID, "first-interval")).is_displayed() and p,
                20, "the first-interval countdown")
            assert "Nothing has settled yet" in panel.text
            first = int(driver.find_element(By.ID, "first-clock").get_attribute(
                "data-first-interval"))
            assert f"interval {first}" in panel.text and "orders close" in panel.text
            assert re.search(r"\d+ (d|h|min|s)\b", driver.find_element(By.ID, "first-clock").text)
            header = driver.find_element(By.ID, "countdown")
            assert header.get_attribute("data-countdown") == str(first)
            assert re.search(rf"orders for {first} close in \d", header.text)
            head = driver.find_element(By.ID, "current-interval").get_attribute(
                "data-header-interval")
            assert head == str(first)

            # this grid drawn by household, every one of its agents by its own name
            wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "[data-member]")) == 6,
                     10, "the six riverside agents drawn")
            assert driver.find_element(By.ID, "board-card").get_attribute("data-drawing") == \
                "generic"
            assert not driver.find_element(By.ID, "board").is_displayed()
            drawn = {e.get_attribute("data-member"): e.text for e in
                     driver.find_elements(By.CSS_SELECTOR, "#households [data-member]")}
            for agent in everyone[:6]:
                assert agent.name in drawn[agent.agent_hex]
            houses = [e.get_attribute("data-household") for e in
                      driver.find_elements(By.CSS_SELECTOR, "#households [data-household]")]
            assert houses == ["ana", "ben", "cora", "community"]  # homes first, shared last

            # both grids, by household, the joined one marked; agents table; all 9 names
            wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#grids .chip")) == 9,
                     10, "nine agents in the community card")
            joined = driver.find_element(By.CSS_SELECTOR, '#grids [data-grid="hilltop"]')
            assert "joined PicoGrid" in joined.text
            for agent in everyone:
                chip = driver.find_element(By.CSS_SELECTOR, f'#grids [data-agent="{agent.agent_hex}"]')
                assert agent.name in chip.text
                row = driver.find_element(By.CSS_SELECTOR, f'#agents tr[data-agent="{agent.agent_hex}"]')
                assert agent.name in row.text
            text = page_text(driver)
            assert "(none)" not in text and "undefined" not in text and "NaN" not in text
            # trade statuses are explained even before there are trades
            for status in ("pending", "disputed", "failed"):
                assert driver.find_element(
                    By.CSS_SELECTOR, f'[data-status-help="{status}"]').text.startswith(status)

            assert overflowing(driver) == [], f"cut off at {width} px"
            w, h = shot(driver, tmp_path / f"community-{width}.png")
            assert (w, h) == (width, height)
            for part in ("community-card", "agents-card", "trades-card"):
                shot_at(driver, f".{part}", tmp_path / f"community-{width}-{part}.png")
            shot(driver, tmp_path / f"community-{width}-full.png", full=True)
            size(driver, width, height)
        assert not console.errors(), console.errors()
    print(f"screenshots in {tmp_path}")


# Three members called "Home" (two of them in one household) and a solar: in-process nodes.
SAME_NAMES = [
    ("Home", "consumer", "a", 0, 1000),
    ("Home", "consumer", "b", 0, 1000),
    ("Home", "consumer", "b", 0, 1000),
    ("Solar", "generator", "a", 0, 1000),
]
NAMES_SHOWN = """
const text = (sel) => [...document.querySelectorAll(sel)].map(e => e.textContent);
return {drawn: text('#households .m-name'), chips: text('#grids .chip'),
        rows: text('#agents .agent-name')};
"""


def same_names(root) -> list[NodeConfig]:
    """SAME_NAMES in grid "kit", each in its own directory, intervals of a second, all peers."""
    admin = create_admin(root)
    charter = default_charter("c", admin.agent, "kit", interval_ms=1000,
                              epoch_us=now_us() - 10_000_000).sign(admin)
    cfgs = []
    for i, (name, role, household, capacity, power) in enumerate(SAME_NAMES):
        cfg = NodeConfig(dir=root / f"member-{i}", name=name, role=role, household=household,
                         grid="kit", community="c", admin=admin.agent.hex(),
                         capacity_wh=capacity, max_power_w=power,
                         listen=f"{HOST}:{free_port()}", round_ms=200)
        write_genesis(cfg, create_identity(cfg.dir), charter, None)
        cfgs.append(cfg)
    for cfg in cfgs:
        cfg.peers = [other.url for other in cfgs if other is not cfg]
    return cfgs


def names_on_the_page(url: str) -> dict:
    with chromium(1280, 900) as driver:
        driver.get(url + "/")
        return wait_for(
            lambda: (shown := driver.execute_script(NAMES_SHOWN))["drawn"]
            and len(shown["drawn"]) == len(SAME_NAMES) and len(shown["rows"]) == len(SAME_NAMES)
            and shown,
            30, "every member drawn and listed")


async def test_members_of_one_name_are_told_apart_on_the_page(tmp_path):
    nodes = await start_all(same_names(tmp_path))
    url = nodes[0].cfg.url
    try:
        async def all_four():  # (urllib blocks: off the nodes' event loop)
            b = await asyncio.to_thread(get_json, f"{url}/v1/community")
            return len(b["names"]) == len(SAME_NAMES) and b

        body = await eventually(all_four, 30, "all four geneses")
        names = body["names"]
        assert len(set(names.values())) == len(SAME_NAMES), names  # four different labels
        assert body["grids"]["kit"]["drawing"] == "generic"  # three homes, no battery
        shown = await asyncio.to_thread(names_on_the_page, url)
    finally:
        for node in nodes:
            await node.stop()
    assert sorted(shown["drawn"]) == sorted(names.values())
    assert sorted(shown["rows"]) == sorted(names.values())
    assert all(any(label in chip for chip in shown["chips"]) for label in names.values())
    assert "Home (a)" in shown["drawn"]
