"""The node's optional services: each is None until it runs (or when it is not configured)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp

    from hardware.status import StatusReporter
    from node.devices.hardware import HardwareGlue
    from node.observability.influx import InfluxExporter
    from node.trading.agent import AgentLoop


@dataclass(slots=True)
class Services:
    """Set by `Node.start` as each service starts; read by /metrics and the hardware."""

    agent: AgentLoop | None = None
    hardware: HardwareGlue | None = None
    status: StatusReporter | None = None
    influx: InfluxExporter | None = None
    session: aiohttp.ClientSession | None = None
