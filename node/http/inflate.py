"""Request bodies sent with `Content-Encoding`: inflated here, in one call, bounded.

aiohttp can inflate request bodies as they stream in, but some short deflate bodies that never
end their stream left the request waiting for data that would never come (the client saw no
answer at all, and only when the body arrived in a separate packet from the headers, which is
why the test failed under load and passed alone). The node turns that off
(`auto_decompress=False`) and inflates the whole body here: a stream that is broken, unfinished
or followed by junk is the sender's fault (400), and one that inflates beyond the body limit is
too large (413), so a small zip bomb cannot make a large body.
"""

from __future__ import annotations

import zlib


class BodyError(ValueError):
    """A body that cannot be inflated; `too_large` when it inflates beyond the limit."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def _wbits(encoding: str, body: bytes) -> int:
    if encoding in ("gzip", "x-gzip"):
        return 16 + zlib.MAX_WBITS
    # RFC 9110's deflate is a zlib stream; some clients send a raw deflate stream instead
    # (its first byte does not name method 8): both are taken, as browsers do.
    return zlib.MAX_WBITS if body[:1] and body[0] & 0x0F == 8 else -zlib.MAX_WBITS


def inflate(body: bytes, content_encoding: str, limit: int) -> bytes:
    """The body as sent before `content_encoding` (at most `limit` bytes), or `BodyError`."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BodyError(f"unsupported Content-Encoding {content_encoding!r}: send gzip, "
                        "deflate or none")
    inflater = zlib.decompressobj(_wbits(encoding, body))
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise BodyError(f"the body does not inflate as its Content-Encoding {encoding}") from None
    if len(out) > limit:
        raise BodyError(f"the body inflates to more than {limit} bytes", too_large=True)
    if not inflater.eof or inflater.unused_data:
        raise BodyError(f"the body's {encoding} stream (its Content-Encoding) is unfinished or "
                        "followed by other bytes")
    return out
