"""Range-based set reconciliation over the heads set (author -> (seq, hash)).

The method is Aljoscha Meyer's "Range-Based Set Reconciliation" (2023): both sides order their
items by key (here: the author, 32 bytes), a *range* [lower, upper) of keys is summarised by a
fingerprint, equal fingerprints end the work on that range, different ones split it into
smaller ranges until a range is small enough to send its items outright. An idle round between
two synced nodes is one range and one empty answer, whatever the number of authors.

This implementation is asymmetric and the answering side keeps no state:

- the *asker* sends a query: an array of ranges `[lower, upper, fingerprint]`;
- the *answerer* leaves out every range whose fingerprint equals its own, and answers the others
  with either its items (`[lower, upper, [[author, seq, hash], ...]]`, when it holds at most
  LEAF items there) or with up to SPLIT sub-ranges and their fingerprints (`[lower, upper, fp]`);
- the asker compares the sub-range fingerprints with its own and asks again for those that
  differ. After at most `max_rounds(n)` exchanges the asker holds the answerer's heads of every
  author where the two differ, and computes what to pull and what to push from them.

`lower` is bin of at most 32 bytes (inclusive), `upper` bin of at most 32 bytes (exclusive) or
nil for "to the end". A fingerprint is 16 bytes: the sum, modulo 2**128, of the first 16 bytes
(big-endian) of BLAKE2b-256 over `"picogrid-head" || author || seq (8 bytes big-endian) || hash`
for every head in the range. Addition is a monoid, so prefix sums give any range's fingerprint in
O(log n). Every message is canonical msgpack (PROTOCOL section 1).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger.actions import blake2b256
from ledger.codec import CodecError, decode, encode

FP_BYTES = 16
MOD = 1 << (8 * FP_BYTES)
LEAF = 16  # at most this many items are sent outright instead of sub-ranges
SPLIT = 16  # a range with more items is cut into this many sub-ranges
MAX_QUERY = 64  # ranges per query, so that an answer holds at most MAX_RANGES
MAX_RANGES = MAX_QUERY * SPLIT  # ranges per answer
MAX_KEY = 32
ZERO_FP = bytes(FP_BYTES)
MAX_EXCHANGES = 64  # per round; what is left is reconciled in the next round

Heads = Mapping[bytes, tuple[int, bytes]]
Range = tuple[bytes, bytes | None]


class ReconcileError(ValueError):
    """A reconciliation message that is undecodable or breaks its rules."""


def item_hash(author: bytes, seq: int, head: bytes) -> int:
    """The fingerprint contribution of one head, as an integer below 2**128."""
    digest = blake2b256(b"picogrid-head" + author + seq.to_bytes(8, "big") + head)
    return int.from_bytes(digest[:FP_BYTES], "big")


def fp_bytes(value: int) -> bytes:
    """A fingerprint sum as its 16 wire bytes."""
    return (value % MOD).to_bytes(FP_BYTES, "big")


@dataclass(frozen=True, slots=True)
class HeadSet:
    """Heads sorted by author, with prefix sums of their fingerprints."""

    keys: tuple[bytes, ...]
    heads: Mapping[bytes, tuple[int, bytes]]
    prefix: tuple[int, ...]  # prefix[i] = sum of item hashes of keys[:i]

    @classmethod
    def of(cls, heads: Heads, cache: dict | None = None) -> HeadSet:
        """Index a heads map; `cache` (optional) remembers item hashes between rounds."""
        keys = tuple(sorted(heads))
        prefix = [0]
        total = 0
        for author in keys:
            seq, h = heads[author]
            key = (author, seq, h)
            value = cache.get(key) if cache is not None else None
            if value is None:
                value = item_hash(author, seq, h)
                if cache is not None:
                    cache[key] = value
            total += value
            prefix.append(total)
        return cls(keys, dict(heads), tuple(prefix))

    def span(self, rng: Range) -> tuple[int, int]:
        """Indexes [i, j) of the keys inside the range."""
        lower, upper = rng
        i = bisect.bisect_left(self.keys, lower)
        j = len(self.keys) if upper is None else bisect.bisect_left(self.keys, upper)
        return i, max(i, j)

    def fingerprint(self, rng: Range) -> bytes:
        """The 16-byte fingerprint of the heads inside the range."""
        i, j = self.span(rng)
        return fp_bytes(self.prefix[j] - self.prefix[i])

    def items(self, rng: Range) -> list[list]:
        """The heads inside the range as `[author, seq, hash]`, ascending."""
        i, j = self.span(rng)
        return [[a, *self.heads[a]] for a in self.keys[i:j]]


FULL: Range = (b"", None)


def start(mine: HeadSet) -> bytes:
    """The first query: the whole key space and our fingerprint of it."""
    return encode([[FULL[0], FULL[1], mine.fingerprint(FULL)]])


def answer(mine: HeadSet, query: bytes) -> bytes:
    """The answerer's side: drop equal ranges, send items of small ones, split the others."""
    out: list[list] = []
    for lower, upper, fp in _parse(query, answer=False, limit=MAX_QUERY):
        rng = (lower, upper)
        if mine.fingerprint(rng) == fp:
            continue
        i, j = mine.span(rng)
        if j - i <= LEAF:
            out.append([lower, upper, mine.items(rng)])
            continue
        cuts = [_separator(mine.keys, i + (j - i) * k // SPLIT) for k in range(1, SPLIT)]
        bounds = [lower, *cuts, upper]
        for k in range(SPLIT):
            sub = (bounds[k], bounds[k + 1])
            out.append([sub[0], sub[1], mine.fingerprint(sub)])
    return encode(out)


@dataclass(frozen=True, slots=True)
class Step:
    """What one answer taught the asker: the next query (None when done) and their heads."""

    query: bytes | None
    theirs: dict[bytes, tuple[int, bytes]]
    ranges: list[Range]  # ranges whose items `theirs` holds completely
    todo: list[list]  # ranges still to ask, after `query`


def step(mine: HeadSet, asked: bytes, reply: bytes, todo: list[list] | None = None) -> Step:
    """The asker's side: learn the items, ask again for sub-ranges whose fingerprints differ
    (at most MAX_QUERY per query; the rest wait in `todo` for the next one)."""
    queried = [(lo, up) for lo, up, _ in _parse(asked, answer=False, limit=MAX_QUERY)]
    theirs: dict[bytes, tuple[int, bytes]] = {}
    ranges: list[Range] = []
    again: list[list] = []
    for lower, upper, body in _parse(reply, answer=True, limit=MAX_RANGES):
        rng = (lower, upper)
        if not any(_inside(rng, q) for q in queried):
            raise ReconcileError("answer names a range that was not asked for")
        if isinstance(body, list):
            for author, seq, h in body:
                if not _in_range(author, rng):
                    raise ReconcileError("answer item outside its range")
                theirs[author] = (seq, h)
            ranges.append(rng)
        elif mine.fingerprint(rng) != body:
            again.append([lower, upper, mine.fingerprint(rng)])
    again = list(todo or []) + again
    query = encode(again[:MAX_QUERY]) if again else None
    return Step(query, theirs, ranges, again[MAX_QUERY:])


def differences(mine: Heads, theirs: Heads, ranges: list[Range]) -> tuple[dict, dict]:
    """(their heads we should pull, our heads they lack) inside the completely known ranges."""
    pull = {a: v for a, v in theirs.items() if mine.get(a) != v}
    push: dict[bytes, tuple[int, bytes]] = {}
    for author, value in mine.items():
        if theirs.get(author) != value and any(_in_range(author, r) for r in ranges):
            push[author] = value
    return pull, push


def max_rounds(n: int) -> int:
    """How many query/answer exchanges reconcile sets of at most n items (no range cap hit)."""
    if n <= LEAF:
        return 1
    return 1 + math.ceil(math.log(n / LEAF, SPLIT)) + 1


def _separator(keys: tuple[bytes, ...], c: int) -> bytes:
    """The shortest prefix of keys[c] above keys[c - 1]: a short bound between the two."""
    high, low = keys[c], keys[c - 1]
    for n in range(1, len(high) + 1):
        if high[:n] > low:
            return high[:n]
    return high


def _in_range(key: bytes, rng: Range) -> bool:
    lower, upper = rng
    return key >= lower and (upper is None or key < upper)


def _inside(inner: Range, outer: Range) -> bool:
    if inner[0] < outer[0]:
        return False
    if outer[1] is None:
        return True
    return inner[1] is not None and inner[1] <= outer[1]


def _parse(data: bytes, answer: bool, limit: int) -> list[tuple[bytes, bytes | None, Any]]:
    """Decode and check a message: ranges in ascending order, not overlapping."""
    try:
        value = decode(data)
    except CodecError as exc:
        raise ReconcileError(f"not canonical msgpack ({exc})") from None
    if not isinstance(value, list) or len(value) > limit:
        raise ReconcileError(f"a reconciliation message is an array of at most {limit} ranges")
    out: list[tuple[bytes, bytes | None, Any]] = []
    previous: bytes | None = b""
    for entry in value:
        if not (isinstance(entry, list) and len(entry) == 3):
            raise ReconcileError("a range is [lower, upper, fingerprint or items]")
        lower, upper, body = entry
        if not (isinstance(lower, bytes) and len(lower) <= MAX_KEY):
            raise ReconcileError("lower bound must be bin of at most 32 bytes")
        if upper is not None and not (isinstance(upper, bytes) and lower < upper):
            raise ReconcileError("upper bound must be nil or bin above lower")
        if upper is not None and len(upper) > MAX_KEY:
            raise ReconcileError("upper bound must be bin of at most 32 bytes")
        if previous is None or lower < previous:
            raise ReconcileError("ranges must be ascending and must not overlap")
        previous = upper
        out.append((lower, upper, _body(body, answer)))
    return out


def _body(body: Any, answer: bool) -> Any:
    if isinstance(body, bytes) and len(body) == FP_BYTES:
        return body
    if not answer or not isinstance(body, list) or len(body) > LEAF:
        raise ReconcileError(f"range body must be a {FP_BYTES}-byte fingerprint"
                             + (f" or at most {LEAF} items" if answer else ""))
    last = b""
    for item in body:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], bytes)
                and len(item[0]) == 32 and type(item[1]) is int and 0 <= item[1] < 2**63
                and isinstance(item[2], bytes) and len(item[2]) == 32 and item[0] > last):
            raise ReconcileError("items are ascending [author (bin 32), seq, hash (bin 32)]")
        last = item[0]
    return body


@dataclass(frozen=True, slots=True)
class Outcome:
    """A whole reconciliation seen from the asker: their differing heads and its cost."""

    pull: dict[bytes, tuple[int, bytes]]
    push: dict[bytes, tuple[int, bytes]]
    exchanges: int
    bytes_sent: int
    bytes_received: int


def reconcile(mine: Heads, ask: Callable[[bytes], bytes], limit: int = 1000) -> Outcome:
    """Drive a reconciliation with `ask` (query bytes -> answer bytes) for at most `limit`
    exchanges; the async gossip code runs the same steps over the network."""
    own = HeadSet.of(mine)
    query: bytes | None = start(own)
    todo: list[list] = []
    theirs: dict[bytes, tuple[int, bytes]] = {}
    ranges: list[Range] = []
    exchanges = sent = received = 0
    while query is not None:
        if exchanges >= limit:
            raise ReconcileError(f"not reconciled after {limit} exchanges")
        reply = ask(query)
        exchanges, sent, received = exchanges + 1, sent + len(query), received + len(reply)
        result = step(own, query, reply, todo)
        theirs.update(result.theirs)
        ranges += result.ranges
        query, todo = result.query, result.todo
    pull, push = differences(mine, theirs, ranges)
    return Outcome(pull, push, exchanges, sent, received)
