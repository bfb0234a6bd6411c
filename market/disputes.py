"""How disputes heal and end (protocol 2): revisions, the final deadline, defaulters.

An agent may sign several settlements for interval `k`: when views it lacked arrive, it signs a
revision over the fuller book. The one that counts is its latest (highest `seq`) stamped at or
before the final deadline `F_k`; later ones are ignored. Once gossip has converged every honest
node holds the same views, clears the same book and signs the same revision, so every honest pair
ends up agreeing. After `F_k` a trade is:

- **confirmed**: the counting settlements of seller and buyer both list it;
- **failed**: one side has no counting settlement (a defaulter): nobody bills it, both sides
  fall back to the utility grid, and the defaulter's orders leave the next books;
- **disputed**: both counted and disagree (only a liar or a node cut off until `F_k` causes it).

Before `F_k` a trade not yet confirmed is **pending**: it may still heal. After `F_k` it stays
pending only while a counting settlement's trades are a digest this node has not expanded yet. `superseded` marks a
trade of a first settlement that no counting settlement lists any more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from market.trades import Trade

OUTCOMES = ("confirmed", "pending", "disputed", "failed", "superseded")


@dataclass(frozen=True, slots=True)
class Signed:
    """One settlement of an agent for the interval: its place, stamp and trades (wire form).

    `trades` is None when the settlement carries only a digest this node could not expand yet.
    """

    seq: int
    ts: int
    trades: tuple[tuple, ...] | None


@dataclass(frozen=True, slots=True)
class TradeOutcome:
    """A trade, where it stands now, and where it stood on the parties' first settlements."""

    trade: Trade
    status: str  # one of OUTCOMES
    first: str  # "confirmed" | "disputed" | "pending": the first settlements' verdict
    revised: bool  # a counting settlement of either side is a revision
    defaulter: bytes | None = None


def first_and_counting(
    settlements: Iterable[Signed], final_us: int
) -> tuple[Signed | None, Signed | None]:
    """The agent's first settlement (lowest seq) and its counting one (latest by `final_us`)."""
    own = sorted(settlements, key=lambda s: s.seq)
    on_time = [s for s in own if s.ts <= final_us]
    return (own[0] if own else None), (on_time[-1] if on_time else None)


def _keys(s: Signed | None, agent: bytes) -> set[tuple] | None:
    if s is None or s.trades is None:
        return None
    return {_key(t) for t in s.trades if agent in (bytes(t[0]), bytes(t[1]))}


def _key(t: Iterable) -> tuple:
    seller, buyer, energy, price, offer, bid = t
    return (bytes(seller), bytes(buyer), energy, price, bytes(offer), bytes(bid))


def _verdict(key: tuple, sides: dict[bytes, set[tuple] | None]) -> str:
    lists = [sides.get(key[0]), sides.get(key[1])]
    if all(x is not None and key in x for x in lists):
        return "confirmed"
    return "pending" if any(x is None for x in lists) else "disputed"


def outcomes(
    by_agent: Mapping[bytes, Iterable[Signed]], *, final_us: int, now_us: int
) -> list[TradeOutcome]:
    """Every trade of one interval listed by a party, with its outcome (see the module doc)."""
    first: dict[bytes, set[tuple] | None] = {}
    counting: dict[bytes, set[tuple] | None] = {}
    revised: set[bytes] = set()
    settled: set[bytes] = set()  # agents with a counting settlement, expanded or not
    for agent, entries in by_agent.items():
        f, c = first_and_counting(list(entries), final_us)
        if c is not None:
            settled.add(agent)
        first[agent], counting[agent] = _keys(f, agent), _keys(c, agent)
        if c is not None and f is not None and c.seq != f.seq:
            revised.add(agent)
    done = now_us > final_us
    listed = sorted({k for v in counting.values() if v for k in v})
    result = []
    for key in listed:
        status, defaulter = _verdict(key, counting), None
        if status != "confirmed" and not done:
            status = "pending"  # revisions may still heal it
        elif status == "pending":
            gone = [a for a in (key[0], key[1]) if a not in settled]
            status, defaulter = ("failed", gone[0]) if gone else ("pending", None)
        was = _verdict(key, first)
        result.append(
            TradeOutcome(Trade(*key), status, was, bool(revised & set(key[:2])), defaulter)
        )
    for key in sorted({k for v in first.values() if v for k in v} - set(listed)):
        result.append(TradeOutcome(Trade(*key), "superseded", _verdict(key, first), True))
    return result


def defaulters(
    by_agent: Mapping[bytes, Iterable[Signed]], *, final_us: int, parties: Iterable[bytes] = ()
) -> set[bytes]:
    """Agents with no counting settlement that a counting settlement names as seller or buyer.

    Only listed trades name parties (a digest names nobody until expanded, and the rule must
    not depend on who expanded what), so every node computes the same set from the chains.
    `parties` adds agents the caller knows took part (for example, order authors in the book).
    """
    counting = {a: first_and_counting(list(e), final_us)[1] for a, e in by_agent.items()}
    named = set(parties)
    for agent, c in counting.items():
        for t in (c.trades or ()) if c is not None else ():
            seller, buyer = bytes(t[0]), bytes(t[1])
            if agent in (seller, buyer):  # nobody names parties of trades it is not in
                named.add(buyer if agent == seller else seller)
    return {a for a in named if counting.get(a) is None}


def exclusion_lag(interval_ms: int, final_ms: int) -> int:
    """Intervals from `j` to the first whose gate closes after `F_j`: when `j`'s defaults are known.

    `G_{j+d} = G_j + d * interval`, so `d = ceil(final_ms / interval_ms)`, at least 1.
    """
    return max(1, -(-final_ms // interval_ms))


def excluded_from(defaults: Mapping[int, set[bytes]], k: int, *, lag: int, n: int) -> set[bytes]:
    """Agents barred from the book of `k`: defaulters of intervals `k - lag - n + 1 .. k - lag`.

    Those intervals' final deadlines passed before `k`'s gate, so every node computes the same
    set from the chains; a defaulter sits out `n` intervals, then trades again.
    """
    out: set[bytes] = set()
    for j in range(k - lag - n + 1, k - lag + 1):
        out |= defaults.get(j, set())
    return out
