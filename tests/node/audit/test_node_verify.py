"""`node.audit.chains.verify_chains`, the re-verification behind `picogrid audit` and the audit API."""

from __future__ import annotations

from nodeproc import Author

from ledger.chain import now_us
from ledger.membrane import Membrane
from node.audit.chains import verify_chains

MEMBRANE = Membrane("c1")


def wires(author: Author) -> list[tuple[bytes, bytes]]:
    return [(a.action_bytes, a.signature) for a in author.actions]


def forked_world() -> tuple[Author, Author]:
    """`two_faced` signed two actions at seq 2; `witness` published the warrant."""
    two_faced, witness = Author(name="two-faced"), Author(name="witness")
    two_faced.extend(4)
    witness.extend(2)
    evidence = [two_faced.actions[2].wire(), two_faced.fork(2).wire()]
    witness.next("warrant", {"evidence": evidence})
    return two_faced, witness


def test_a_warrant_marks_the_author_forked_whatever_the_order_of_the_chains():
    two_faced, witness = forked_world()
    for order in ((witness, two_faced), (two_faced, witness)):
        chains = {a.agent: wires(a) for a in order}
        claimed = {a.agent: (a.actions[-1].seq, a.actions[-1].hash) for a in order}
        reports = verify_chains(chains, MEMBRANE, now_us(), claimed=claimed)
        assert reports[witness.agent].status == "valid"
        assert reports[witness.agent].length == 3
        report = reports[two_faced.agent]
        assert (report.status, report.length) == ("forked", 4), report.problems
        assert report.problems == ["forked: two different signed actions at seq [2]"]


def test_fork_evidence_alone_proves_a_fork():
    two_faced, _ = forked_world()
    evidence = {two_faced.agent: [two_faced.actions[2].wire(), two_faced.fork(2).wire()]}
    reports = verify_chains(
        {two_faced.agent: wires(two_faced)},
        MEMBRANE,
        now_us(),
        evidence={k: [tuple(x) for x in v] for k, v in evidence.items()},
    )
    assert reports[two_faced.agent].status == "forked"


def test_a_chain_served_short_of_its_claimed_head_or_broken_is_invalid():
    author = Author(name="liar")
    author.extend(5)
    items = wires(author)
    claimed = {author.agent: (4, author.actions[4].hash)}
    short = verify_chains({author.agent: items[:3]}, MEMBRANE, now_us(), claimed=claimed)
    assert short[author.agent].status == "invalid"
    assert "claims head seq 4" in short[author.agent].problems[0]
    body, sig = items[2]
    broken = items[:2] + [(body, bytes([sig[0] ^ 1]) + sig[1:])] + items[3:]
    report = verify_chains({author.agent: broken}, MEMBRANE, now_us())[author.agent]
    assert report.status == "invalid" and "action #2: bad-signature" in report.problems
    stranger = Author(community="elsewhere", name="stranger")
    stranger.extend(2)
    report = verify_chains({stranger.agent: wires(stranger)}, MEMBRANE, now_us())[stranger.agent]
    assert report.status == "invalid" and "action #0: wrong-community" in report.problems
