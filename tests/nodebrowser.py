"""The dashboard in a real headless Chromium, for tests (a helper, not a test).

    with chromium() as driver:                  # Debian chromium + chromedriver, via Selenium
        driver.get(url)
        size(driver, 390, 844)                   # a phone's viewport, exactly
        assert overflowing(driver) == []         # nothing wider than its box
        shot(driver, tmp_path / "phone.png")     # the viewport as a PNG

Also `Demo` (`picogrid demo` as a user starts it), `Console` (what the page logged), `fetch`,
`get_json`, `wait_for` (every wait has a deadline) and `png_size`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from node.cli.launcher import free_port_run

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PICOGRID = Path(sys.executable).with_name("picogrid")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def fetch(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """GET `url`: status, headers, body (an HTTP error is an answer too)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback only
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str):
    """GET `url` as JSON; anything but 200 fails."""
    status, _, body = fetch(url, {"Accept": "application/json"})
    assert status == 200, f"GET {url}: HTTP {status} {body[:300]!r}"
    return json.loads(body)


def wait_for(predicate, timeout: float, what: str, every: float = 0.25):
    """Call `predicate` until it is truthy (returned); errors in it count as "not yet"."""
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
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last error: {last_error}")


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


class Demo:
    """`picogrid demo` as a user starts it, in its own session; stopped with SIGTERM."""

    def __init__(self, base: Path, agents: int = 7, interval_s: int = 2) -> None:
        self.base = base
        self.port = free_port_run(agents)
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = base / "demo.out"
        argv = [str(PICOGRID), "demo", "--dir", str(base / "kit"), "--port", str(self.port),
                "--interval-seconds", str(interval_s), "--intervals", "500"]
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

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
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def chromium(width: int = 1440, height: int = 1000) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with its own profile, logging the page's console."""
    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).exists(), (
            f"{path} is missing: `apt-get install chromium chromium-driver` (make system-deps)"
        )
    profile = tempfile.mkdtemp(prefix="picogrid-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                f"--user-data-dir={profile}", f"--window-size={width},{height}"):
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


def size(driver, width: int, height: int) -> None:
    """Make the page's viewport exactly `width` x `height` CSS pixels (a phone below 500)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500,
    })
    driver.execute_script("window.scrollTo(0, 0)")
    wait_for(lambda: driver.execute_script("return window.innerWidth") == width, 5,
             f"a viewport {width} wide")
    time.sleep(0.3)  # one layout pass


def shot(driver, path: Path, full: bool = False) -> tuple[int, int]:
    """Save the viewport (or, `full`, the whole page) as a PNG; its size in pixels. A copy goes
    to `test-artifacts/` (the temporary directory is cleaned by later runs)."""
    if full:
        width = driver.execute_script("return window.innerWidth")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        size(driver, width, height)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    assert driver.save_screenshot(str(path)), path
    ARTIFACTS.mkdir(exist_ok=True)
    if path.resolve() != (ARTIFACTS / path.name).resolve():
        shutil.copyfile(path, ARTIFACTS / path.name)
    return png_size(path.read_bytes())


def shot_at(driver, css: str, path: Path) -> tuple[int, int]:
    """Save the viewport scrolled so that the element `css` is at its top."""
    driver.execute_script("document.querySelector(arguments[0]).scrollIntoView()", css)
    time.sleep(0.3)
    size_now = shot(driver, path)
    driver.execute_script("window.scrollTo(0, 0)")
    return size_now


# Every box the user reads, and whether its content is wider than the box (cut off or hidden
# behind a scroll bar); the page itself must not scroll sideways either.
OVERFLOW = """
const boxes = 'header.top, main > .card, .table-wrap, table.data, .grid-card, .household, .member,'
  + ' .status-help, .now-figures dd, .kpi, .chips, .hh-row, .first-interval, .card-head, .legend';
const out = [];
for (const el of document.querySelectorAll(boxes)) {
  if (!el.getClientRects().length) continue;  // not displayed at this size
  if (el.scrollWidth > el.clientWidth + 1) {
    const name = el.id || el.className.baseVal || el.className || el.tagName;
    out.push(`${name}: ${el.scrollWidth} > ${el.clientWidth}: ${el.textContent.slice(0, 60)}`);
  }
}
const page = document.documentElement;
if (page.scrollWidth > window.innerWidth) out.push(`page: ${page.scrollWidth} > ${window.innerWidth}`);
return out;
"""


def overflowing(driver) -> list[str]:
    """The boxes whose content is wider than they are (empty when nothing is cut off)."""
    return driver.execute_script(OVERFLOW)


def page_text(driver) -> str:
    """Every text of the page, shown or not (SVG labels and titles included)."""
    return driver.execute_script("return document.body.textContent")


def shown_text(driver) -> str:
    """The text a reader sees."""
    return driver.execute_script("return document.body.innerText")
