"""A node's data directory: its key, its TOML config, its store, and the local admin token.

    DIR/agent.key        Ed25519 seed, mode 0600
    DIR/admin.key        the community admin key (only on the node that founded it), mode 0600
    DIR/config.toml      what `picogrid init` wrote; edit it to change listen address or peers
    DIR/store.sqlite3    the source-chain store
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from node.errors import UserError

DEFAULT_PORT = 8700


@dataclass(slots=True)
class NodeConfig:
    dir: Path
    name: str
    role: str
    household: str
    grid: str
    community: str
    admin: str  # hex of the pinned admin key
    capacity_wh: int = 0
    max_power_w: int = 0
    listen: str = f"127.0.0.1:{DEFAULT_PORT}"
    public_url: str | None = None  # None: http://<listen>; "": not reachable (behind a router)
    peers: list[str] = field(default_factory=list)
    round_ms: int = 1000
    rate_limit: int = 200  # requests per second per client address (burst: twice that)
    replicate: str = "community"  # "grid": hold other grids' chains as genesis and head only
    strategy: str = ""
    scenario: str = ""  # a scenario file whose profile for `name` drives the simulated meter
    hardware: bool = False
    influx_url: str = ""
    influx_db: str = "picogrid"
    influx_token: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def key_path(self) -> Path:
        """The agent's key file."""
        return self.dir / "agent.key"

    @property
    def admin_key_path(self) -> Path:
        """The community admin's key file (founders only)."""
        return self.dir / "admin.key"

    @property
    def store_path(self) -> Path:
        """The SQLite store."""
        return self.dir / "store.sqlite3"

    @property
    def url(self) -> str:
        """The URL peers reach this node at."""
        if self.public_url is not None:
            return self.public_url
        tls = self.extra.get("tls")
        scheme = "https" if isinstance(tls, dict) and tls.get("cert") else "http"
        return f"{scheme}://{self.listen}"

    def listen_host_port(self) -> tuple[str, int]:
        """(host, port) to listen on."""
        return parse_host_port(self.listen)

    def save(self) -> None:
        """Write config.toml atomically."""
        path = self.dir / "config.toml"
        tmp = path.with_suffix(".toml.tmp")
        tmp.write_text(self.to_toml())
        os.replace(tmp, path)

    def to_toml(self) -> str:
        """The config as TOML text."""
        sections = {
            "agent": {
                "name": self.name, "role": self.role, "household": self.household,
                "grid": self.grid, "capacity_wh": self.capacity_wh,
                "max_power_w": self.max_power_w,
            },
            "community": {"name": self.community, "admin": self.admin},
            "node": {
                "listen": self.listen, "peers": self.peers, "round_ms": self.round_ms,
                "rate_limit": self.rate_limit,
                **({"replicate": self.replicate} if self.replicate != "community" else {}),
                **({"public_url": self.public_url} if self.public_url is not None else {}),
            },
            "market": {"strategy": self.strategy, "scenario": self.scenario},
            "hardware": {"enabled": self.hardware},
            "influx": {"url": self.influx_url, "database": self.influx_db,
                       "token": self.influx_token},
        }
        # Keys and tables this class does not model ([meter], [leds], [influx] version ...) are
        # kept as they were read, so saving never loses what a user added by hand.
        for name, table in self.extra.items():
            if not isinstance(table, dict):
                continue
            merged = sections.setdefault(name, {})
            for key, value in table.items():
                merged.setdefault(key, value)
        lines = ["# PicoGrid node configuration, written by `picogrid init`.", ""]
        for section, values in sections.items():
            lines += _toml_table(section, values)
        return "\n".join(lines)


def _toml_table(name: str, values: dict) -> list[str]:
    """`[name]` with its plain keys, then each nested table as `[name.key]`."""
    plain = {k: v for k, v in values.items() if not isinstance(v, dict)}
    lines = [f"[{name}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in plain.items()]
    lines.append("")
    for key, value in values.items():
        if isinstance(value, dict):
            lines += _toml_table(f"{name}.{_toml_key(key)}", value)
    return lines


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        escaped = v.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def parse_host_port(text: str) -> tuple[str, int]:
    """(host, port) of `HOST:PORT`; UserError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UserError(f"expected HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def load_config(directory: str | Path) -> NodeConfig:
    """The config of a data directory; UserError when it is missing or wrong."""
    d = Path(directory)
    path = d / "config.toml"
    if not path.exists():
        agents = sorted(p.parent.name for p in d.glob("*/config.toml")) if d.is_dir() else []
        if agents:  # a demo's directory: one agent per subfolder
            shown = ", ".join(agents[:8]) + (", ..." if len(agents) > 8 else "")
            raise UserError(f"{d} holds {len(agents)} agents, one per subfolder ({shown}); "
                            f"give one of them, like --dir {d / agents[0]}")
        raise UserError(f"{d} is not a PicoGrid node directory (no config.toml); run `picogrid init`")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: {exc}") from None
    try:
        agent, community = data["agent"], data["community"]
        node = data.get("node", {})
        market = data.get("market", {})
        influx = data.get("influx", {})
        cfg = NodeConfig(
            dir=d,
            name=agent["name"], role=agent["role"], household=agent["household"],
            grid=agent["grid"], capacity_wh=int(agent.get("capacity_wh", 0)),
            max_power_w=int(agent.get("max_power_w", 0)),
            community=community["name"], admin=community["admin"],
            listen=node.get("listen", f"127.0.0.1:{DEFAULT_PORT}"),
            public_url=node.get("public_url"),
            peers=list(node.get("peers", [])),
            round_ms=int(node.get("round_ms", 1000)),
            rate_limit=int(node.get("rate_limit", 200)),
            replicate=str(node.get("replicate", "community")),
            strategy=market.get("strategy", ""),
            scenario=market.get("scenario", ""),
            hardware=bool(data.get("hardware", {}).get("enabled", False)),
            influx_url=influx.get("url", ""),
            influx_db=influx.get("database", "picogrid"),
            influx_token=influx.get("token", ""),
            extra=data,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: missing or bad setting {exc}") from None
    if cfg.round_ms < 50:
        raise UserError(f"{path}: node.round_ms must be at least 50")
    if cfg.rate_limit < 1:
        raise UserError(f"{path}: node.rate_limit must be at least 1")
    if cfg.replicate not in ("community", "grid"):
        raise UserError(f"{path}: node.replicate must be \"community\" or \"grid\"")
    parse_host_port(cfg.listen)
    return cfg
