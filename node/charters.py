"""The community's charters this node holds: the versions in force and the membrane they set."""

from __future__ import annotations

import logging
from collections import Counter

from ledger.charter import Charter, CharterError, parse_charter
from ledger.membrane import Membrane
from ledger.store import Store

log = logging.getLogger(__name__)


class CharterBook:
    """Every charter version stored, newest last accepted; keeps the store's membrane current.

    `charters` is one list for the node's life: the market code holds it and sees new versions.
    """

    def __init__(self, store: Store, community: str, admin: bytes, metrics: Counter[str]) -> None:
        self.store = store
        self.community = community
        self.admin = admin
        self.metrics = metrics
        self.charters: list[Charter] = []
        for signed in store.charters():
            try:
                self.charters.append(parse_charter(signed, admin))
            except CharterError as exc:  # never stored unless valid; a damaged file is loud
                log.error("stored charter refused: %s", exc)
        store.membrane = self.membrane()

    @property
    def charter(self) -> Charter | None:
        """The newest charter version, or None before the first one arrives."""
        return max(self.charters, key=lambda c: c.version) if self.charters else None

    def membrane(self) -> Membrane:
        """Who may join, by the newest charter (open when there is none yet)."""
        c = self.charter
        if c is None:
            return Membrane(self.community, self.admin, True)
        return Membrane(self.community, self.admin, c.open, frozenset(c.members))

    def accept(self, signed: bytes) -> Charter:
        """Take a newer charter signed by the pinned admin key; CharterError otherwise."""
        charter = parse_charter(signed, self.admin)
        if charter.community != self.community:
            raise CharterError(f"charter is for community {charter.community!r}")
        current = self.charter
        if current is not None and charter.version <= current.version:
            raise CharterError(f"charter version {charter.version} is not newer than "
                               f"{current.version}")
        self.store.save_charter(charter.version, signed)
        self.charters.append(charter)
        self.store.membrane = self.membrane()
        self.metrics["charters_accepted"] += 1
        log.info("charter version %d accepted", charter.version)
        return charter
