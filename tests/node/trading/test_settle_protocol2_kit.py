"""Protocol 2 on the default kit: seven real `picogrid run` processes at the demo's pace (5 s).

One kit serves the module; the tests run in file order and each takes fresh intervals:
- lag: a node that hears an interval's orders late (SIGSTOPped over the gate, and an order
  posted to one node only just before the gate) still settles on the grid's book;
- back-dating and replacement: orders published after the views, stamped before the gate or
  with the original's timestamp, enter no book, and the audit accuses no honest node;
- over-limit: an order or genesis beyond the charter's limits is refused everywhere;
- a counterparty that never settles: its trades fail after the final deadline, the others are
  billed at the grid's tariffs for that energy, the API names it, the next books leave it out;
- restart: a node SIGKILLed and restarted mid-day signs nothing over a stale book: 0 disputed
  trades, and `picogrid audit` exits 0 against every node.
"""

from __future__ import annotations

import time

import pytest
from nodehttp import get_json
from nodemarket import Kit, Sybils, counts, now_us, post_all, sleep_until, wait_for

from ledger.actions import sign_action
from market.disputes import exclusion_lag

INTERVAL_S = 5


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    with Kit(tmp_path_factory.mktemp("p2kit"), interval_s=INTERVAL_S) as k:
        yield k
        assert not k.tracebacks(), k.logs()


@pytest.fixture(scope="module")
def members(kit):
    """Members without nodes: `lagger` (bids and settles like an honest node, but its bid
    reaches one node only), `liar` (replaces its order), `forger` (back-dates one), `shirker`
    (never settles)."""
    names = ("lagger", "liar", "forger", "shirker")
    out = {name: Sybils(kit, 1, bid_wh=200, name=name) for name in names}
    for group in out.values():
        group.join()
    return out


def book_hashes(view: dict) -> set[str]:
    return {o["hash"] for o in view["book"]}


def settled_books(view: dict) -> set[str]:
    return {s["book"] for s in view["settlements"].values()}


def test_a_lagging_node_settles_on_the_grids_book(kit, members):
    k = kit.next_interval(margin_s=2.5)
    d = kit.deadlines(k)
    sleep_until(d.gate_us - 700_000)
    bid = members["lagger"].bid(k, urls=[kit.urls[0]])[0]  # one node hears it first
    kit.pause(3, 2.0)  # node 3 hears nothing over the gate and into the view window
    members["lagger"].settle(k)
    views = kit.final(k)
    for view in views:
        assert bid.hash.hex() in book_hashes(view), "the late-heard bid is in the book"
        assert len(view["settlements"]) == 8, view["settlements"]  # 7 nodes and the lagger
        assert settled_books(view) == {views[0]["book_digest"]}  # one book, signed by all
        assert counts(view).get("disputed", 0) == 0 and counts(view)["confirmed"] > 0
        assert view["trades"] == views[0]["trades"]


def test_back_dated_and_replacement_orders_never_count(kit, members):
    liar = members["liar"].authors[0]
    k = kit.next_interval(margin_s=1.5)
    d = kit.deadlines(k)
    original = members["liar"].bid(k)[0]
    sleep_until(d.view_us + 300_000)  # the honest views are signed: publish the lies
    replacement = sign_action(
        liar.identity,
        original.seq + 1,
        original.hash,
        original.ts,
        "bid",
        {"interval": k, "energy_wh": 5000, "price": 1},
    )
    back_dated = (
        members["forger"]
        .authors[0]
        .next("bid", {"interval": k, "energy_wh": 5000, "price": 1}, ts=d.gate_us - 1_000_000)
    )
    for url in kit.urls:  # both valid actions: every node holds them
        got = post_all(url, [replacement, back_dated])
        assert not got["rejected"], got
    views = kit.final(k)
    for view in views:
        hashes = book_hashes(view)
        assert original.hash.hex() in hashes
        assert replacement.hash.hex() not in hashes and back_dated.hash.hex() not in hashes
        assert counts(view).get("disputed", 0) == 0
    for i in range(len(kit.nodes)):
        code, report = kit.audit(i)
        assert code == 0 and report["market"]["problems"] == [], report.get("market", report)


def test_orders_and_claims_beyond_the_charter_are_refused(kit):
    k = kit.next_interval(margin_s=1.5)
    greedy = Sybils(kit, 1, name="greedy")  # a community generator, honest in its genesis ...
    greedy.authors[0].actions.append(member_genesis(greedy.authors[0], "generator", 0, 5000))
    greedy.post_everywhere(greedy.authors[0].actions)
    # ... that offers 2^63-1 Wh: it would take all demand, and never deliver
    offer = greedy.authors[0].next("offer", {"interval": k, "energy_wh": 2**63 - 1, "price": 0})
    fat = Sybils(kit, 1, name="fat battery").authors[0]  # a battery claiming to hold it all
    genesis = member_genesis(fat, "storage", 2**63 - 1, 2**63 - 1)
    for url in kit.urls:
        got = post_all(url, [offer, genesis])
        assert [r[1] for r in got["rejected"]] == ["over-limit", "over-limit"], got
    view = kit.final(k, nodes=[0])[0]
    assert offer.hash.hex() not in book_hashes(view)
    assert all(greedy.authors[0].agent_hex not in (t["seller"], t["buyer"]) for t in view["trades"])
    assert counts(view).get("disputed", 0) == 0 and counts(view)["confirmed"] > 0


def test_a_counterparty_that_never_settles_fails_its_trades(kit, members):
    shirker = members["shirker"]
    me = shirker.authors[0].agent_hex
    k = kit.next_interval(margin_s=1.5)
    # It sits out the books of the intervals whose gate closes after F_k: its bid for the first
    # of them is signed now, in time, and still leaves the book.
    j = k + exclusion_lag(kit.charter.interval_ms, kit.charter.final_deadline_ms())
    shirker.bid(k)  # and never a view nor a settlement
    later = shirker.bid(j)[0]
    views = kit.final(k)
    for view in views:
        mine = [t for t in view["trades"] if me in (t["seller"], t["buyer"])]
        assert mine and {t["status"] for t in mine} == {"failed"}, mine
        others = [t for t in view["trades"] if t not in mine]
        assert others and {t["status"] for t in others} == {"confirmed"}
        assert [d["agent"] for d in view["defaulters"]] == [me]
    # Its sellers are billed for the confirmed trades only: the rest went to the utility grid.
    seller = next(t["seller"] for t in views[0]["trades"] if t["buyer"] == me)
    url = kit.urls[0]
    bill = wait_for(lambda: _bill(url, seller, k), 30, "the seller's bill")
    confirmed = sum(
        t["energy_wh"]
        for t in views[0]["trades"]
        if t["seller"] == seller and t["status"] == "confirmed"
    )
    assert bill["sold_wh"] == confirmed
    view = kit.final(j, nodes=[0])[0]
    assert later.hash.hex() not in book_hashes(view)
    assert me in [e["agent"] for e in view["excluded"]]


def member_genesis(author, role: str, capacity_wh: int, max_power_w: int):
    """A genesis of the kit's community for `author` with the role and claims given."""
    return sign_action(
        author.identity,
        0,
        None,
        now_us(),
        "genesis",
        {
            "community": author.community,
            "grid": author.grid,
            "name": author.name,
            "role": role,
            "household": "community",
            "capacity_wh": capacity_wh,
            "max_power_w": max_power_w,
            "invite": None,
        },
    )


def _bill(url: str, agent_hex: str, k: int) -> dict | None:
    body = get_json(f"{url}/v1/agents/{agent_hex}/bill?from={k}&to={k}")
    return body["intervals"][0] if body.get("intervals") else None


def test_a_node_killed_and_restarted_mid_day_disputes_nothing(kit):
    start = kit.next_interval(margin_s=0.5)
    kit.kill(2)
    time.sleep(1.5 * INTERVAL_S)  # it misses a gate and an interval's views
    kit.restart(2)
    end = kit.next_interval(margin_s=0.5) + 2
    views = kit.final(end, nodes=[0])
    for k in range(start, end + 1):
        for i in range(len(kit.nodes)):
            view = kit.view(k, i)
            assert counts(view).get("disputed", 0) == 0, (k, kit.nodes[i].name, view["trades"])
    for i in range(len(kit.nodes)):
        code, report = kit.audit(i)
        assert code == 0, report.get("market", report)
        assert report["market"]["disputed"] == 0
    assert views[0]["settlements"]
