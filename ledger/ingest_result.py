"""What one batch of `Store.ingest` did, counted item by item: the answer a node gives a peer."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.actions import Action


@dataclass(slots=True)
class IngestResult:
    """What a batch did; every item is counted once, in `accepted` (valid, now held in its chain
    or as fork evidence), `duplicate`, `pending` or `rejected` (`(index in the batch, reason)`).

    `new` lists the actions added to chains (released pending actions included, which `released`
    counts); `forks` the pairs of actions that revealed a fork this batch, for a warrant;
    `forked` every author this batch marked forked for the first time (by such a pair, or by a
    warrant's evidence), each once.
    """

    accepted: int = 0
    duplicate: int = 0
    pending: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    new: list[Action] = field(default_factory=list)
    forks: list[tuple[Action, Action]] = field(default_factory=list)
    forked: list[bytes] = field(default_factory=list)
    released: int = 0

    def summary(self) -> dict:
        """The answer to `POST /v1/gossip/actions` (PROTOCOL section 4)."""
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "pending": self.pending,
            "rejected": [[i, r] for i, r in self.rejected],
        }
