"""Signatures verified in child processes (`node.verifiers`): the same outcome as verifying in the
node, every signature checked, and no child left behind, whether the node stops, a child dies
or the node is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import Counter

import pytest
from nodeproc import Author, Cluster, post_actions, wait_until

from ledger import codec
from ledger.actions import sign_action
from ledger.chain import SourceChain, now_us
from ledger.errors import Invalid
from ledger.membrane import Membrane
from ledger.signatures import signature_verdicts
from ledger.store import Store
from ledger.testing import ChainSigner, identity, order_payload, warrant_payload, wire_items
from ledger.validation import check_intrinsic
from node import journal as journal_module
from node import verifier_child, verifiers
from node.errors import UserError
from node.journal import PROCESS_MIN, Journal
from node.verifiers import VerifierProcesses


def batch() -> list[tuple[bytes, bytes]]:
    """A page as a peer might send it: valid actions with bad ones among them."""
    signer = ChainSigner(identity(1))
    chain = signer.chain(PROCESS_MIN + 20)
    rival = signer.at(chain[3])
    witness = ChainSigner(identity(3))
    warrant = witness.at(witness.genesis(), "warrant", warrant_payload(chain[4], rival))
    other = identity(2)
    items = wire_items(chain + [warrant])
    items[10] = (items[10][0], other.sign(items[10][0]))  # signed by someone else
    items[11] = (items[11][0], bytes(64))  # a signature of zeros
    items[12] = (items[12][0][:-1], items[12][1])  # cut short
    bad_seq = codec.encode([1, identity(1).agent, 0, None, 1, "bid", order_payload()])
    forged = sign_action(other, 1, chain[0].hash, chain[0].ts, "bid", order_payload())
    return items + [
        (bad_seq, other.sign(bad_seq)),  # bad-seq and bad-signature: bad-signature
        (forged.action_bytes[:4] + identity(1).agent + forged.action_bytes[36:], forged.signature),
        (b"\xc1", bytes(64)),
    ]


def one_by_one(items: list[tuple[bytes, bytes]], now: int) -> list:
    out = []
    for body, sig in items:
        try:
            out.append(check_intrinsic(body, sig, now))
        except Invalid as exc:
            out.append(exc.reason)
    return out


def reasons(outcomes: list) -> list:
    return [o.reason if isinstance(o, Invalid) else o for o in outcomes]


def children_of(pid: int) -> list[int]:
    """The verifier processes whose parent is `pid`."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z" and b"verifier_child" in argv:
            found.append(int(entry))
    return found


@pytest.fixture
def journal(tmp_path):
    store = Store(tmp_path / "own.sqlite3", Membrane("test"))
    j = Journal(store, SourceChain(store, identity(9)), Counter(), push=lambda actions: None,
                workers=VerifierProcesses(2))
    yield j
    j.close()
    store.close()


def verify_until_in_processes(j: Journal, items: list, now: int) -> list:
    """Verify the batch until the processes (started by the first big batch) took it."""
    deadline = time.monotonic() + 30

    async def run():
        while True:
            before = j.metrics["verified_in_processes"]
            checked = await j.verify(items, now)
            if j.metrics["verified_in_processes"] > before or time.monotonic() > deadline:
                return checked
            await asyncio.sleep(0.05)

    return asyncio.run(run())


def test_processes_judge_a_batch_exactly_as_the_node_would(journal):
    items, now = batch(), now_us()
    expected = one_by_one(items, now)
    assert expected[10:13] == ["bad-signature", "bad-signature", "bad-encoding"]
    assert expected[-3:] == ["bad-signature", "bad-signature", "bad-encoding"]
    checked = verify_until_in_processes(journal, items, now)
    assert journal.metrics["verified_in_processes"] == len(items), "the processes were not used"
    assert reasons(checked) == expected
    assert len(children_of(os.getpid())) == 2


def test_closing_the_journal_ends_its_processes(journal):
    items, now = batch(), now_us()
    verify_until_in_processes(journal, items, now)
    assert children_of(os.getpid())
    journal.close()
    assert children_of(os.getpid()) == []


def test_a_killed_process_costs_time_never_a_check(journal):
    items, now = batch(), now_us()
    expected = one_by_one(items, now)
    verify_until_in_processes(journal, items, now)
    for pid in children_of(os.getpid()):
        os.kill(pid, signal.SIGKILL)
    for _ in range(3):  # in the node meanwhile, or on processes started again
        assert reasons(asyncio.run(journal.verify(items, now))) == expected
    assert reasons(verify_until_in_processes(journal, items, now)) == expected
    assert journal.workers.usable


def test_a_big_batch_waits_for_the_processes_to_start(journal, monkeypatch):
    # The first big batch starts the processes and waits for them (WARM_WAIT_S, made long here
    # so that a loaded machine cannot turn this into a test of its speed) instead of taking the
    # threads the starting processes need.
    monkeypatch.setattr(journal_module, "WARM_WAIT_S", 60.0)
    items, now = batch(), now_us()
    assert children_of(os.getpid()) == []
    checked = asyncio.run(journal.verify(items, now))
    assert journal.metrics["verified_in_processes"] == len(items)
    assert reasons(checked) == one_by_one(items, now)


def test_processes_that_do_not_start_in_time_leave_the_batch_to_the_node(
        journal, monkeypatch, tmp_path):
    mute = tmp_path / "verifier_child.py"  # starts, but never says it is ready
    mute.write_text("import time\ntime.sleep(30)\n")
    monkeypatch.setattr(verifiers, "CHILD", mute)
    monkeypatch.setattr(journal_module, "WARM_WAIT_S", 0.3)
    items, now = batch(), now_us()
    started = time.monotonic()
    checked = asyncio.run(journal.verify(items, now))
    assert time.monotonic() - started < 10
    assert journal.metrics["verified_in_processes"] == 0
    assert reasons(checked) == one_by_one(items, now)
    assert children_of(os.getpid()), "the mute children were not started"
    journal.close()  # ends the mute children too
    assert children_of(os.getpid()) == []


PATIENT_CHILD = """
import os, msgpack
from ledger.signatures import signature_verdicts
from node.verifier_child import READY, _read_exactly, _write_all
_write_all(1, READY)
while True:  # reads two requests before it answers either
    bodies = []
    for _ in range(2):
        header = _read_exactly(0, 4)
        if header is None:
            raise SystemExit
        bodies.append(_read_exactly(0, int.from_bytes(header, "big")))
    for body in bodies:
        verdicts = signature_verdicts(msgpack.unpackb(body, use_list=False))
        _write_all(1, len(verdicts).to_bytes(4, "big") + verdicts)
"""


def test_a_child_has_the_next_request_before_it_answers(monkeypatch, tmp_path):
    # A child that answers only once it holds two requests is answered in full: the node does
    # not wait for an answer before it sends the next request (the child would sit idle).
    patient = tmp_path / "verifier_child.py"
    patient.write_text(PATIENT_CHILD)
    monkeypatch.setattr(verifiers, "CHILD", patient)
    workers = VerifierProcesses(1)
    try:
        items = batch()
        futures = workers.submit(items[:40]) + workers.submit(items[40:80])
        assert [f.result(timeout=30) for f in futures] == [
            signature_verdicts(items[:40]), signature_verdicts(items[40:80])]
    finally:
        workers.close()
    assert children_of(os.getpid()) == []


class DiesAfterItsFirstRequest:
    """A real child that reports itself exited as soon as it has been sent a request (it still
    answers): the moment between a send and the next request that a real death can fall in."""

    def __init__(self, real) -> None:
        self.real, self.stdout, self.stdin, self.sent = real, real.stdout, self, 0

    def write(self, data: bytes) -> int:
        self.sent += 1
        return self.real.stdin.write(data)

    def flush(self) -> None:
        self.real.stdin.flush()

    def close(self) -> None:
        self.real.stdin.close()

    def poll(self):
        return 1 if self.sent else self.real.poll()

    def wait(self, timeout=None):
        return self.real.wait(timeout)

    def kill(self) -> None:
        self.real.kill()


def test_a_child_that_dies_with_requests_in_hand_never_answers_for_another():
    # The next child must not be asked while the dead one's answers are awaited: read from the
    # next, those answers would be the verdicts of other items.
    workers = VerifierProcesses(1)
    start = workers._start
    starts = []

    def start_once_mortal():
        child = start()
        starts.append(child)
        return DiesAfterItsFirstRequest(child) if len(starts) == 1 else child

    workers._start = start_once_mortal
    try:
        items = batch()
        first, second = items[:40], items[40:80]
        assert signature_verdicts(first) != signature_verdicts(second)
        answers = [f.result(timeout=30) for f in workers.submit(first) + workers.submit(second)]
        assert answers[0] in (None, signature_verdicts(first))
        assert answers[1] in (None, signature_verdicts(second))
        assert len(starts) == 2 and answers[1] is not None
    finally:
        workers.close()
    assert children_of(os.getpid()) == []


def test_small_batches_and_one_core_stay_in_the_node(journal, monkeypatch):
    items, now = batch()[: PROCESS_MIN - 1], now_us()
    assert reasons(asyncio.run(journal.verify(items, now))) == one_by_one(items, now)
    assert journal.metrics["verified_in_processes"] == 0
    assert children_of(os.getpid()) == []  # not even started
    monkeypatch.setattr(verifiers, "cores", lambda: 1)
    assert VerifierProcesses.for_this_machine() is None
    assert VerifierProcesses.for_this_machine({"node": {"verify_processes": 2}}).count == 2
    monkeypatch.setattr(verifiers, "cores", lambda: 2)
    assert VerifierProcesses.for_this_machine() is not None
    assert VerifierProcesses.for_this_machine({"node": {"verify_processes": 0}}) is None
    for bad in (-1, 99, "2", True):
        with pytest.raises(UserError):
            VerifierProcesses.for_this_machine({"node": {"verify_processes": bad}})


def test_the_child_answers_frames_and_leaves_at_eof_or_when_idle():
    items = batch()
    to_child, from_node = os.pipe()
    to_node, from_child = os.pipe()
    done = threading.Event()

    def serve(idle_s: float) -> None:
        verifier_child.serve(to_child, from_child, idle_s)
        done.set()

    thread = threading.Thread(target=serve, args=(30.0,), daemon=True)
    thread.start()
    with os.fdopen(from_node, "wb") as out, os.fdopen(to_node, "rb") as back:
        assert back.read(1) == verifier_child.READY
        body = codec.encode([list(i) for i in items])
        out.write(len(body).to_bytes(4, "big") + body)
        out.flush()
        size = int.from_bytes(back.read(4), "big")
        assert back.read(size) == signature_verdicts(items)
    assert done.wait(10), "the child did not leave at the end of its input"
    os.close(to_child), os.close(from_child)

    to_child, from_node = os.pipe()
    to_node, from_child = os.pipe()
    done.clear()
    thread = threading.Thread(target=serve, args=(0.2,), daemon=True)
    thread.start()
    assert done.wait(10), "the child did not leave when idle"
    for fd in (to_child, from_node, to_node, from_child):
        os.close(fd)


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_no_verifier_outlives_its_node(tmp_path, stop):
    with Cluster(tmp_path) as c:
        a = c.found("A")
        proc = c.start(a)
        author = Author(community=a.community)
        actions = author.extend(PROCESS_MIN * 3)
        step = PROCESS_MIN
        sent = 0

        def verifiers_run() -> list[int]:
            nonlocal sent
            if sent + step <= len(actions):  # each batch big enough for the processes
                answer = post_actions(a.url, actions[sent : sent + step])
                assert answer["accepted"] == step, answer
                sent += step
            return children_of(proc.pid)

        pids = wait_until(verifiers_run, 30, "the node started its verifier processes",
                          interval=0.2, logs=proc.logs)
        if stop == "sigterm":
            assert proc.terminate() == 0
        else:
            proc.kill()
        wait_until(lambda: not any(running(p) for p in pids), 10,
                   f"verifier processes {pids} outlived their node", logs=proc.logs)


def running(pid: int) -> bool:
    """The process exists and is no zombie (one whose parent died waits for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
