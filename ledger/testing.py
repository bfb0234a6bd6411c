"""Builders for signed test chains: deterministic identities, valid payloads, a chain signer.

Used by the ledger's tests, by `tests/vectors/make_vectors.py` and by any layer that needs real
signed actions in its tests. Nothing here touches a store: a `ChainSigner` signs on top of its own
last action, so tests can also build forks, gaps and bad links on purpose.
"""

from __future__ import annotations

from typing import Any

from ledger.actions import Action, sign_action
from ledger.keys import Identity

T0 = 1_700_000_000_000_000  # a fixed clock for tests: 2023-11-14, in microseconds


def identity(n: int) -> Identity:
    """The `n`-th deterministic test identity."""
    return Identity.from_seed(n.to_bytes(4, "big") * 8)


def genesis_payload(
    community: str = "test",
    grid: str = "g1",
    *,
    name: str = "agent",
    role: str = "consumer",
    household: str = "h1",
    capacity_wh: int = 0,
    max_power_w: int = 3000,
    invite: bytes | None = None,
) -> dict[str, Any]:
    return {
        "community": community,
        "grid": grid,
        "name": name,
        "role": role,
        "household": household,
        "capacity_wh": capacity_wh,
        "max_power_w": max_power_w,
        "invite": invite,
    }


def order_payload(interval: int = 1, energy_wh: int = 500, price: int = 15000) -> dict[str, Any]:
    return {"interval": interval, "energy_wh": energy_wh, "price": price}


def reading_payload(interval: int = 1, **changes: Any) -> dict[str, Any]:
    payload = {
        "interval": interval,
        "import_wh": 420,
        "export_wh": 0,
        "soc_wh": None,
        "bus_mv": 5012,
        "current_ua": 120_000,
        "power_uw": 601_440,
        "samples": 10,
        "sensor": "ina219@0x40",
    }
    return payload | changes


def settlement_payload(
    interval: int = 1, trades: list | None = None, **changes: Any
) -> dict[str, Any]:
    payload = {
        "interval": interval,
        "mechanism": "merit-order",
        "book": bytes(32),
        "trades": trades if trades is not None else [],
        "grid_import_wh": 0,
        "grid_export_wh": 0,
    }
    return payload | changes


def warrant_payload(first: Action, second: Action) -> dict[str, Any]:
    return {"evidence": [first.wire(), second.wire()]}


class ChainSigner:
    """Signs a chain for one identity: `genesis()` then `next(type, payload)`; nothing is stored.

    Timestamps start at `ts` and advance by `step` unless given.
    """

    def __init__(self, ident: Identity, ts: int = T0, step: int = 1_000_000) -> None:
        self.identity = ident
        self.head: Action | None = None
        self.ts = ts
        self.step = step

    @property
    def agent(self) -> bytes:
        return self.identity.agent

    def genesis(self, community: str = "test", grid: str = "g1", **fields: Any) -> Action:
        self.head = sign_action(
            self.identity, 0, None, self.ts, "genesis", genesis_payload(community, grid, **fields)
        )
        return self.head

    def next(
        self, type_: str = "bid", payload: dict | None = None, ts: int | None = None
    ) -> Action:
        """The action after the current head (an order for interval `seq` unless given)."""
        assert self.head is not None, "sign the genesis first"
        seq = self.head.seq + 1
        ts = ts if ts is not None else self.head.ts + self.step
        payload = payload if payload is not None else order_payload(interval=seq)
        self.head = sign_action(self.identity, seq, self.head.hash, ts, type_, payload)
        return self.head

    def at(self, base: Action, type_: str = "bid", payload: dict | None = None) -> Action:
        """An action after `base` (not necessarily the head): how a fork is made."""
        payload = payload if payload is not None else order_payload(interval=base.seq + 1, price=1)
        return sign_action(
            self.identity, base.seq + 1, base.hash, base.ts + self.step, type_, payload
        )

    def chain(self, length: int, community: str = "test", grid: str = "g1") -> list[Action]:
        """A genesis and `length - 1` orders."""
        actions = [self.genesis(community, grid)]
        actions += [self.next() for _ in range(length - 1)]
        return actions


def wire_items(actions: list[Action]) -> list[tuple[bytes, bytes]]:
    """What `Store.ingest` takes: `(action_bytes, signature)` per action."""
    return [(a.action_bytes, a.signature) for a in actions]
