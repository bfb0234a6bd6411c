"""Re-verify chains with the ledger's own rules, trusting nothing about where they came from.

Used by `GET /v1/agents/{id}/audit` and by `picogrid audit`: the actions are ingested into a fresh
in-memory store, so every check a node makes on gossip (encoding, signature, links, time,
schema, membrane, forks) is made again, in the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.actions import decode_action
from ledger.errors import Invalid
from ledger.membrane import Membrane
from ledger.store import Store


@dataclass
class ChainReport:
    agent: bytes
    status: str = "valid"  # "valid" | "forked" | "invalid"
    length: int = 0
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"agent": self.agent.hex(), "status": self.status, "length": self.length,
                "problems": self.problems}


def verify_chains(
    chains: dict[bytes, list[tuple[bytes, bytes]]],
    membrane: Membrane | None,
    now_us: int,
    claimed: dict[bytes, tuple[int, bytes]] | None = None,
    evidence: dict[bytes, list[tuple[bytes, bytes]]] | None = None,
) -> dict[bytes, ChainReport]:
    """Verify each author's served chain; `claimed` heads and fork `evidence` are checked too."""
    store = Store(":memory:", membrane)
    try:
        reports = {}
        for author, items in chains.items():
            report = reports[author] = ChainReport(author)
            result = store.ingest(list(items), now_us)
            for index, reason in result.rejected:
                if reason != "forked-author":  # reported once below, as the fork itself
                    report.problems.append(f"action #{index}: {reason}")
            for index, (body, sig) in enumerate(items):
                try:
                    a = decode_action(body, sig, check_signature=False)
                except Invalid:
                    continue
                if a.author != author:
                    report.problems.append(f"action #{index} is by another author")
            head = store.head(author)
            report.length = head.seq + 1 if head else 0
            if result.pending:
                report.problems.append(f"{result.pending} action(s) do not link to the chain")
            if claimed and author in claimed:
                seq, h = claimed[author]
                if head is None or head.seq != seq or head.hash != h:
                    report.problems.append(
                        f"the node claims head seq {seq} but served a chain of {report.length}"
                    )
        for author, items in (evidence or {}).items():
            result = store.ingest(list(items), now_us)
            if author in store.forked_authors():
                reports.setdefault(author, ChainReport(author))
        for author in store.forked_authors():
            report = reports.setdefault(author, ChainReport(author))
            ev = store.fork_evidence(author)
            seqs = sorted({a.seq for a in ev})
            report.problems.append(f"forked: two different signed actions at seq {seqs}")
        for report in reports.values():
            if report.problems:
                forked = report.agent in store.forked_authors()
                only_fork = forked and all(p.startswith("forked") for p in report.problems)
                report.status = "forked" if only_fork else "invalid"
        return reports
    finally:
        store.close()

