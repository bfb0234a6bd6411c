"""Compressed request bodies: inflated by the node in one bounded call, never left hanging."""

from __future__ import annotations

import gzip
import socket
import time
import zlib

import pytest
from nodeproc import Cluster

from node.http.inflate import BodyError, inflate

# The body hypothesis found: as a raw deflate stream it never ends. When it came in a packet
# of its own, after the headers, the HTTP layer's streaming inflater waited for more forever.
UNENDING = b"*2\x99\xca\xe7\x9a>\x03"


def test_gzip_and_deflate_inflate_and_identity_passes():
    data = b"picogrid " * 100
    assert inflate(gzip.compress(data), "gzip", 10_000) == data
    assert inflate(zlib.compress(data), "Deflate", 10_000) == data
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert inflate(raw.compress(data) + raw.flush(), "deflate", 10_000) == data
    assert inflate(b"as is", "identity", 10) == b"as is" and inflate(b"x", "", 1) == b"x"


@pytest.mark.parametrize(
    "body, encoding",
    [
        (UNENDING, "deflate"),
        (gzip.compress(b"abc", mtime=0)[:-3], "gzip"),  # cut short
        (gzip.compress(b"abc", mtime=0) + b"junk", "gzip"),  # followed by other bytes
        (b"not compressed at all", "gzip"),
        (b"abc", "br"),
    ],
)
def test_broken_unfinished_or_unknown_encodings_are_refused(body, encoding):
    with pytest.raises(BodyError) as caught:
        inflate(body, encoding, 10_000)
    assert "Content-Encoding" in str(caught.value) and not caught.value.too_large


def test_a_small_bomb_is_too_large_without_inflating_it_all():
    bomb = gzip.compress(bytes(50 * 2**20))  # 50 MB of zeros in about 50 KB
    with pytest.raises(BodyError) as caught:
        inflate(bomb, "gzip", 4 * 2**20)
    assert caught.value.too_large


def test_an_unending_deflate_body_in_its_own_packet_gets_400_at_once(tmp_path):
    with Cluster(tmp_path) as c:
        a = c.found("A")
        c.start(a)
        head = (f"POST /v1/gossip/actions HTTP/1.1\r\nHost: {a.url[7:]}\r\n"
                "Content-Type: application/msgpack\r\nContent-Encoding: deflate\r\n"
                f"Content-Length: {len(UNENDING)}\r\nConnection: close\r\n\r\n").encode()
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", a.port), timeout=10) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.sendall(head)
                time.sleep(0.2)  # the body comes in a packet of its own
                sock.sendall(UNENDING)
                answer = b""
                while chunk := sock.recv(65536):  # a hang raises TimeoutError here
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
            assert b"Content-Encoding" in answer
