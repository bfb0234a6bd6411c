"""A stranger floods a real node with early actions: disk stays bounded, members keep theirs."""

from __future__ import annotations

from nodeproc import Author, Cluster, head_seq, post_actions, wait_until

from ledger.store import MAX_STRANGER_PENDING_BYTES

MB = 2**20


def settlement(author: Author, interval: int):
    """A settlement of 100 trades: about 14 KB."""
    trades = [[bytes([1]) * 32, bytes([2]) * 32, 1, 1, bytes(32), bytes(32)] for _ in range(100)]
    payload = {"interval": interval, "mechanism": "merit-order", "book": bytes(32),
               "trades": trades, "grid_import_wh": 0, "grid_export_wh": 0}
    return author.next("settlement", payload)


def store_bytes(agent) -> int:
    return sum(f.stat().st_size for f in agent.dir.glob("store.sqlite3*"))


def test_10000_stranger_bodies_neither_fill_the_disk_nor_drop_a_members_action(tmp_path):
    with Cluster(tmp_path) as c:
        a = c.found("A")
        c.start(a, rate_limit=100_000)
        member = Author(name="member")
        assert post_actions(a.url, member.extend(2))["accepted"] == 2
        before = store_bytes(a)
        flood = []
        for _ in range(500):  # 500 throwaway keys, 20 early actions each, no genesis ever sent
            stranger = Author(name="stranger")
            stranger.genesis()
            flood += [settlement(stranger, i) for i in range(20)]
        posted = sum(len(x.action_bytes) for x in flood)
        assert len(flood) == 10_000 and posted > 130 * MB  # 141 million bytes
        answers = {"pending": 0, "pending-full": 0}
        for i in range(0, len(flood), 250):
            answer = post_actions(a.url, flood[i : i + 250])
            answers["pending"] += answer["pending"]
            answers["pending-full"] += len(answer["rejected"])
            assert {r for _, r in answer["rejected"]} <= {"pending-full"}
        assert answers["pending"] + answers["pending-full"] == 10_000
        grown = store_bytes(a) - before
        assert grown < 6 * MAX_STRANGER_PENDING_BYTES, f"{grown / MB:.0f} MB for {posted / MB:.0f}"
        # the member's early action is held, then placed when its predecessor comes
        seq2, seq3 = member.next(), member.next()
        early = post_actions(a.url, [seq3])
        assert (early["pending"], early["rejected"]) == (1, [])
        assert post_actions(a.url, [seq2])["accepted"] == 1
        wait_until(lambda: head_seq(a.url, member.agent) == 3, 10, "the early action is placed")
