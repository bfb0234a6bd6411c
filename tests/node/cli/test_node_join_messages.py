"""Joining from another house: every mistake a user makes on the way gets a message that says
what is wrong and what to try (node/cli/join_url.py), checked on the functions and on real
`picogrid` processes. Nothing here leaves 127.0.0.1: the other-machine cases are refused before
any request is made."""

from __future__ import annotations

import subprocess
import sys

import pytest
from nodeproc import free_port, picogrid, request, wait_until

from node.cli.join_url import base_url, check_announced, explain, is_loopback
from node.errors import UserError
from node.p2p.client import PeerError

OTHER_HOUSE = "http://192.0.2.10:8700"  # documentation address: never contacted here


def init_join(tmp_path, join: str, *extra: str):
    return picogrid("init", "--dir", tmp_path / "new", "--name", "Home battery", "--role",
                    "storage", "--capacity-wh", "4000", "--max-power-w", "2000", "--household",
                    "home1", "--grid", "g1", "--community", "c1", "--join", join, "--yes", *extra,
                    check=False)


def answers(url: str) -> bool:
    try:
        return request("GET", url + "/").status == 200
    except OSError:
        return False


# -- the functions --------------------------------------------------------------------------------


def test_a_url_without_scheme_suggests_http():
    with pytest.raises(UserError, match=r"try --join http://127\.0\.0\.1:8700$"):
        base_url("127.0.0.1:8700")


def test_a_url_with_a_path_suggests_the_base_url():
    with pytest.raises(UserError, match=r"without a path: try --join http://host:8700$"):
        base_url("http://host:8700/v1/info")
    with pytest.raises(UserError, match="without a path"):
        base_url("http://host:8700/?x=1")
    assert base_url("http://host:8700/") == "http://host:8700"
    assert base_url(" https://pi.local:8700 ") == "https://pi.local:8700"


@pytest.mark.parametrize("bad, says", [
    ("ftp://host:8700", "not ftp://"),
    ("http://host:99999", "port is not a number"),
    ("", "needs the URL"),
    ("http://:8700", "no host name"),
])
def test_other_bad_urls_say_what_is_wrong(bad, says):
    with pytest.raises(UserError, match=says):
        base_url(bad)


def test_self_join_and_loopback_announcements_are_explained():
    with pytest.raises(UserError, match="is the URL of the node you join"):
        check_announced("http://192.0.2.10:8700/", OTHER_HOUSE, "0.0.0.0:8700")
    with pytest.raises(UserError, match=r"--listen 0\.0\.0\.0:8711 --public-url http://<this"):
        check_announced("http://127.0.0.1:8711", OTHER_HOUSE, "127.0.0.1:8711")
    with pytest.raises(UserError, match="only works on this machine"):
        check_announced("http://localhost:8700", OTHER_HOUSE, "0.0.0.0:8700")
    check_announced("", OTHER_HOUSE, "127.0.0.1:8700")  # unreachable on purpose: fine
    check_announced("http://192.0.2.11:8700", OTHER_HOUSE, "0.0.0.0:8700")
    check_announced("http://127.0.0.1:8701", "http://127.0.0.1:8700", "127.0.0.1:8701")
    assert is_loopback("http://[::1]:8700") and not is_loopback(OTHER_HOUSE)


def test_explain_names_the_cause():
    dead = explain("http://h:1", PeerError("x: ClientConnectorError", unreachable=True))
    assert "is the node running there" in dead and "ClientConnectorError" not in dead
    assert "base URL" in explain("http://h:1", PeerError("x: HTTP 404", status=404))


# -- real processes -------------------------------------------------------------------------------


def test_init_join_without_scheme_or_with_a_path(cluster, tmp_path):
    a = cluster.found("A")
    cluster.start(a)
    hostport = a.url.removeprefix("http://")
    done = init_join(tmp_path, hostport)
    assert done.returncode == 2, done.stderr
    assert f"try --join http://{hostport}" in done.stderr
    assert "NonHttpUrlClientError" not in done.stderr and "Traceback" not in done.stderr
    done = init_join(tmp_path, a.url + "/v1/info")
    assert done.returncode == 2 and f"try --join {a.url}" in done.stderr, done.stderr
    assert not (tmp_path / "new" / "config.toml").exists()


def test_init_join_to_a_dead_port_asks_if_the_node_runs(tmp_path):
    done = init_join(tmp_path, f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 2
    assert "is the node running there" in done.stderr and "is the address and port right" \
        in done.stderr, done.stderr
    assert "ClientConnectorError" not in done.stderr and "ssl:default" not in done.stderr


def test_init_join_to_something_that_is_not_a_node_explains_the_404(tmp_path):
    port = free_port()
    web = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                            "127.0.0.1", "--directory", str(tmp_path)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(url), 10, "the web server")
        done = init_join(tmp_path, url)
        assert done.returncode == 2
        assert "answered 404" in done.stderr and "base URL" in done.stderr, done.stderr
    finally:
        web.terminate()
        web.wait(10)


def test_init_join_refuses_a_self_join_and_a_loopback_announcement(tmp_path):
    done = init_join(tmp_path, OTHER_HOUSE, "--public-url", OTHER_HOUSE)
    assert done.returncode == 2 and "is the URL of the node you join" in done.stderr
    done = init_join(tmp_path, OTHER_HOUSE)  # default --listen 127.0.0.1:8700
    assert done.returncode == 2 and "only works on this machine" in done.stderr, done.stderr
    assert "--public-url" in done.stderr and "--listen 0.0.0.0:8700" in done.stderr


def test_picogrid_join_checks_its_url_and_announcement(cluster, tmp_path):
    a = cluster.found("A")
    done = picogrid("join", "--dir", a.dir, a.url.removeprefix("http://"), check=False)
    assert done.returncode == 2 and f"try URL http://{a.url.removeprefix('http://')}" \
        in done.stderr, done.stderr
    done = picogrid("join", "--dir", a.dir, a.url, check=False)  # its own URL
    assert done.returncode == 2 and "is the URL of the node you join" in done.stderr
