"""Set reconciliation with one peer, over the network (ledger.reconcile does the pure steps).

Three sets are reconciled the same way (docs/protocol.md): the heads (`POST /v1/gossip/reconcile`)
and the forked authors (`.../reconcile/forks`) every round, the agent infos
(`.../reconcile/infos`) at first contact and every 10th round. Each item is
`key (32 bytes) -> (number, hash)`: an author's head `(seq, hash)`, an agent's info
`(created_us, hash of the signed info)`, a forked author `(0, hash)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger import reconcile as rc
from node.p2p.client import PeerError, PeerTransport

HEADS, INFOS, FORKS = "heads", "infos", "forks"


@dataclass(frozen=True, slots=True)
class Difference:
    """Where two sets differ: the peer's items that differ from ours, ours that it lacks or
    holds otherwise, and the charter version it announced (heads only; 0 otherwise)."""

    theirs: dict[bytes, tuple[int, bytes]]
    ours: dict[bytes, tuple[int, bytes]]
    version: int


async def reconcile_with(client: PeerTransport, own: rc.HeadSet, kind: str = HEADS) -> Difference:
    """Reconcile `own` with the peer's set of that kind, in at most rc.MAX_EXCHANGES exchanges
    (what is left is found next time). PeerUnsupported from a peer without the endpoint."""
    query: bytes | None = rc.start(own)
    todo: list = []
    theirs: dict = {}
    ranges: list = []
    version: int | None = None
    try:
        for _ in range(rc.MAX_EXCHANGES):
            if query is None:
                break
            reply, announced = await client.reconcile(query, kind)
            version = announced if version is None else version
            result = rc.step(own, query, reply, todo)
            theirs.update(result.theirs)
            ranges += result.ranges
            query, todo = result.query, result.todo
    except rc.ReconcileError as exc:
        raise PeerError(f"{client.base}: reconcile {kind}: {exc}") from None
    pull, push = rc.differences(own.heads, theirs, ranges)
    return Difference(pull, push, version or 0)


def newer(mine: dict, theirs: dict) -> list[bytes]:
    """The keys whose number in `theirs` is above ours (or that we lack), sorted."""
    return sorted(k for k, (n, _) in theirs.items() if k not in mine or mine[k][0] < n)
