"""Request limits that need no state of the node: address blocks, bounded token buckets.

A client's address block is what one household or one small host controls: its /24 for IPv4,
its /64 for IPv6. Limits and peer-table shares are counted per block, so one machine with many
addresses in its block counts once.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict


def address_block(remote: str | None) -> str:
    """The /24 (IPv4) or /64 (IPv6) a client address belongs to; the text itself otherwise."""
    if not remote:
        return "?"
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote[:64]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class Buckets:
    """Token buckets by key (`rate` tokens a second, at most `burst`), the least recently used
    forgotten first beyond `max_keys`: holding many keys never clears the others."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, cost: float = 1.0, now: float | None = None) -> float:
        """Take `cost` tokens from `key`'s bucket: 0.0 when allowed, else seconds to wait."""
        now = time.monotonic() if now is None else now
        tokens, last = self.buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0 if tokens >= cost else (cost - tokens) / self.rate
        self.buckets[key] = (tokens - cost if wait == 0.0 else tokens, now)
        while len(self.buckets) > self.max_keys:
            self.buckets.popitem(last=False)
        return wait
