"""Signed agent infos (PROTOCOL section 4): our own, and the one intake of those peers send.

Both directions of peer exchange meet here: what a peer POSTs to us and what we GET from a
peer are parsed, checked against our community and added to the peer table by `take`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger import reconcile
from ledger.actions import blake2b256
from ledger.agentinfo import AgentInfo, AgentInfoError, make_agent_info, parse_agent_info
from ledger.chain import now_us
from ledger.keys import Identity
from ledger.peerproof import PeerProof, make_proof
from node.p2p.peers import PeerTable

INFO_LIFETIME_US = 30 * 60 * 1_000_000


@dataclass(frozen=True, slots=True)
class Intake:
    """What one batch of peer infos did: counts, and the URLs of peers new to the table."""

    accepted: int
    rejected: int
    new_urls: list[str]


class PeerInfos:
    """Our own signed agent info (refreshed before it expires) and the intake of peers' infos."""

    def __init__(self, identity: Identity, community: str, url: str, peers: PeerTable) -> None:
        self.identity = identity
        self.community = community
        self.url = url
        self.peers = peers
        self.own: AgentInfo | None = None
        self._digests: dict[tuple[bytes, bytes], bytes] = {}  # signed info -> its set hash
        self._hashes: dict = {}  # fingerprint parts, kept between reconciliations

    def refresh_own(self) -> AgentInfo:
        """Sign a fresh info of our own (URL, community), valid for INFO_LIFETIME_US."""
        self.own = make_agent_info(self.identity, self.community, self.url, now_us(),
                                   INFO_LIFETIME_US)
        return self.own

    def shareable(self, now: int) -> list[list[bytes]]:
        """Our own info first, then every unexpired member's info (a stranger's is never
        passed on), in wire form."""
        return [i.wire() for i in self.held(now)]

    def held(self, now: int) -> list[AgentInfo]:
        """What we share: our own info and every unexpired member's info."""
        infos = self.peers.member_infos(now)
        return infos if self.own is None else [self.own, *infos]

    def index(self, now: int) -> reconcile.HeadSet:
        """The infos we share as a set to reconcile: agent -> (created_us, hash of the info)."""
        items = {}
        for info in self.held(now):
            key = (info.info_bytes, info.signature)
            digest = self._digests.get(key)
            if digest is None:
                if len(self._digests) > 4 * len(self.peers.infos) + 64:
                    self._digests.clear()
                digest = self._digests[key] = blake2b256(info.info_bytes + info.signature)
            items[info.agent] = (info.created_us, digest)
        if len(self._hashes) > 4 * len(items) + 64:
            self._hashes.clear()
        return reconcile.HeadSet.of(items, self._hashes)

    def of_agents(self, agents: list, now: int) -> list[list[bytes]]:
        """The shared infos of these agents (those we hold), in wire form."""
        wanted = set(agents)
        return [i.wire() for i in self.held(now) if i.agent in wanted]

    def prove(self, nonce: bytes) -> PeerProof:
        """Answer a peer's challenge: our key signs the nonce, our community and our URL."""
        return make_proof(self.identity, nonce, self.community, self.url)

    def take(self, items: list, now: int, source: str = "") -> Intake:
        """Parse and keep every valid info of our community; the rest are counted, dropped.
        `source` (a peer's URL, or the address block that posted them) bounds what one source
        can add to the peer table."""
        accepted = rejected = 0
        known, new = set(self.peers.by_url), []
        held = {tuple(i.wire()) for i in self.peers.infos.values()}
        if self.own is not None:
            held.add(tuple(self.own.wire()))
        for item in items:
            if (isinstance(item, list) and len(item) == 2 and isinstance(item[0], bytes)
                    and isinstance(item[1], bytes) and (item[0], item[1]) in held):
                accepted += 1  # an info we hold already: nothing new, no signature to check
                continue
            try:
                info = parse_agent_info(item, now, self.community)
            except AgentInfoError:
                rejected += 1
                continue
            if self.peers.add_info(info, source) and info.url:
                new.append(info.url)
            accepted += 1
        return Intake(accepted, rejected, [u for u in new if u.rstrip("/") not in known])
