"""Serving HTTPS from config.toml: `[tls] cert = "...", key = "..."` (and `ca` for peers).

    [tls]
    cert = "/etc/letsencrypt/live/pi.example.org/fullchain.pem"   # PEM, the chain to serve
    key = "/etc/letsencrypt/live/pi.example.org/privkey.pem"      # PEM, its private key
    ca = "my-ca.pem"          # optional: trust only this CA for https:// peers

Relative paths are taken from the data directory. With `cert` and `key` the node serves HTTPS
only, and the URL it announces (when `public_url` is not set) starts with https://.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from node.config import NodeConfig
from node.errors import UserError


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The certificate chain and key to serve, and the CA to trust for peers (each optional)."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None


def tls_files(cfg: NodeConfig) -> TlsFiles:
    """The `[tls]` table of config.toml; UserError when it is incomplete or names no file."""
    table = cfg.extra.get("tls") or {}
    if not isinstance(table, dict):
        raise UserError("config.toml: [tls] must be a table")
    paths = {}
    for name in ("cert", "key", "ca"):
        value = table.get(name) or ""
        if not isinstance(value, str):
            raise UserError(f"config.toml: tls.{name} must be a file path")
        path = (cfg.dir / value) if value and not Path(value).is_absolute() else Path(value)
        if value and not path.is_file():
            raise UserError(f"config.toml: tls.{name} = {value!r}: no such file")
        paths[name] = path if value else None
    if (paths["cert"] is None) != (paths["key"] is None):
        raise UserError("config.toml: [tls] needs both cert and key to serve HTTPS")
    return TlsFiles(**paths)


def server_tls(files: TlsFiles) -> ssl.SSLContext | None:
    """The server's TLS context, or None to serve plain HTTP; UserError on unusable files."""
    if files.cert is None or files.key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"config.toml: cannot serve HTTPS with tls.cert {files.cert} and "
                        f"tls.key {files.key}: {exc}") from None
    return context
