"""Re-verify chains with the ledger's own rules, trusting nothing about where they came from.

Used by `GET /v1/agents/{id}/audit` and by `picogrid audit`: each chain is ingested into a fresh
in-memory store, so every check a node makes on gossip (encoding, signature, links, time,
schema, membrane, forks) is made again, in the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.actions import decode_action
from ledger.errors import Invalid
from ledger.membrane import Membrane
from ledger.precheck import Checked, precheck
from ledger.store import Store


@dataclass
class ChainReport:
    agent: bytes
    status: str = "valid"  # "valid" | "forked" | "invalid"
    length: int = 0
    problems: list[str] = field(default_factory=list)
    head: bytes | None = None

    def to_json(self) -> dict:
        """The report as JSON (agent id in hex)."""
        return {
            "agent": self.agent.hex(),
            "status": self.status,
            "length": self.length,
            "problems": self.problems,
        }


def verify_chains(
    chains: dict[bytes, list[tuple[bytes, bytes]]],
    membrane: Membrane | None,
    now_us: int,
    claimed: dict[bytes, tuple[int, bytes]] | None = None,
    evidence: dict[bytes, list[tuple[bytes, bytes]]] | None = None,
    prechecked: dict[bytes, Checked] | None = None,
) -> dict[bytes, ChainReport]:
    """Verify each author's served chain; `claimed` heads and fork `evidence` are checked too.

    Each chain is verified on its own, in a fresh store, so the verdict on one chain never
    depends on the order the chains are read in (a warrant read first would otherwise make the
    forked author's own chain look cut short). Forks are then judged from the evidence: the
    warrants in every chain, and `evidence` (pairs of signed actions at one seq).
    `prechecked` holds each chain's `precheck` when the caller already decoded and verified it.
    """
    reports: dict[bytes, ChainReport] = {}
    forked: dict[bytes, set[int]] = {}
    for author, items in chains.items():
        claim = claimed.get(author) if claimed else None
        checked = (prechecked or {}).get(author)
        reports[author] = _verify_one(author, items, membrane, now_us, forked, claim, checked)
    for author, items in (evidence or {}).items():
        for seq in _forks_in(items):
            forked.setdefault(author, set()).add(seq)
    for author, seqs in forked.items():
        report = reports.setdefault(author, ChainReport(author))
        report.problems.append(f"forked: two different signed actions at seq {sorted(seqs)}")
    for report in reports.values():
        if report.problems:
            only_fork = report.agent in forked and all(
                p.startswith("forked") for p in report.problems
            )
            report.status = "forked" if only_fork else "invalid"
    return reports


def _verify_one(
    author: bytes,
    items: list[tuple[bytes, bytes]],
    membrane: Membrane | None,
    now_us: int,
    forked: dict[bytes, set[int]],
    claim: tuple[int, bytes] | None = None,
    checked: Checked | None = None,
) -> ChainReport:
    report = ChainReport(author)
    store = Store(":memory:", membrane)
    try:
        checked = checked if checked is not None else precheck(list(items), now_us)
        result = store.ingest(list(items), now_us, prechecked=checked)
        for index, reason in result.rejected:
            report.problems.append(f"action #{index}: {reason}")
        for index, a in enumerate(checked):
            if not isinstance(a, Invalid) and a.author != author:
                report.problems.append(f"action #{index} is by another author")
        head = store.head(author)
        report.length = head.seq + 1 if head else 0
        report.head = head.hash if head else None
        if claim is not None:
            # The chain may have grown since the heads were read: it must hold the claimed head.
            held = store.get_by_seq(author, claim[0])
            if held is None or held.hash != claim[1]:
                report.problems.append(
                    f"the node claims head seq {claim[0]} but served a chain of "
                    f"{report.length} without that action"
                )
        if result.pending:
            report.problems.append(f"{result.pending} action(s) do not link to the chain")
        for other in store.forked_authors():  # proven by warrants in this chain
            forked.setdefault(other, set()).update(a.seq for a in store.fork_evidence(other))
    finally:
        store.close()
    return report


def _forks_in(items: list[tuple[bytes, bytes]]) -> set[int]:
    """The seqs at which these signed actions (all by one author) hold two valid versions."""
    by_seq: dict[int, set[bytes]] = {}
    for body, sig in items:
        try:
            a = decode_action(body, sig)
        except Invalid:
            continue
        by_seq.setdefault(a.seq, set()).add(a.hash)
    return {seq for seq, hashes in by_seq.items() if len(hashes) > 1}
