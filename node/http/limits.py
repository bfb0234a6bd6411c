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


LANE_DENIED_S = 60.0
MIN_AUTHOR_RATE = 20.0  # a member's node gossips at its own pace, whatever `rate_limit` says


class RequestLimits:
    """The node's request limits: per address block, a global ceiling, and per author.

    - Every request takes a token from its address block's bucket (`rate`/s, bursts of `burst`)
      and, except `GET /v1/info`, from the global ceiling (`ceiling` times that).
    - Over either, a client gets 429 with Retry-After, except a gossip push whose actions are
      members' and new to us (fresh seqs): that is charged to its authors' buckets instead, so a
      flood from a member's address block never stops a member's pushes. A block whose pushes
      on that lane carried refused actions loses the lane for LANE_DENIED_S.
    - Buckets are bounded (least recently used forgotten first), never cleared all at once.
    """

    def __init__(self, rate: float = 200.0, burst: float = 400.0, ceiling: float = 8.0,
                 author_share: float = 0.25, max_keys: int = 10_000) -> None:
        self.blocks = Buckets(rate, burst, max_keys)
        self.ceiling = Buckets(rate * ceiling, burst * ceiling, 1)
        self.authors = Buckets(max(MIN_AUTHOR_RATE, rate * author_share),
                               max(2 * MIN_AUTHOR_RATE, burst * author_share), max_keys)
        self.denied: OrderedDict[str, float] = OrderedDict()
        self.max_keys = max_keys

    def admit(self, block: str, path: str, now: float | None = None) -> float:
        """0.0 when the request may go on, else the seconds its client should wait."""
        wait = self.blocks.take(block, now=now)
        if wait == 0.0 and path != "/v1/info":
            wait = self.ceiling.take("*", now=now)
        return wait

    def lane(self, block: str, authors: set[bytes], now: float | None = None) -> bool:
        """Whether a push of members' fresh actions by `authors` goes on, over the block's limit:
        one token from every author's bucket."""
        now = time.monotonic() if now is None else now
        if not authors or self.denied.get(block, 0.0) > now:
            return False
        return all(self.authors.take(a.hex(), now=now) == 0.0 for a in sorted(authors))

    def deny_lane(self, block: str, now: float | None = None) -> None:
        """The block sent refused actions on the members' lane: it loses the lane a while."""
        now = time.monotonic() if now is None else now
        self.denied.pop(block, None)
        self.denied[block] = now + LANE_DENIED_S
        while len(self.denied) > self.max_keys:
            self.denied.popitem(last=False)
