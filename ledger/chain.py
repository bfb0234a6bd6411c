"""The node's own source chain: `append(type, payload)` with the right seq, prev and timestamp."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ledger.actions import Action, sign_action
from ledger.keys import Identity
from ledger.schemas import check_payload
from ledger.store import Head, Store


def now_us() -> int:
    """The wall clock in microseconds since the Unix epoch."""
    return time.time_ns() // 1000


class ClockBehindChain(Exception):
    """The clock reads earlier than our head's timestamp (it was ahead, then set back): the next
    action could only be stamped ahead of the clock, so it is not signed. `ahead_us` is how far
    the head is ahead of the clock."""

    def __init__(self, ahead_us: int) -> None:
        super().__init__(f"our last action is stamped {ahead_us / 1e6:.1f} s ahead of the clock; "
                         "nothing is signed until the clock passes it")
        self.ahead_us = ahead_us


class SourceChain:
    """Appends our own agent's actions.

    Each action gets the next seq and the hash of the head as `prev`; its timestamp is the clock's.
    Timestamps never decrease, and no action is stamped ahead of the clock: when the clock reads
    earlier than the head's timestamp (it was ahead and has been set back), `append` raises
    `ClockBehindChain` rather than stamp the head's time again. Appends are serialised (a lock
    here, an IMMEDIATE transaction in the store across processes), so two of them can never build
    on the same head and fork our own chain.
    """

    def __init__(self, store: Store, identity: Identity, clock: Callable[[], int] = now_us) -> None:
        self.store = store
        self.identity = identity
        self.clock = clock
        self._lock = threading.Lock()

    @property
    def agent(self) -> bytes:
        return self.identity.agent

    def head(self) -> Head | None:
        """Our chain's head, if any."""
        return self.store.head(self.identity.agent)

    def append(self, type_: str, payload: dict) -> Action:
        """Sign and durably store the next action; the payload is checked against its schema."""
        check_payload(type_, payload)

        def build(head: Head | None) -> Action:
            now = self.clock()  # read under the lock: an append that waited stamps its own time
            if head is None:
                if type_ != "genesis":
                    raise ValueError("the chain has no genesis yet")
                return sign_action(self.identity, 0, None, now, type_, payload)
            if type_ == "genesis":
                raise ValueError("the chain already has its genesis")
            if head.ts > now:
                raise ClockBehindChain(head.ts - now)
            return sign_action(self.identity, head.seq + 1, head.hash, now, type_, payload)

        with self._lock:
            return self.store.append_own(self.identity.agent, build, self.clock())
