"""The URLs of joining, checked before anything is fetched, and join errors a user can act on.

`picogrid init --join URL` and `picogrid join URL` take the base URL of a running member node
(`http://192.0.2.10:8700`). What people type instead, and what goes wrong on the way, each gets a
message that says what is wrong and what to try.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from node.errors import UserError
from node.p2p.client import PeerError

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def base_url(url: str, flag: str = "--join") -> str:
    """`url` as a node's base URL (no trailing slash), or a UserError saying how to fix it."""
    text = url.strip()
    if not text:
        raise UserError(f"{flag} needs the URL of a running member node, "
                        f"like http://192.0.2.10:8700")
    if "://" not in text:
        raise UserError(f"{flag} {text}: a URL starts with http:// (or https://): "
                        f"try {flag} http://{text.rstrip('/')}")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise UserError(f"{flag} {text}: PicoGrid nodes speak http:// or https://, "
                        f"not {parts.scheme}://")
    if not parts.hostname:
        raise UserError(f"{flag} {text}: no host name; like http://192.0.2.10:8700")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise UserError(f"{flag} {text}: the port is not a number from 1 to 65535") from None
    base = f"{parts.scheme}://{parts.netloc}"
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise UserError(f"{flag} {text}: give the node's base URL, without a path: "
                        f"try {flag} {base}")
    return base


def is_loopback(url: str) -> bool:
    """The URL names this machine only (127.0.0.0/8, ::1, localhost)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_announced(announced: str, join: str, listen: str) -> None:
    """Refuse an announced URL (`--public-url`, or http://LISTEN without it) that would leave
    the new node unreachable or make it take the node it joins for itself."""
    if not announced:
        return  # "" : not reachable, it pulls and pushes itself
    if announced.rstrip("/") == join.rstrip("/"):
        raise UserError(
            f"--public-url {announced} is the URL of the node you join: this node would take "
            f"that node for itself and find no peers. Give this machine's own address, like "
            f"--public-url http://<this machine's IP>:{_port(listen)}")
    if is_loopback(announced) and not is_loopback(join):
        raise UserError(
            f"this node would tell the community to reach it at {announced}, which only works "
            f"on this machine, but {join} is another machine. Run it with --listen "
            f"0.0.0.0:{_port(listen)} --public-url http://<this machine's IP>:{_port(listen)}, "
            f'or --public-url "" if no one can reach it (behind a home router: it then pushes '
            f"and pulls by itself)")


def _port(listen: str) -> str:
    return listen.rsplit(":", 1)[-1] if ":" in listen else "8700"


def explain(url: str, exc: PeerError) -> str:
    """What a failed join request means, and what to try."""
    if exc.unreachable:
        return (f"nothing answers at {url}: is the node running there (picogrid run)? "
                f"is the address and port right? is a firewall in the way?")
    if exc.status == 404:
        return (f"{url} answered 404 (not found): is it a PicoGrid node's base URL, like "
                f"http://192.0.2.10:8700, and does that node run this version? ({exc})")
    if exc.status is not None:
        return f"{url} answered HTTP {exc.status}: is it a PicoGrid node? ({exc})"
    return f"{url} does not answer as a PicoGrid node: {exc}"
