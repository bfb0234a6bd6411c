"""Exact integer energy bookkeeping for meters: power x time into import / export Wh, and a
storage's state of charge. No floats: power is in microwatts, time in microseconds, so their
product is in picojoules (1 Wh = 3.6e15 pJ)."""

from __future__ import annotations

PJ_PER_WH = 3_600 * 10**12


class EnergyAccount:
    """Integrates signed power (positive: import, negative: export) into whole Wh per interval.

    `energy_scale` multiplies measured energy into reported energy (1: an honest meter; the
    kit's small currents use a larger scale, see `hardware.meter`). What does not make a whole
    Wh stays in the account and counts toward the next interval, so a day's readings add up to
    the day's energy however it is cut into intervals.
    """

    def __init__(self, energy_scale: int = 1) -> None:
        if isinstance(energy_scale, bool) or not isinstance(energy_scale, int):
            raise TypeError("energy_scale must be an int")
        if energy_scale < 1:
            raise ValueError(f"energy_scale must be at least 1, not {energy_scale}")
        self.energy_scale = energy_scale
        self._import_pj = 0
        self._export_pj = 0

    def add(self, power_uw: int, duration_us: int) -> None:
        """Power held for a duration: positive power is imported, negative exported."""
        if duration_us < 0:
            raise ValueError("time does not run backwards")
        energy = power_uw * duration_us * self.energy_scale
        if energy >= 0:
            self._import_pj += energy
        else:
            self._export_pj -= energy

    def close(self) -> tuple[int, int]:
        """The whole Wh imported and exported since the last close; fractions carry over."""
        import_wh, self._import_pj = divmod(self._import_pj, PJ_PER_WH)
        export_wh, self._export_pj = divmod(self._export_pj, PJ_PER_WH)
        return import_wh, export_wh


class StateOfCharge:
    """A storage's energy content in Wh, kept within [0, capacity]."""

    def __init__(self, capacity_wh: int, initial_wh: int = 0) -> None:
        if capacity_wh < 0:
            raise ValueError(f"capacity must not be negative, not {capacity_wh}")
        self.capacity_wh = capacity_wh
        self.wh = self._clamp(initial_wh)

    def _clamp(self, wh: int) -> int:
        return max(0, min(self.capacity_wh, wh))

    def update(self, import_wh: int, export_wh: int) -> int:
        """Charge by what was imported, discharge by what was exported; the new content."""
        self.wh = self._clamp(self.wh + import_wh - export_wh)
        return self.wh

    def set(self, wh: int) -> int:
        """Take a known content (e.g. the settlement's), clamped."""
        self.wh = self._clamp(wh)
        return self.wh
