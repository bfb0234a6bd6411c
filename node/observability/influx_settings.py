"""The `[influx]` table of config.toml, checked: where and how the exporter writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from node.errors import UserError


@dataclass(frozen=True, slots=True)
class InfluxSettings:
    url: str
    version: int = 1
    database: str = "picogrid"
    bucket: str = ""
    org: str = ""
    token: str = ""
    username: str = ""
    password: str = ""
    batch_lines: int = 5000
    max_backoff_s: float = 60.0
    timeout_s: float = 10.0

    @classmethod
    def from_config(cls, cfg: Any) -> InfluxSettings:
        """The `[influx]` table checked; UserError on a bad value."""
        table = dict(cfg.extra.get("influx", {}) or {})
        where = f"{cfg.dir / 'config.toml'}: [influx]"
        url = str(table.get("url", cfg.influx_url) or "").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise UserError(f"{where} url must start with http:// or https://, not {url!r}")
        bucket = str(table.get("bucket", ""))
        try:
            version = int(table.get("version", 2 if bucket else 1))
            batch = int(table.get("batch_lines", 5000))
            backoff = float(table.get("max_backoff_s", 60))
            timeout = float(table.get("timeout_s", 10))
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where}: {exc}") from None
        if version not in (1, 2):
            raise UserError(f"{where} version must be 1 or 2, not {version}")
        if version == 2 and not (bucket and table.get("org")):
            raise UserError(f"{where} version 2 needs bucket and org")
        if batch < 1 or backoff < 0.1 or timeout <= 0:
            raise UserError(f"{where} batch_lines >= 1, max_backoff_s >= 0.1, timeout_s > 0")
        return cls(
            url=url,
            version=version,
            database=str(table.get("database", cfg.influx_db) or "picogrid"),
            bucket=bucket,
            org=str(table.get("org", "")),
            token=str(table.get("token", cfg.influx_token) or ""),
            username=str(table.get("username", "")),
            password=str(table.get("password", "")),
            batch_lines=batch,
            max_backoff_s=backoff,
            timeout_s=timeout,
        )

    def write_request(self) -> tuple[str, dict[str, str]]:
        """The write URL and its query parameters."""
        if self.version == 2:
            return (
                f"{self.url}/api/v2/write",
                {"org": self.org, "bucket": self.bucket, "precision": "us"},
            )
        return f"{self.url}/write", {"db": self.database, "precision": "u"}

    def headers(self) -> dict[str, str]:
        """The headers of a write (the token, when given)."""
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        return headers

    def auth(self) -> aiohttp.BasicAuth | None:
        """Basic auth for InfluxDB 1.x, when a user is given."""
        if self.version == 1 and self.username and not self.token:
            return aiohttp.BasicAuth(self.username, self.password)
        return None

    def where(self) -> str:
        """The server and database, for messages."""
        target = self.database if self.version == 1 else f"{self.org}/{self.bucket}"
        return f"InfluxDB {self.version}.x at {self.url} ({target})"
