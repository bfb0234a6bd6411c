"""The peer table: who we know, where they listen, how well they answer, how far behind they are.

A dead peer costs one short timeout, then exponential back-off (1 s, 2 s, 4 s ... 60 s): it is
never chosen again before its back-off ends, so it never delays rounds with live peers.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ledger.agentinfo import AgentInfo

MAX_BACKOFF_S = 60.0
MAX_STRANGERS = 64


@dataclass(slots=True)
class Peer:
    url: str
    agent: bytes | None = None
    info: AgentInfo | None = None
    failures: int = 0
    retry_at: float = 0.0
    last_ok: float = 0.0
    last_error: str = ""
    lag: int | None = None  # actions the peer holds that we lack (last comparison)
    behind: int | None = None  # actions we hold that the peer lacked
    bootstrap: bool = False
    clock_offset_us: int | None = None  # the peer's clock minus ours (node.p2p.clock)
    clock_tolerance_us: int = 30_000_000  # beyond it the peer's clock shows as off

    def live(self, now: float) -> bool:
        """Whether the peer may be contacted now (reachable and not backing off)."""
        return bool(self.url) and now >= self.retry_at

    def to_json(self, now: float) -> dict:
        """The peer as /v1/info shows it."""
        return {
            "url": self.url,
            "agent": self.agent.hex() if self.agent else None,
            "reachable": bool(self.url),
            "live": self.failures == 0 and self.last_ok > 0,
            "failures": self.failures,
            "seconds_since_ok": round(now - self.last_ok, 1) if self.last_ok else None,
            "lag": self.lag,
            "behind": self.behind,
            "last_error": self.last_error or None,
            "clock_offset_s": None if self.clock_offset_us is None
            else round(self.clock_offset_us / 1e6, 3),
            "clock": self.clock_state(),
        }

    def clock_state(self) -> str:
        """The peer's clock against ours: "ok", "ahead", "behind" or "unknown"."""
        offset = self.clock_offset_us
        if offset is None:
            return "unknown"
        if abs(offset) <= self.clock_tolerance_us:
            return "ok"
        return "ahead" if offset > 0 else "behind"


@dataclass
class PeerTable:
    """Peers by URL, and the newest signed info of every agent we heard of.

    Anyone can sign an info for a community, so infos of agents whose chain we do not hold
    (`is_member` false: strangers, or members whose genesis has not reached us yet) are kept
    only up to MAX_STRANGERS, oldest forgotten first, and are neither called nor served: an
    info counts only once its author is a member (its genesis, invited when the community is
    closed, is held), so a flood of made-up peers never enters our rounds.
    """

    own_url: str
    own_agent: bytes
    rng: random.Random = field(default_factory=random.Random)
    by_url: dict[str, Peer] = field(default_factory=dict)
    infos: dict[bytes, AgentInfo] = field(default_factory=dict)
    is_member: Callable[[bytes], bool] = lambda agent: True
    strangers: OrderedDict[bytes, None] = field(default_factory=OrderedDict)

    def add_url(self, url: str, bootstrap: bool = False) -> Peer | None:
        """Know a peer by URL (not ourselves); the peer, or None."""
        url = url.rstrip("/")
        if not url or url == self.own_url.rstrip("/"):
            return None
        peer = self.by_url.get(url)
        if peer is None:
            peer = self.by_url[url] = Peer(url=url, bootstrap=bootstrap)
        peer.bootstrap = peer.bootstrap or bootstrap
        return peer

    def add_info(self, info: AgentInfo) -> bool:
        """Keep the newest info per agent; returns True when it told us something new."""
        if info.agent == self.own_agent:
            return False
        old = self.infos.get(info.agent)
        if old is not None and old.created_us >= info.created_us:
            return False
        if old is not None and old.url != info.url:
            self._forget_url(old)  # the agent moved
        self.infos[info.agent] = info
        if self.is_member(info.agent):
            self._adopt(info)
        else:  # held, not called: it becomes a peer only once its genesis is held (`live`)
            self.strangers[info.agent] = None
            self.strangers.move_to_end(info.agent)
            while len(self.strangers) > MAX_STRANGERS:
                agent, _ = self.strangers.popitem(last=False)
                if not self.is_member(agent) and agent in self.infos:
                    self._forget_url(self.infos.pop(agent))
        return True

    def _adopt(self, info: AgentInfo) -> None:
        """A member's info: its URL becomes a gossip peer."""
        if info.url:
            peer = self.add_url(info.url)
            if peer is not None:
                peer.agent, peer.info = info.agent, info

    def member_infos(self, now_us: int) -> list[AgentInfo]:
        """The unexpired infos of members: what we pass on (a stranger's info is never served)."""
        return [i for a, i in self.infos.items() if i.expires_us >= now_us and self.is_member(a)]

    def _forget_url(self, info: AgentInfo) -> None:
        peer = self.by_url.get(info.url.rstrip("/"))
        if peer is not None and not peer.bootstrap and peer.agent == info.agent:
            del self.by_url[peer.url]

    def drop_expired(self, now_us: int) -> None:
        """Forget expired infos, and the URLs only they told us about (bootstrap peers stay)."""
        for agent in [a for a, i in self.infos.items() if i.expires_us < now_us]:
            self._forget_url(self.infos.pop(agent))
            self.strangers.pop(agent, None)

    def live(self, now: float) -> list[Peer]:
        """Peers to talk to now; infos of agents that became members since are adopted first."""
        for agent in [a for a in self.strangers if self.is_member(a)]:
            del self.strangers[agent]
            if agent in self.infos:
                self._adopt(self.infos[agent])
        return [p for p in self.by_url.values() if p.live(now)]

    def pick(self, now: float, k: int = 1) -> list[Peer]:
        """Up to `k` live peers at random."""
        live = self.live(now)
        return self.rng.sample(live, min(k, len(live)))

    def ok(self, peer: Peer, now: float) -> None:
        """The peer answered: no back-off."""
        peer.failures = 0
        peer.retry_at = 0.0
        peer.last_ok = now
        peer.last_error = ""

    def failed(self, peer: Peer, now: float, error: str) -> None:
        """The peer failed: back off, doubling up to MAX_BACKOFF_S."""
        peer.failures += 1
        peer.last_error = error[:200]
        peer.retry_at = now + min(MAX_BACKOFF_S, 2.0 ** (peer.failures - 1))

    def all(self) -> list[Peer]:
        """Every peer, by URL."""
        return sorted(self.by_url.values(), key=lambda p: p.url)
