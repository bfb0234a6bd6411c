"""A settlement of 1,000 trades on real nodes: community solar sells to 1,000 sybil homes.

Four real `picogrid run` processes (community solar, the neighbourhood battery, two homes) and
1,000 members without nodes (`nodemarket.Sybils`), signed in this process: they join, bid 1 Wh
each, a majority of them sign views, and all of them settle. Community solar's settlement then
holds about 1,000 trades: far beyond what fits in one action, it carries only their digest.
Every node must hold it (gossiped), recompute it from the views it names, confirm every trade,
and `picogrid audit` must find it matching.
"""

from __future__ import annotations

import dataclasses

import pytest
from nodemarket import Kit, Sybils, counts, sleep_until

from market.scenario import default_scenario
from market.settle import INLINE_TRADES_MAX

SYBILS = 1000
# 1,000 bids, 500 views of 3 pages (20 MB) and 1,000 settlements are signed here and posted to
# 4 nodes in one interval: a view window of 16 s and a final deadline of 32 s leave room.
INTERVAL_S = 40
KEEP = ("Community solar", "Neighbourhood battery", "Home 1", "Home 2")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    base = default_scenario()
    scenario = dataclasses.replace(base, agents=[a for a in base.agents if a.name in KEEP])
    with Kit(
        tmp_path_factory.mktemp("sybils"),
        interval_s=INTERVAL_S,
        scenario=scenario,
        first=11,
        round_ms=500,
    ) as k:
        yield k
        assert not k.tracebacks(), k.logs()


@pytest.mark.timeout(900)  # starting 4 nodes, an interval of 40 s, then auditing 1,004 chains
def test_a_settlement_of_a_thousand_trades_is_gossiped_confirmed_and_audited(kit):
    sybils = Sybils(kit, SYBILS)
    sybils.join()
    k = kit.next_interval(margin_s=8.0)
    sleep_until(kit.deadlines(k).gate_us - 6_000_000)
    sybils.bid(k)
    # With the nodes' own views, a clear majority of the 1,004 settlers.
    sybils.view(k, voters=SYBILS // 2 + 10, early=True)
    sybils.settle(k)
    views = kit.final(k, timeout=120)
    solar = next(a for a, n in views[0]["names"].items() if n == "Community solar")
    for view in views:
        signed = view["settlements"][solar]
        assert signed["trades"] > SYBILS and signed["trades"] > INLINE_TRADES_MAX
        assert len(view["settlements"]) == SYBILS + len(KEEP)
        tally = counts(view)
        assert tally == {"confirmed": len(view["trades"])}, tally
        theirs = [t for t in view["trades"] if solar in (t["seller"], t["buyer"])]
        assert len(theirs) == signed["trades"]
    code, report = kit.audit(0)
    market = report["market"]
    assert code == 0 and market["problems"] == [], market
    assert market["disputed"] == 0 and market["confirmed"] >= SYBILS
