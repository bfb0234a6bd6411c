"""The readable form of a simulation result: a table per interval and a summary."""

from __future__ import annotations

_COLUMNS = (
    ("demand", "demand_wh"),
    ("solar", "from_generation_wh"),
    ("battery", "from_storage_wh"),
    ("grid", "from_grid_wh"),
    ("output", "generation_wh"),
    ("sold", "sold_wh"),
    ("soc", "soc_wh"),
    ("charged", "charged_wh"),
    ("dischgd", "discharged_wh"),
)


def cents(millicents: int) -> str:
    """Milli-cents as cents with two decimals, rounded toward zero: -1234 -> '-1.23'."""
    sign = "-" if millicents < 0 else ""
    whole, frac = divmod(abs(millicents), 1000)
    return f"{sign}{whole}.{frac // 10:02d}"


def _percent(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.1f}%"


def _interval_table(row: dict, roles: dict[str, str], width: int) -> list[str]:
    k = row["interval"]
    lines = [f"Interval {k} (hour {k % 24})"]
    head = f"  {'agent':<{width}} {'role':<9}" + "".join(f" {title:>8}" for title, _ in _COLUMNS)
    lines.append(head)
    for name, figures in row["agents"].items():
        cells = "".join(
            f" {figures[key]:>8}" if key in figures else f" {'.':>8}" for _, key in _COLUMNS
        )
        lines.append(f"  {name:<{width}} {roles[name]:<9}{cells}")
    for t in row["trades"]:
        lines.append(
            f"  trade: {t['seller']} -> {t['buyer']}: {t['energy_wh']} Wh at {cents(t['price'])} ct/kWh"
        )
    lines.append(
        f"  utility grid: import {row['grid_import_wh']} Wh, export {row['grid_export_wh']} Wh"
    )
    return lines


def format_report(result: dict) -> str:
    """Energies in Wh, prices in ct/kWh, money in ct."""
    roles = {a["name"]: a["role"] for a in result["agents"]}
    width = max([len(n) for n in roles] + [5])
    lines = [
        f"Scenario: {result['scenario']}",
        f"Mechanism: {result['mechanism']}, {len(result['intervals'])} intervals",
        "",
    ]
    for row in result["intervals"]:
        lines += _interval_table(row, roles, width)
        lines.append("")
    k = result["kpis"]
    savings = k["savings"]
    lines += [
        "Summary",
        f"  self-sufficiency: {_percent(k['self_sufficiency'])}",
        f"  self-consumption: {_percent(k['self_consumption'])}",
        f"  savings against the utility grid alone: {cents(savings['saved'])} ct "
        f"({_percent(savings['ratio'])} of {cents(savings['baseline'])} ct)",
        "",
        f"  {'bill (ct)':<{width}} {'bought':>8} {'sold':>8} {'spent':>10} {'earned':>10}"
        f" {'grid in':>8} {'grid out':>8} {'net':>10} {'saved':>10}",
    ]
    for name in roles:
        bill = k["bills"][name]
        lines.append(
            f"  {name:<{width}} {bill['bought_wh']:>8} {bill['sold_wh']:>8} {cents(bill['spent']):>10}"
            f" {cents(bill['earned']):>10} {bill['imbalance_import_wh']:>8} {bill['imbalance_export_wh']:>8}"
            f" {cents(bill['net']):>10} {cents(savings['per_agent'][name]):>10}"
        )
    lines.append("")
    lines.append(f"  {'home supply':<{width}} {'grid':>8} {'battery':>8} {'solar':>8}")
    for name, shares in k["home_shares"].items():
        lines.append(
            f"  {name:<{width}} {_percent(shares['grid']):>8} {_percent(shares['battery']):>8}"
            f" {_percent(shares['solar']):>8}"
        )
    return "\n".join(lines) + "\n"
