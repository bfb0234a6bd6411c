"""Members without a node, and writing into a stopped node's store (part of `nodeproc`).

`Author` signs its own chain, so tests can make traffic that no market loop of a node can
interfere with; `seed` and `append_own` write into a node's store while the node is stopped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ledger.actions import Action, sign_action
from ledger.chain import SourceChain, now_us
from ledger.keys import Identity, load_identity
from ledger.membrane import Membrane, make_invite
from ledger.store import Store


class HasDir(Protocol):
    dir: Path
    community: str

    def identity(self) -> Identity: ...


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "agent"


# -- members without a node -----------------------------------------------------------------------


@dataclass
class Author:
    """A member that signs its own chain with no node behind it (for seeding and injecting).

    Its genesis names `community` and `grid` (by default a grid with no market, so no node's
    market loop ever looks at its orders). `actions` holds everything it has signed, in order.
    """

    community: str = "c1"
    grid: str = "lab"
    name: str = "author"
    identity: Identity = field(default_factory=Identity.generate)
    invite: bytes | None = None
    actions: list[Action] = field(default_factory=list)

    @property
    def agent(self) -> bytes:
        return self.identity.agent

    @property
    def agent_hex(self) -> str:
        return self.identity.agent_hex

    def genesis(self, ts: int | None = None) -> Action:
        assert not self.actions, "genesis is the first action"
        payload = {
            "community": self.community,
            "grid": self.grid,
            "name": self.name,
            "role": "consumer",
            "household": slug(self.name),
            "capacity_wh": 0,
            "max_power_w": 1000,
            "invite": self.invite,
        }
        action = sign_action(self.identity, 0, None, ts or now_us(), "genesis", payload)
        self.actions.append(action)
        return action

    def next(
        self, type_: str = "bid", payload: dict | None = None, ts: int | None = None
    ) -> Action:
        """Sign the next action on top of the last one (genesis first if there is none)."""
        if not self.actions:
            self.genesis(ts)
        last = self.actions[-1]
        if payload is None:
            payload = {"interval": last.seq, "energy_wh": 100 + last.seq % 7, "price": 12000}
        action = sign_action(
            self.identity, last.seq + 1, last.hash, max(ts or now_us(), last.ts), type_, payload
        )
        self.actions.append(action)
        return action

    def extend(self, n: int, ts: int | None = None) -> list[Action]:
        """Sign `n` more actions (bids), genesis first when the chain is empty."""
        out = []
        if not self.actions:
            out.append(self.genesis(ts))
            n -= 1
        out += [self.next(ts=ts) for _ in range(n)]
        return out

    def fork(self, seq: int) -> Action:
        """A second, different action at `seq` (which must be > 0): a fork."""
        prev = self.actions[seq - 1]
        payload = {"interval": -seq, "energy_wh": 999, "price": 1}
        return sign_action(self.identity, seq, prev.hash, prev.ts, "bid", payload)


def invited_author(admin_key: Path, community: str, grid: str, name: str = "invited") -> Author:
    """An Author carrying the admin's invite for a closed community."""
    author = Author(community=community, grid=grid, name=name)
    author.invite = make_invite(load_identity(admin_key), community, grid, author.agent)
    return author


def seed(agent: HasDir, actions: Iterable[Action | tuple[bytes, bytes]], batch: int = 1000) -> int:
    """Ingest signed actions into a STOPPED node's store (as gossip would); returns accepted."""
    store = Store(agent.dir / "store.sqlite3", Membrane(agent.community))
    accepted = 0
    try:
        items = [
            (a.action_bytes, a.signature) if isinstance(a, Action) else tuple(a) for a in actions
        ]
        for i in range(0, len(items), batch):
            result = store.ingest(items[i : i + batch], now_us())
            assert not result.rejected, result.rejected[:5]
            accepted += result.accepted
    finally:
        store.close()
    return accepted


def append_own(agent: HasDir, type_: str, payload: dict) -> Action:
    """Append to a STOPPED node's own chain with its own key (as the node itself would)."""
    store = Store(agent.dir / "store.sqlite3", Membrane(agent.community))
    try:
        return SourceChain(store, agent.identity()).append(type_, payload)
    finally:
        store.close()
