"""The HTTP client session a node or a command talks to peers with: signed requests and TLS.

Every request made through a session from `open_session(signer=...)` carries the three
signed-request headers (docs/protocol.md, "Signed requests"), so a closed community's nodes
answer it; an open community's nodes ignore them. https:// peers are verified against the
system's certificate authorities, or against the one CA file given (`[tls] ca` in config.toml,
`--ca FILE` on the command line).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp

from ledger.chain import now_us
from ledger.keys import Identity
from ledger.requestauth import sign_request


class RequestSigner:
    """An aiohttp client middleware that signs every request with `identity` for `community`.

    `community` may be set later (an auditor learns it from the public charter first); while it
    is None, requests go out unsigned.
    """

    def __init__(self, identity: Identity, community: str | None = None) -> None:
        self.identity = identity
        self.community = community

    async def __call__(self, request: aiohttp.ClientRequest, handler) -> aiohttp.ClientResponse:
        """Add the signature headers over method, path with query, time and body."""
        if self.community is not None:
            body = request.body
            raw = b"" if isinstance(body, bytes) else await body.as_bytes()
            request.headers.update(sign_request(self.identity, self.community, request.method,
                                                request.url.raw_path_qs, now_us(), raw))
        return await handler(request)


def client_tls(ca_file: str | Path | None = None) -> ssl.SSLContext | bool:
    """Verify https:// peers: against the system's authorities, or only `ca_file` when given."""
    if not ca_file:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot use {ca_file} as a certificate authority: {exc}") from None


def open_session(signer: RequestSigner | None = None, ca_file: str | Path | None = None,
                 **kwargs) -> aiohttp.ClientSession:
    """A client session that signs with `signer` (if any) and verifies TLS (see `client_tls`)."""
    connector = aiohttp.TCPConnector(ssl=client_tls(ca_file))
    middlewares = (signer,) if signer is not None else ()
    return aiohttp.ClientSession(connector=connector, middlewares=middlewares, **kwargs)
