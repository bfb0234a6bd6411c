"""What an interval meant for each agent: energy figures, bills, reconciliation, KPIs.

Money is integer milli-cents: `energy_wh * price // 1000` for a price in milli-cents per kWh,
rounded down once per trade (and once per interval's imbalance). Buyer and seller compute the
same amount from the same trade, so what one spends the other earns, to the milli-cent.

Reconciliation (DESIGN "Settlement" step 4): an agent's metered net draw (`import_wh - export_wh`
of its `reading`) minus its contracted net draw (energy bought minus sold in its trades) is its
imbalance: bought from the utility grid at `retail` when positive, sold to it at `feed_in` when
negative. A home's unmatched demand is thus paid at retail and a generator's unsold output paid
at feed-in, exactly as the settlement's `grid_import_wh` / `grid_export_wh` planned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

from ledger.charter import GridRules
from market.battery import next_soc
from market.participants import Participant
from market.trades import Clearing, Trade


def money(energy_wh: int, price: int) -> int:
    """Milli-cents for `energy_wh` at `price` milli-cents per kWh, rounded down."""
    return energy_wh * price // 1000


def traded(agent: bytes, trades: Iterable[Trade]) -> tuple[int, int]:
    """(bought_wh, sold_wh) of `agent` in `trades`."""
    bought = sold = 0
    for t in trades:
        if t.buyer == agent:
            bought += t.energy_wh
        if t.seller == agent:
            sold += t.energy_wh
    return bought, sold


def planned_meter(who: Participant, clearing: Clearing) -> tuple[int, int]:
    """(import_wh, export_wh) the meter reads if everyone does what the clearing says."""
    bought, sold = traded(who.agent, clearing.trades)
    if who.role == "consumer":
        return bought + clearing.grid_import_wh.get(who.agent, 0), 0
    if who.role == "generator":
        return 0, sold + clearing.grid_export_wh.get(who.agent, 0)
    return bought, sold


def interval_figures(
    participants: Mapping[bytes, Participant],
    clearing: Clearing,
    socs: Mapping[bytes, int],
    metered: Mapping[bytes, tuple[int, int]] | None = None,
    by_id: bool = False,
) -> dict[str, dict]:
    """Per agent name (`by_id`: per agent id hex), the interval's figures.

    - consumer: `demand_wh` (metered consumption; planned: bought + planned grid import),
      `from_generation_wh`, `from_storage_wh` (bought from generators / from storage),
      `from_grid_wh` (the rest of its demand, from the utility grid);
    - generator: `generation_wh` (metered; planned: sold + planned grid export), `sold_wh`;
    - storage: `soc_wh` (after the interval, from `socs` before it), `charged_wh` (bought),
      `discharged_wh` (sold).

    `metered` maps agents to their (import_wh, export_wh) readings; absent agents read as planned.
    """
    received: dict[bytes, list[int]] = {}
    sold: dict[bytes, int] = {}
    for t in clearing.trades:
        source = participants.get(t.seller)
        slot = 1 if source is not None and source.role == "storage" else 0
        received.setdefault(t.buyer, [0, 0])[slot] += t.energy_wh
        sold[t.seller] = sold.get(t.seller, 0) + t.energy_wh
    out: dict[str, dict] = {}
    for agent, who in participants.items():
        key = agent.hex() if by_id else who.name
        imported, exported = (metered or {}).get(agent) or planned_meter(who, clearing)
        from_gen, from_storage = received.get(agent, (0, 0))
        if who.role == "consumer":
            out[key] = {
                "demand_wh": imported,
                "from_generation_wh": from_gen,
                "from_storage_wh": from_storage,
                "from_grid_wh": max(0, imported - from_gen - from_storage),
            }
        elif who.role == "generator":
            out[key] = {"generation_wh": exported, "sold_wh": sold.get(agent, 0)}
        else:
            charged, discharged = from_gen + from_storage, sold.get(agent, 0)
            soc = next_soc(socs.get(agent, 0), charged, discharged, who.capacity_wh)
            out[key] = {"soc_wh": soc, "charged_wh": charged, "discharged_wh": discharged}
    return out


def next_socs(
    participants: Mapping[bytes, Participant], clearing: Clearing, socs: Mapping[bytes, int]
) -> dict[bytes, int]:
    """Every battery's state of charge after the interval."""
    out = {}
    for agent, who in participants.items():
        if who.role == "storage":
            bought, sold = traded(agent, clearing.trades)
            out[agent] = next_soc(socs.get(agent, 0), bought, sold, who.capacity_wh)
    return out


@dataclass(frozen=True, slots=True)
class Bill:
    """An agent's account, money in milli-cents. `net` > 0: it pays; < 0: it is paid."""

    bought_wh: int = 0  # in trades
    sold_wh: int = 0
    spent: int = 0
    earned: int = 0
    imbalance_import_wh: int = 0  # bought from the utility grid at retail
    imbalance_export_wh: int = 0  # sold to the utility grid at feed-in
    imbalance_spent: int = 0
    imbalance_earned: int = 0

    @property
    def net(self) -> int:
        return self.spent + self.imbalance_spent - self.earned - self.imbalance_earned

    def __add__(self, other: Bill) -> Bill:
        return Bill(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Bill)))

    def to_dict(self) -> dict[str, int]:
        d = {f.name: getattr(self, f.name) for f in fields(Bill)}
        d["net"] = self.net
        return d


def reconcile(agent: bytes, trades: Iterable[Trade], reading: Mapping, rules: GridRules) -> Bill:
    """One interval's bill: `agent`'s confirmed trades against its meter `reading`.

    `reading` is the PROTOCOL `reading` payload (only `import_wh` and `export_wh` are used).
    """
    bought = sold = spent = earned = 0
    for t in trades:
        if t.buyer == agent:
            bought += t.energy_wh
            spent += money(t.energy_wh, t.price)
        if t.seller == agent:
            sold += t.energy_wh
            earned += money(t.energy_wh, t.price)
    imbalance = (reading["import_wh"] - reading["export_wh"]) - (bought - sold)
    grid_in, grid_out = max(imbalance, 0), max(-imbalance, 0)
    return Bill(
        bought,
        sold,
        spent,
        earned,
        grid_in,
        grid_out,
        money(grid_in, rules.retail),
        money(grid_out, rules.feed_in),
    )


def baseline_net(who: Participant, reading: Mapping, rules: GridRules) -> int:
    """What the interval would have cost `who` with the utility grid only (no market): a home
    buys its consumption at retail, a generator sells its output at feed-in, a battery is idle."""
    if who.role == "storage":
        return 0
    return money(reading["import_wh"], rules.retail) - money(reading["export_wh"], rules.feed_in)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole > 0 else None


def kpis(
    participants: Mapping[bytes, Participant],
    figures: Iterable[Mapping[str, dict]],
    bills: Mapping[str, Bill],
    baselines: Mapping[str, int],
    credits: Mapping[str, int] | None = None,
    by_id: bool = False,
) -> dict:
    """Self-sufficiency, self-consumption, savings, bills and home shares over many intervals.

    `figures` are `interval_figures` results; `bills`, `baselines` and `credits` (from
    `market.savings.SavingsBook`: stored energy and household gifts valued, taken off the net)
    are per agent, summed over the same intervals, keyed by name or (`by_id`) by agent id hex.
    Energy that reached a home from a battery counts as local: batteries only ever charge from
    local generation. Ratios are floats for display only (4 decimals).
    """
    roles = {(who.agent.hex() if by_id else who.name): who for who in participants.values()}
    credits = credits or {}
    demand = local = generation = 0
    homes = {n: [0, 0, 0, 0] for n, w in roles.items() if w.role == "consumer"}
    for interval in figures:
        for name, f in interval.items():
            if name in homes:
                served = min(f["demand_wh"], f["from_generation_wh"] + f["from_storage_wh"])
                demand += f["demand_wh"]
                local += served
                h = homes[name]
                h[0] += f["demand_wh"]
                h[1] += f["from_grid_wh"]
                h[2] += f["from_storage_wh"]
                h[3] += f["from_generation_wh"]
            elif "generation_wh" in f:
                generation += f["generation_wh"]
    per_agent = {name: baselines.get(name, 0) - bills[name].net + credits.get(name, 0)
                 for name in sorted(bills)}
    per_household: dict[str, int] = {}
    for name, saved in per_agent.items():
        house = roles[name].household
        per_household[house] = per_household.get(house, 0) + saved
    baseline = sum(baselines.values())
    saved = sum(per_agent.values())
    return {
        "self_sufficiency": _ratio(local, demand),
        "self_consumption": _ratio(local, generation),
        "savings": {
            "baseline": baseline,
            "net": sum(b.net for b in bills.values()),
            "stored_value": sum(credits.values()),
            "saved": saved,
            "ratio": _ratio(saved, baseline),
            "per_agent": per_agent,
            "per_household": dict(sorted(per_household.items())),
        },
        "bills": {name: bills[name].to_dict() for name in sorted(bills)},
        "home_shares": {
            name: {"grid": _ratio(g, d), "battery": _ratio(b, d), "solar": _ratio(s, d)}
            for name, (d, g, b, s) in homes.items()
        },
    }
