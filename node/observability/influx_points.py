"""InfluxDB line protocol for PicoGrid's readings, trades and KPIs (see `node.observability.influx`)."""

from __future__ import annotations

import math
from typing import Any

from node.trading.interval_view import IntervalState, figures_of, kpis_of


def _name(text: str) -> str:
    """A tag key, tag value or field key, escaped. A backslash can't be escaped everywhere in
    line protocol (a trailing one breaks the line), so it becomes '/'; newlines become spaces."""
    text = text.replace("\\", "/").replace("\n", " ").replace("\r", " ")
    return text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _field_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
        return f'"{text}"'
    raise TypeError(f"a field can't hold {value!r}")


def point(measurement: str, tags: dict[str, Any], fields: dict[str, Any], ts: int) -> str | None:
    """One line of line protocol; tags without a value and fields that are None are left out
    (None when no field is left: InfluxDB needs at least one)."""
    tag_part = "".join(
        f",{_name(k)}={_name(str(v))}"
        for k, v in sorted(tags.items())
        if v is not None and str(v) != ""
    )
    values = [(k, _field_value(v)) for k, v in fields.items() if v is not None]
    field_part = ",".join(f"{_name(k)}={v}" for k, v in values if v is not None)
    if not field_part:
        return None
    return f"{_name(measurement)}{tag_part} {field_part} {int(ts)}"


READING_FIELDS = ("import_wh", "export_wh", "soc_wh", "bus_mv", "current_ua", "power_uw", "samples")


def reading_point(
    payload: dict, *, agent: str, role: str, grid: str, household: str, ts_us: int
) -> str | None:
    """A signed reading as a `reading` point (None when it has nothing to show)."""
    tags = {
        "agent": agent,
        "role": role,
        "grid": grid,
        "household": household,
        "sensor": payload.get("sensor"),
    }
    return point("reading", tags, {k: payload.get(k) for k in READING_FIELDS}, ts_us)


def _names(state: IntervalState) -> dict[bytes, str]:
    return {a: p.name for a, p in state.participants.items()}


def trade_points(
    state: IntervalState, me: bytes, *, agent: str, grid: str, ts_us: int
) -> list[str]:
    """Our trades of the interval, each with its status (confirmed, disputed or pending)."""
    names = _names(state)
    lines = []
    mine = [s for s in state.statuses if me in (s.trade.seller, s.trade.buyer)]
    for n, status in enumerate(mine):
        t = status.trade
        tags = {
            "agent": agent,
            "grid": grid,
            "n": n,
            "seller": names.get(t.seller, t.seller.hex()[:16]),
            "buyer": names.get(t.buyer, t.buyer.hex()[:16]),
        }
        fields = {
            "energy_wh": t.energy_wh,
            "price": t.price,
            "status": status.status,
            "offer": t.offer.hex(),
            "bid": t.bid.hex(),
        }
        line = point("trade", tags, fields, ts_us)
        if line is not None:
            lines.append(line)
    return lines


def interval_kpis(state: IntervalState, socs: dict[bytes, int]) -> dict | None:
    """The KPIs of one interval, as `/v1/intervals/{k}` computes them (None: nothing cleared)."""
    if not figures_of(state, socs):
        return None
    return kpis_of([(state, socs)], need_bills=False)


def kpi_point(values: dict | None, *, agent: str, grid: str, ts_us: int) -> str | None:
    """An interval's KPIs as a `kpi` point (None without figures)."""
    if not values:
        return None
    savings = values.get("savings") or {}
    fields = {
        "self_sufficiency": _float(values.get("self_sufficiency")),
        "self_consumption": _float(values.get("self_consumption")),
        "savings": savings.get("saved"),
        "savings_ratio": _float(savings.get("ratio")),
        "baseline": savings.get("baseline"),
        "net": savings.get("net"),
    }
    return point("kpi", {"agent": agent, "grid": grid}, fields, ts_us)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
