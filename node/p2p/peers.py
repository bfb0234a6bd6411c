"""The peer table: who we know, where they listen, how well they answer, how far behind they are.

Two things are kept apart. The *infos* are data: the newest signed info of every member (one
per agent whose genesis we hold, so bounded by the community), all passed on, so that every
node holds the same set and reconciling it costs nothing when idle. The *table* is what we call:
a URL learned from an agent info is only a *candidate* until it proves that it holds that
agent's key (`ledger.peerproof`): rounds and pushes go to proven peers and to the URLs the
operator gave (`--peer`, config), never to a candidate. Each node proves for itself, so an info
naming a URL that is not its agent's costs each node at most PROOF_ATTEMPTS challenges to that
URL, and an agent at most DISPROVED_PER_AGENT such URLs. The table is bounded (MAX_PEERS), one
source (a peer we pulled infos from, or an address block that posted them) may hold at most
SOURCE_SHARE unproven candidates at once, a candidate that fails PROOF_ATTEMPTS proofs is
forgotten, and a peer that fails DEMOTE_AFTER times in a row is demoted (called again only after
DEMOTED_S, and the first to be evicted when a new member needs room). So a flood of infos can
neither reach our rounds nor crowd out members that answer. When the table is full, members of
our own grid (`prefer`: the chains we replicate with them) take the place of other grids' peers;
a member's info that found no room waits, and its URL is taken when room comes.

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
MAX_PEERS = 256  # peers learned from infos (the URLs given by the operator come on top)
SOURCE_SHARE = MAX_PEERS // 8  # unproven candidates one source may hold at once
DEMOTE_AFTER = 8  # failures in a row (about two minutes of back-off) ...
DEMOTED_S = 300.0  # ... then the peer is called only every five minutes
PROOF_ATTEMPTS = 3
PROOF_BACKOFF_S = 5.0
MAX_DISPROVED = 4096  # agents whose failed URLs are remembered
DISPROVED_PER_AGENT = 2  # URLs of one agent that failed their proofs: its next ones are not tried


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
    given: bool = False  # given by the operator (config, --peer): called without a proof
    proven: bool = False  # answered a challenge with the key of `agent`
    proof_failures: int = 0
    proof_retry_at: float = 0.0
    source: str = ""  # where its info came from (counted while unproven)
    clock_offset_us: int | None = None  # the peer's clock minus ours (node.p2p.clock)
    clock_tolerance_us: int = 30_000_000  # beyond it the peer's clock shows as off

    def live(self, now: float) -> bool:
        """Whether the peer may be contacted now (given or proven, and not backing off)."""
        return bool(self.url) and (self.given or self.proven) and now >= self.retry_at

    def needs_proof(self, now: float) -> bool:
        """Whether the peer is a candidate whose proof may be asked for now."""
        return (bool(self.url) and not self.proven and self.agent is not None
                and now >= self.proof_retry_at)

    @property
    def demoted(self) -> bool:
        """Failed DEMOTE_AFTER times in a row."""
        return self.failures >= DEMOTE_AFTER

    def to_json(self, now: float) -> dict:
        """The peer as /v1/info shows it."""
        return {
            "url": self.url,
            "agent": self.agent.hex() if self.agent else None,
            "reachable": bool(self.url),
            "live": self.failures == 0 and self.last_ok > 0,
            "proven": self.proven or self.given,
            "demoted": self.demoted,
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
    closed, is held), and its URL is called only once it proved the author's key.
    """

    own_url: str
    own_agent: bytes
    rng: random.Random = field(default_factory=random.Random)
    by_url: dict[str, Peer] = field(default_factory=dict)
    infos: dict[bytes, AgentInfo] = field(default_factory=dict)
    is_member: Callable[[bytes], bool] = lambda agent: True
    prefer: Callable[[bytes], bool] = lambda agent: False  # our grid's members
    strangers: OrderedDict[bytes, str] = field(default_factory=OrderedDict)
    disproved: OrderedDict[bytes, set[str]] = field(default_factory=OrderedDict)  # failed URLs
    waiting: OrderedDict[bytes, str] = field(default_factory=OrderedDict)  # members' URLs, no room

    def add_url(self, url: str, bootstrap: bool = False) -> Peer | None:
        """Know a peer by a URL the operator gave (not ourselves); the peer, or None."""
        peer = self._peer_at(url)
        if peer is not None:
            peer.given = True
            peer.bootstrap = peer.bootstrap or bootstrap
        return peer

    def _peer_at(self, url: str) -> Peer | None:
        url = url.rstrip("/")
        if not url or url == self.own_url.rstrip("/"):
            return None
        peer = self.by_url.get(url)
        if peer is None:
            peer = self.by_url[url] = Peer(url=url)
        return peer

    def add_info(self, info: AgentInfo, source: str = "") -> bool:
        """Keep the newest info per agent; returns True when it told us something new.

        `source` names where it came from. A member's info is always kept (and passed on); its
        URL waits for room when that source already holds SOURCE_SHARE unproven candidates or
        the table is full, and is never tried when the agent's URLs failed their proofs."""
        if info.agent == self.own_agent:
            return False
        old = self.infos.get(info.agent)
        if old is not None and old.created_us >= info.created_us:
            return False
        if old is not None and old.url != info.url:
            self._forget_url(old)  # the agent moved
        self.infos[info.agent] = info
        self.waiting.pop(info.agent, None)
        if self.is_member(info.agent):
            self._place(info, source)
        else:  # held, not called: it becomes a candidate only once its genesis is held (`live`)
            self.strangers[info.agent] = source
            self.strangers.move_to_end(info.agent)
            while len(self.strangers) > MAX_STRANGERS:
                agent, _ = self.strangers.popitem(last=False)
                if not self.is_member(agent) and agent in self.infos:
                    self._forget_url(self.infos.pop(agent))
        return True

    def _place(self, info: AgentInfo, source: str) -> None:
        """A member's info: its URL becomes a candidate if there is room, or waits for it."""
        if not info.url or self._tried_enough(info):
            return
        if self._room_for(info, source):
            self._adopt(info, source)
        else:
            self.waiting[info.agent] = source
            self.waiting.move_to_end(info.agent)

    def _tried_enough(self, info: AgentInfo) -> bool:
        """Whether this URL, or DISPROVED_PER_AGENT others of the agent, failed their proofs."""
        failed = self.disproved.get(info.agent, ())
        return info.url.rstrip("/") in failed or len(failed) >= DISPROVED_PER_AGENT

    def _room_for(self, info: AgentInfo, source: str) -> bool:
        """Whether a member's URL may join the table: within its source's share, and within
        MAX_PEERS (evicting the worst candidate or demoted peer when full; a member of our
        grid may also take the place of another grid's peer)."""
        url = info.url.rstrip("/")
        if url in self.by_url:
            return True
        learned = [p for p in self.by_url.values() if not p.given]
        if source and sum(1 for p in learned if not p.proven and p.source == source) \
                >= SOURCE_SHARE:
            return False
        if len(learned) < MAX_PEERS:
            return True
        # Unproven or demoted peers make room, never one of our grid for another grid's member;
        # a member of our grid may also take a proven peer's place if that one is of another
        # grid. Unproven first, then demoted; for a member of our grid, other grids' first.
        ours = self.prefer(info.agent)
        worst = [p for p in learned if (ours or not self._ours(p))
                 and (not p.proven or p.demoted or (ours and not self._ours(p)))]
        if not worst:
            return False  # every peer proved itself and answers (or is of our grid): keep them
        victim = max(worst, key=lambda p: (ours and not self._ours(p), not p.proven, p.demoted,
                                           not self._ours(p), p.failures + p.proof_failures))
        del self.by_url[victim.url]
        if (victim.agent is not None and victim.proof_failures == 0
                and self.infos.get(victim.agent) is victim.info):
            # Its info is still held: it waits for room. Not one that failed a proof: a new
            # place would start its count of PROOF_ATTEMPTS again.
            self.waiting[victim.agent] = victim.source
        return True

    def _adopt(self, info: AgentInfo, source: str) -> None:
        """A member's info: its URL becomes a candidate (a peer once it proves the key)."""
        if not info.url:
            return
        peer = self._peer_at(info.url)
        if peer is None or (peer.proven and peer.agent not in (None, info.agent)):
            return  # ourselves, or a URL that proved another agent's key
        if peer.agent != info.agent:
            peer.proven, peer.proof_failures, peer.proof_retry_at = False, 0, 0.0
        peer.agent, peer.info = info.agent, info
        peer.source = peer.source or source

    def member_infos(self, now_us: int) -> list[AgentInfo]:
        """The unexpired infos of members: what we pass on, whether or not their URL proved
        itself to us (each node proves a URL before it calls it). A stranger's is never."""
        return [i for a, i in self.infos.items() if i.expires_us >= now_us and self.is_member(a)]

    def _forget_url(self, info: AgentInfo) -> None:
        peer = self.by_url.get(info.url.rstrip("/"))
        if peer is not None and not peer.given and peer.agent == info.agent:
            del self.by_url[peer.url]

    def drop_expired(self, now_us: int) -> None:
        """Forget expired infos, and the URLs only they told us about (given peers stay)."""
        for agent in [a for a, i in self.infos.items() if i.expires_us < now_us]:
            self._forget_url(self.infos.pop(agent))
            self.strangers.pop(agent, None)
            self.waiting.pop(agent, None)

    def live(self, now: float) -> list[Peer]:
        """Peers to talk to now; infos of agents that became members since are adopted first."""
        for agent in [a for a in self.strangers if self.is_member(a)]:
            source = self.strangers.pop(agent)
            info = self.infos.get(agent)
            if info is not None:
                self._place(info, source)
        self._take_waiting()
        return [p for p in self.by_url.values() if p.live(now)]

    def _ours(self, peer: Peer) -> bool:
        return peer.agent is not None and self.prefer(peer.agent)

    def _take_waiting(self) -> None:
        """Members' URLs that waited for room take what room there is, oldest first; one whose
        source's share is full goes to the back and ends the turn."""
        if not self.waiting:
            return
        room = MAX_PEERS - sum(1 for p in self.by_url.values() if not p.given)
        for agent in list(self.waiting)[:max(0, room)]:
            source = self.waiting.pop(agent)
            info = self.infos.get(agent)
            if info is None or not info.url or self._tried_enough(info):
                continue
            if not self._room_for(info, source):
                self.waiting[agent] = source
                return
            self._adopt(info, source)

    def to_prove(self, now: float) -> list[Peer]:
        """Candidates whose proof may be asked for now, fewest failed proofs first."""
        self.live(now)  # adopt new members first
        waiting = [p for p in self.by_url.values() if p.needs_proof(now)]
        return sorted(waiting, key=lambda p: p.proof_failures)

    def proved(self, peer: Peer) -> None:
        """The peer answered a challenge with its agent's key: it may be called from now on."""
        peer.proven, peer.proof_failures, peer.proof_retry_at = True, 0, 0.0
        peer.last_error = ""

    def proof_failed(self, peer: Peer, now: float, error: str) -> None:
        """A failed proof: retry later; after PROOF_ATTEMPTS the URL is dropped (its info stays:
        the agent's word, passed on, that others may be able to check)."""
        peer.proof_failures += 1
        peer.last_error = f"no proof: {error}"[:200]
        peer.proof_retry_at = now + PROOF_BACKOFF_S * 2.0 ** (peer.proof_failures - 1)
        if peer.proof_failures < PROOF_ATTEMPTS or peer.agent is None:
            return
        self.disproved.setdefault(peer.agent, set()).add(peer.url)
        self.disproved.move_to_end(peer.agent)
        while len(self.disproved) > MAX_DISPROVED:
            self.disproved.popitem(last=False)
        if peer.given:  # a URL the operator gave stays; only the claim on it is dropped
            peer.agent, peer.info, peer.proof_failures = None, None, 0
        elif self.by_url.get(peer.url) is peer:
            del self.by_url[peer.url]

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
        """The peer failed: back off, doubling up to MAX_BACKOFF_S; demoted after DEMOTE_AFTER
        failures in a row (then called every DEMOTED_S)."""
        peer.failures += 1
        peer.last_error = error[:200]
        wait = DEMOTED_S if peer.demoted else min(MAX_BACKOFF_S, 2.0 ** (peer.failures - 1))
        peer.retry_at = now + wait

    def all(self) -> list[Peer]:
        """Every peer and candidate, by URL."""
        return sorted(self.by_url.values(), key=lambda p: p.url)
