"""The node's optional services: each is None until it runs (or when it is not configured)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp

    from hardware.status import StatusReporter
    from node.devices.hardware import HardwareGlue
    from node.disk import DiskWatch
    from node.observability.influx import InfluxExporter
    from node.p2p.clock import ClockWatch
    from node.trading.agent import AgentLoop


@dataclass(slots=True)
class Services:
    """Set by `Node.start` as each service starts; read by /metrics and the hardware."""

    agent: AgentLoop | None = None
    hardware: HardwareGlue | None = None
    status: StatusReporter | None = None
    influx: InfluxExporter | None = None
    session: aiohttp.ClientSession | None = None
    clock: ClockWatch | None = None  # the clock's offset from the peers' (set from the start)
    disk: DiskWatch | None = None  # whether the disk is full (set from the start)
