"""The dashboard every node serves at `/`: one static page that polls this node's JSON API.

Nothing is fetched from anywhere but this node (the page works offline on a Pi): `GET /` is
`static/index.html`, `GET /static/{name}` its script, style sheet and icon. Each asset carries a
strong ETag (a digest of its bytes) and the page names its assets with `?v=<digest>`, so a browser
may keep them for a day and still never runs a stale script after an upgrade; the page itself is
revalidated on every load (`no-cache`, answered 304 when unchanged).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}
TEXT_TYPES = {".html", ".js", ".css", ".svg", ".json"}
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
ASSET_MAX_AGE = 86_400
# The page loads only from its own node: no CDN can slip in, and a violation is a console error
# the browser test catches.
CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)
VERSIONED = re.compile(r'((?:href|src)="/static/([A-Za-z0-9_.-]+))"')


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    charset: str | None
    etag: str


def _asset(path: Path) -> Asset | None:
    suffix = path.suffix.lower()
    if suffix not in CONTENT_TYPES or not path.is_file():
        return None
    body = path.read_bytes()
    etag = hashlib.sha256(body).hexdigest()[:20]
    return Asset(body, CONTENT_TYPES[suffix], "utf-8" if suffix in TEXT_TYPES else None, etag)


class StaticFiles:
    """The dashboard's files, read once: a Pi serves them from memory."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self.assets: dict[str, Asset] = {}
        for path in sorted(directory.iterdir()) if directory.is_dir() else []:
            if SAFE_NAME.match(path.name) and (asset := _asset(path)) is not None:
                self.assets[path.name] = asset
        self.index = self._versioned_index()

    def _versioned_index(self) -> Asset | None:
        page = self.assets.get("index.html")
        if page is None:
            return None

        def stamp(match: re.Match) -> str:
            asset = self.assets.get(match.group(2))
            return f'{match.group(1)}?v={asset.etag}"' if asset else match.group(0)

        body = VERSIONED.sub(stamp, page.body.decode("utf-8")).encode("utf-8")
        etag = hashlib.sha256(body).hexdigest()[:20]
        return Asset(body, page.content_type, page.charset, etag)


def _respond(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    etag = f'"{asset.etag}"'
    headers = {
        "ETag": etag,
        "Cache-Control": cache_control,
        "X-Content-Type-Options": "nosniff",
    }
    if asset.content_type == "text/html":
        headers["Content-Security-Policy"] = CSP
        headers["Referrer-Policy"] = "no-referrer"
    wanted = request.headers.get("If-None-Match", "")
    if etag in [tag.strip() for tag in wanted.split(",")] or wanted.strip() == "*":
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=asset.body, content_type=asset.content_type, charset=asset.charset, headers=headers
    )


async def index(request: web.Request) -> web.Response:
    """GET /: the dashboard's page, its asset links stamped with their versions."""
    files: StaticFiles = request.app[FILES_KEY]
    if files.index is None:
        raise web.HTTPNotFound(reason="this node was installed without its dashboard")
    return _respond(request, files.index, "no-cache")


async def static(request: web.Request) -> web.Response:
    """GET /static/{name}: one of the dashboard's files."""
    files: StaticFiles = request.app[FILES_KEY]
    name = request.match_info["name"]
    asset = files.assets.get(name) if SAFE_NAME.match(name) else None
    if asset is None:
        raise web.HTTPNotFound(reason=f"no static file {name!r}")
    # A request naming the current version may be cached for a day; any other is revalidated.
    fresh = request.query.get("v") == asset.etag
    cache = f"public, max-age={ASSET_MAX_AGE}, immutable" if fresh else "no-cache"
    return _respond(request, asset, cache)


FILES_KEY: web.AppKey = web.AppKey("dashboard_files", StaticFiles)


def set_up_dashboard(app: web.Application, directory: Path = STATIC_DIR) -> None:
    """Load the dashboard's files (the routes are in `node.http.routes`)."""
    app[FILES_KEY] = StaticFiles(directory)
