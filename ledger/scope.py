"""Replication scoped by grid: what a node holds of the community, as a pure rule.

A node holds
- every chain of its own grid, whole (its settlement and audit need its grid's orders and
  readings, and nothing of other grids);
- of every other author: the genesis (who they are, which grid), their warrants, every action
  that is fork evidence, and their head `(seq, hash)` as a pointer (so that it can say how far
  the community has got, and fetch a chain on demand: an audit, an export, that grid's
  dashboard);
- agent infos and charters of the whole community (they are not chain actions; this rule does
  not restrict them).

Fork evidence reaches everyone: two heads of one author at one seq with different hashes are
pulled from whatever grid, and a warrant is kept wherever it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

COMMUNITY_WIDE = frozenset({"genesis", "warrant"})

Heads = Mapping[bytes, tuple[int, bytes]]


class Holding(Enum):
    """How much of one author's chain a node keeps."""

    FULL = "full"  # every action
    SPARSE = "sparse"  # genesis, warrants, fork evidence, and the head as a pointer
    UNKNOWN = "unknown"  # genesis not seen yet: fetch it to learn the grid


@dataclass(frozen=True, slots=True)
class Scope:
    """The replication rule of a node in grid `grid`."""

    grid: str

    def holding(self, author_grid: str | None) -> Holding:
        """How much of a chain whose genesis names `author_grid` (None: not seen) we keep."""
        if author_grid is None:
            return Holding.UNKNOWN
        return Holding.FULL if author_grid == self.grid else Holding.SPARSE

    def keeps(self, author_grid: str | None, type_: str, fork_evidence: bool = False) -> bool:
        """Whether an action of that type by an author of that grid is stored here."""
        if type_ in COMMUNITY_WIDE or fork_evidence:
            return True
        return self.holding(author_grid) is Holding.FULL


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do about a peer's heads: ranges to pull, and pointers to remember."""

    pulls: list[tuple[bytes, int, int]]  # author, from seq, to seq (inclusive)
    pointers: dict[bytes, tuple[int, bytes]]  # newer heads of sparse chains, not pulled
    forks: list[bytes]  # authors whose head at one seq has two hashes


def plan(scope: Scope, grids: Mapping[bytes, str], ours: Heads, theirs: Heads) -> Plan:
    """Compare our heads (full chains and pointers alike) with a peer's, under the scope."""
    pulls: list[tuple[bytes, int, int]] = []
    pointers: dict[bytes, tuple[int, bytes]] = {}
    forks: list[bytes] = []
    for author, (seq, head) in sorted(theirs.items()):
        mine = ours.get(author)
        if mine is not None and mine[0] == seq and mine[1] != head:
            forks.append(author)
            pulls.append((author, seq, seq))  # the other action at that seq: fork evidence
            continue
        if mine is not None and mine[0] >= seq:
            continue
        holding = scope.holding(grids.get(author))
        if holding is Holding.FULL:
            pulls.append((author, 0 if mine is None else mine[0] + 1, seq))
        elif holding is Holding.UNKNOWN:
            pulls.append((author, 0, 0))  # the genesis tells us the grid
            pointers[author] = (seq, head)
        else:
            pointers[author] = (seq, head)
    return Plan(pulls, pointers, forks)
