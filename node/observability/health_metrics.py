"""The clock and disk families of `GET /metrics` (node.observability.metrics yields the rest).

A clock set off and a full disk are named faults (docs/troubleshooting.md): each has a gauge that
is 1 while it lasts, and counters of what it made the node refuse.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import Metric

from ledger.errors import REASONS
from node.http.context import HttpContext
from node.observability.families import counter, counters, gauge, gauges


def clock_and_disk(m: Counter[str], node: HttpContext) -> Iterator[Metric]:
    """Our clock against the peers', the actions refused for it, and the disk."""
    clock, disk = node.services.clock, node.services.disk
    offset = clock.offset_us() if clock is not None else None
    yield gauge("picogrid_clock_offset_seconds",
                "This node's clock minus the median of its peers' (NaN before any peer answered).",
                math.nan if offset is None else round(offset / 1e6, 3))
    yield gauge("picogrid_clock_peers_compared",
                "Peers whose clock was compared in the last 5 minutes.",
                len(clock.fresh()) if clock is not None else 0)
    yield gauge("picogrid_clock_off",
                "1 while the clock is off beyond the tolerance (no orders are signed), else 0.",
                clock is not None and clock.state() in ("ahead", "behind"))
    yield gauges("picogrid_peer_clock_offset_seconds",
                 "The peer's clock minus ours, at the last comparison.", "peer",
                 [(p.url, round(p.clock_offset_us / 1e6, 3))
                  for p in node.peers.all() if p.clock_offset_us is not None])
    yield counters("picogrid_not_signed_total",
                   "Own actions not signed for the clock, by reason (clock-off, clock-behind-chain).",
                   "reason",
                   [(r, m[f"not_signed:{r}"]) for r in ("clock-off", "clock-behind-chain")])
    yield counters("picogrid_own_rejected_total",
                   "Own actions that peers rejected, by reason code.", "reason",
                   [(r, m[f"own_rejected:{r}"]) for r in REASONS])
    yield gauge("picogrid_disk_full", "1 while the disk is full (writes fail), else 0.",
                disk is not None and disk.full)
    yield counter("picogrid_disk_full_errors_total",
                  "Writes (own actions, peers' batches) that failed for a full disk.",
                  m["disk_full_errors"])
