"""Battery arithmetic, integer Wh throughout (the kit's bugs are pinned by tests on these).

- A battery can discharge at most what it holds and what its power moves in the interval.
- It can charge at most its free capacity and what its power moves in the interval.
- After an interval its state of charge is `soc + charged - discharged`: discharging lowers it.
"""

from __future__ import annotations

from market.participants import Participant


def battery_limits(battery: Participant, soc_wh: int, interval_ms: int) -> tuple[int, int]:
    """(dischargeable_wh, chargeable_wh) of `battery` holding `soc_wh` in an interval."""
    power = battery.power_cap_wh(interval_ms)
    soc = min(max(soc_wh, 0), battery.capacity_wh)
    return min(soc, power), min(battery.capacity_wh - soc, power)


def next_soc(soc_wh: int, charged_wh: int, discharged_wh: int, capacity_wh: int) -> int:
    """State of charge after an interval, kept within [0, capacity_wh].

    With orders made by `battery_limits` the result never needs the bounds; they only stop a
    battery that was asked for more than it had (a misbehaving strategy) from going negative or
    overfilling in the books: the shortfall shows as imbalance against the meter instead.
    """
    return min(max(soc_wh + charged_wh - discharged_wh, 0), capacity_wh)
