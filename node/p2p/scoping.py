"""Replication scoped by grid, in gossip: which chains this node holds whole, and the newest
head it has heard of for the others (ledger.scope states the rule).

A node in grid G holds every chain of G, and of every other author the genesis (who they are,
which grid) and a *pointer*: the newest `(seq, hash)` a peer reported. The set it reconciles
with peers is its heads with the pointers laid over them, so two synced nodes of different grids
still agree in one 24-byte exchange. Pointers are what peers say, not checked: they only tell how
far another grid has got; settlement and audit read this node's own grid alone. Fork evidence
of every grid is reconciled separately (node.p2p.community), so it still reaches everyone.

An author known to have forked has a fixed item instead of its head, in every mode:
`(seq of the fork, BLAKE2b-256("picogrid-forked" || author))`, the same on every node that found
the fork at that seq. Nodes that hold different branches of its chain, or heads at different
seqs (its actions after the fork are refused), would otherwise find the difference, and pull or
push, every round. An author we know forked is neither pulled nor pushed; a peer's fixed item
for an author we do not know forked is pulled up to its seq (the chain before the fork) but not
pushed to, and its hash is not pulled as evidence: the forks set tells us in the same round.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.actions import blake2b256, decode_action
from ledger.scope import Holding, Scope
from ledger.store import Store

MAX_POINTERS = 100_000  # one per author of the community; beyond that, none are added

Heads = dict[bytes, tuple[int, bytes]]


def forked_hash(author: bytes) -> bytes:
    """The hash of the heads-set item of an author known to have forked (and of its item in the
    forks set)."""
    return blake2b256(b"picogrid-forked" + author)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a comparison with one peer asks for: ranges to pull, ranges to push, and the counts
    of actions the peer holds that we lack (`lag`) and that it lacks (`behind`)."""

    pulls: list[tuple[bytes, int, int]]
    pushes: list[tuple[bytes, int]]
    lag: int
    behind: int


class GridScope:
    """The chains held whole (own grid; every chain when `grid` is None) and the pointers."""

    def __init__(self, store: Store, grid: str | None = None) -> None:
        self.store = store
        self.rule = Scope(grid) if grid is not None else None
        self.pointers: Heads = {}
        self._forked: dict[bytes, tuple[int, bytes]] = {}  # author -> its fixed heads item

    @property
    def scoped(self) -> bool:
        """Whether this node holds only its own grid's chains whole."""
        return self.rule is not None

    def grid_of(self, author: bytes | None) -> str | None:
        """The grid an author's genesis names (None: genesis not held)."""
        head = self.store.head(author) if author is not None else None
        return None if head is None else head.grid

    def holding(self, author: bytes) -> Holding:
        """How much of `author`'s chain this node keeps."""
        if self.rule is None:
            return Holding.FULL
        return self.rule.holding(self.grid_of(author))

    def own_grid(self, author: bytes | None) -> bool:
        """Whether `author`'s chain is one this node holds whole (its grid's, or all)."""
        return self.rule is None or self.grid_of(author) == self.rule.grid

    def heads(self) -> Heads:
        """Our heads with the pointers of other grids' chains laid over them (an author whose
        genesis we lack has no item: the difference makes rounds fetch the genesis)."""
        heads = self.store.heads()
        for author, pointer in list(self.pointers.items()):
            holding = self.holding(author)
            if holding is Holding.FULL:  # its genesis showed it is ours
                del self.pointers[author]
                continue
            if holding is Holding.UNKNOWN:
                continue  # no genesis yet: left out, so that rounds keep asking for it
            held = heads.get(author)
            if held is None or held[0] < pointer[0]:
                heads[author] = pointer
        for author in self.store.forked_authors():
            heads[author] = self.forked_item(author)
        return heads

    def forked_item(self, author: bytes) -> tuple[int, bytes]:
        """The fixed heads item of an author we know forked."""
        item = self._forked.get(author)
        if item is None:
            seq = self.store.fork_seq(author)
            item = self._forked[author] = (seq or 0, forked_hash(author))
        return item

    def note(self, author: bytes, seq: int, head: bytes) -> None:
        """A peer reported `author`'s head: keep it as a pointer if newer than what we know."""
        known = self.pointers.get(author)
        if known is not None and known[0] >= seq:
            return
        if known is None and len(self.pointers) >= MAX_POINTERS:
            return
        self.pointers[author] = (seq, head)

    def plan(self, theirs: Heads, ours: Heads, refused: set[bytes]) -> Plan:
        """Compare a peer's heads with ours (pointers included): full chains are pulled from
        where ours ends, another grid's chain only to its genesis (its head becomes a pointer),
        and a head at our seq with another hash is pulled as fork evidence."""
        pulls: list[tuple[bytes, int, int]] = []
        lag = behind = 0
        forked = self.store.forked_authors()
        marked: set[bytes] = set()  # authors the peer knows forked and we do not (yet)
        for author, (seq, h) in theirs.items():
            if author in forked:
                continue  # nothing more of a forked chain is taken
            if h == forked_hash(author):
                marked.add(author)
            mine = ours.get(author)
            holding = self.holding(author)
            if holding is not Holding.FULL:
                if author not in marked:
                    self.note(author, seq, h)
                if holding is Holding.UNKNOWN and author not in refused:
                    pulls.append((author, 0, 0))  # the genesis tells the grid
                    lag += 1
                continue
            if mine is None or mine[0] < seq:
                start = 0 if mine is None else mine[0] + 1
                lag += seq - start + 1
                if author not in refused:
                    pulls.append((author, start, seq))
            elif mine[0] == seq and mine[1] != h and author not in marked:
                pulls.append((author, seq, seq))  # same seq, other hash: the fork evidence
        pushes: list[tuple[bytes, int]] = []
        for author, (seq, _) in ours.items():
            if author in forked or author in marked:
                continue
            other = theirs.get(author)
            if other is None or other[0] < seq:
                start = 0 if other is None else other[0] + 1
                if self.holding(author) is Holding.FULL or start == 0:
                    pushes.append((author, start))
                    behind += seq - start + 1
        return Plan(pulls, pushes, lag, behind)

    def kept(self, pairs: list[tuple[int, tuple[bytes, bytes]]]
             ) -> list[tuple[int, tuple[bytes, bytes]]]:
        """The pushed `(index, item)` pairs this node holds: its grid's actions, geneses, and
        what it cannot decode (ingest refuses that with its reason). An author whose genesis
        we lack is judged by its genesis in the same batch; with none there, its later actions
        are not kept (pending, they would enter the chain with the genesis whatever its grid):
        the genesis comes by rounds, then the chain if it is ours. The rest become pointers."""
        if self.rule is None:
            return pairs
        decoded = []
        in_batch: dict[bytes, str] = {}  # author -> the grid its genesis in this batch names
        for _, (body, signature) in pairs:
            try:
                action = decode_action(body, signature, check_signature=False)
            except Exception:
                action = None
            decoded.append(action)
            if action is not None and action.seq == 0 and isinstance(action.payload, dict) \
                    and isinstance(action.payload.get("grid"), str):
                in_batch.setdefault(action.author, action.payload["grid"])
        out = []
        for pair, action in zip(pairs, decoded, strict=True):
            if action is None or action.seq == 0:
                out.append(pair)
                continue
            grid = self.grid_of(action.author) or in_batch.get(action.author)
            if self.rule.holding(grid) is Holding.FULL:
                out.append(pair)
            else:
                self.note(action.author, action.seq, action.hash)
        return out
