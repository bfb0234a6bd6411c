"""The market half of `picogrid audit`: recompute every settlement from the signed book.

For each grid and interval, the auditor rebuilds the book from the orders in the chains (the
gate and fork rules of the charter applied), clears it with the charter's mechanism, and compares
each agent's signed settlement with what that agent should have signed. A settlement over a
different book is explained when the book differs by one order or by all orders of one author
(an order that reached that node late) and the recomputation over that book matches; anything
else is a problem.
"""

from __future__ import annotations

from ledger.charter import Charter
from ledger.membrane import Membrane
from ledger.precheck import Checked
from ledger.store import Store
from market.book import deadlines
from market.clearing import clear
from market.disputes import outcomes
from market.intervals import gate_closure_us
from market.judge import Context, Verdict
from market.orders import select_book
from market.settle import is_v2
from market.settlement import gaps, settlement_payload
from node.audit.views import judge_context, settlement_history
from node.trading.grid_views import judge_cached
from node.trading.interval_view import energy_window_ms, interval_state


def audit_market(chains: dict[bytes, list[tuple[bytes, bytes]]], charters: list[Charter],
                 membrane: Membrane | None, now_us: int,
                 prechecked: dict[bytes, Checked] | None = None) -> dict:
    """Recompute the settlements found in `chains`; returns counts, disputes and problems.
    `prechecked`: each chain's `precheck`, when the caller already decoded and verified it."""
    report = {"settlements_checked": 0, "settlements_matching": 0, "late_books": 0,
              "confirmed": 0, "disputed": 0, "pending": 0, "disputes": [], "problems": [],
              "notes": []}
    if not charters:
        report["problems"].append("no charter: settlements cannot be recomputed")
        return report
    store = Store(":memory:", membrane)
    try:
        for author, items in chains.items():
            store.ingest(list(items), now_us, prechecked=(prechecked or {}).get(author))
        names = {r["author"]: r["name"] for r in store.agents()}
        for grid in sorted({r["grid"] for r in store.agents()}):
            for k in store.intervals(grid):  # through the market index, no chain walk
                _audit_interval(store, charters, grid, k, names, report, now_us)
    finally:
        store.close()
    return report


def _audit_interval(store: Store, charters: list[Charter], grid: str, k: int,
                    names: dict[bytes, str], report: dict, now_us: int) -> None:
    state = interval_state(store, charters, grid, k)
    if not state.settlements:
        return  # an interval still open, or one nobody settled: nothing signed to check
    if state.rules is None or state.clearing is None:
        report["notes"].append(f"interval {k}: grid {grid!r} has no market in the charter")
        return
    table = gaps(state.book)
    everyone = select_book(state.orders, gate_us=gate_closure_us(charters, k),
                           members=set(state.participants), forked=set())
    context = None
    cleared: dict[tuple, tuple | None] = {}  # v2: one clearing per set of views named
    for agent, signed in sorted(state.settlements.items()):
        who = names.get(agent, agent.hex()[:12])
        report["settlements_checked"] += 1
        if is_v2(signed):  # protocol 2: judged against the views it names, never our book
            context = context or judge_context(store, charters, state)
            _judged(judge_cached(agent, signed, context, cleared), k, who, report)
            continue
        expected = state.payload_for(agent)
        if signed == expected:
            report["settlements_matching"] += 1
            continue
        if signed.get("mechanism") != state.rules.mechanism:
            report["problems"].append(f"interval {k}: {who} settled with mechanism "
                                      f"{signed.get('mechanism')!r}, the charter says "
                                      f"{state.rules.mechanism!r}")
            continue
        book = None
        if signed["book"] != expected["book"]:
            lacked = table.get(signed["book"])
            if lacked is not None:
                book = [o for o in state.book if o.hash not in set(lacked)]
                why = f"its book lacked {len(lacked)} order(s) that reached it late"
            elif signed["book"] == settlement_payload(agent, k, state.rules.mechanism, everyone,
                                                      state.clearing)["book"]:
                book = everyone
                why = "its book still held orders of an agent later found forked"
        if book is None:
            report["problems"].append(f"interval {k}: {who}'s settlement differs from the "
                                      "recomputation over the signed orders")
            continue
        clearing = clear(book, state.participants, state.rules,
                         interval_ms=energy_window_ms(state.charter))
        if settlement_payload(agent, k, state.rules.mechanism, book, clearing) == signed:
            report["late_books"] += 1
            report["notes"].append(f"interval {k}: {who} settled correctly, but {why}")
        else:
            report["problems"].append(f"interval {k}: {who}'s settlement matches no book "
                                      "it could have held")
    if context is not None:  # protocol 2: outcomes by the final deadline, revisions shown
        _outcomes(store, charters, grid, k, context, names, report, now_us)
        return
    for s in state.statuses:
        report[s.status] += 1
        if s.status == "disputed":
            report["disputes"].append({
                "interval": k,
                "seller": names.get(s.trade.seller, s.trade.seller.hex()),
                "buyer": names.get(s.trade.buyer, s.trade.buyer.hex()),
                "energy_wh": s.trade.energy_wh,
                "price": s.trade.price,
                "lacked": {names.get(a, a.hex()): [h.hex() for h in hs]
                           for a, hs in s.missing.items()},
            })


def _judged(verdict: Verdict, k: int, who: str, report: dict) -> None:
    if verdict.status == "matches":
        report["settlements_matching"] += 1
    elif verdict.status == "differs":
        report["problems"].append(f"interval {k}: {who}'s settlement {verdict.detail}")
    else:
        report["notes"].append(f"interval {k}: {who}'s settlement cannot be checked here: "
                               f"{verdict.detail}")


def _outcomes(store: Store, charters: list[Charter], grid: str, k: int, context: Context,
              names: dict[bytes, str], report: dict, now_us: int) -> None:
    """Each trade's outcome (market.disputes) with the verdict of the first settlements."""
    history = settlement_history(store, grid, k, context)
    for o in outcomes(history, final_us=deadlines(charters, k).final_us, now_us=now_us):
        report[o.status] = report.get(o.status, 0) + 1
        healed = o.status == "confirmed" and o.first != "confirmed"
        if healed or o.status in ("disputed", "failed"):
            target = "healed" if healed else "disputes"
            report.setdefault(target, []).append({
                "interval": k,
                "seller": names.get(o.trade.seller, o.trade.seller.hex()),
                "buyer": names.get(o.trade.buyer, o.trade.buyer.hex()),
                "energy_wh": o.trade.energy_wh,
                "price": o.trade.price,
                "lacked": {},
                "first": o.first,
                "outcome": o.status,
                "defaulter": names.get(o.defaulter, o.defaulter.hex()) if o.defaulter else None,
            })
