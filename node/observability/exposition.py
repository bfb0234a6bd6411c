"""The Prometheus text format (version 0.0.4) that `GET /metrics` writes: families of samples
with their HELP and TYPE lines, labels escaped, numbers as Prometheus reads them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def _label(value: Any) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float | int) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Exposition:
    """Families written in order, each with its HELP and TYPE lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_: str,
        samples: Iterable[tuple[dict[str, Any], float | int]],
    ) -> None:
        """Add a metric family with its help, type and samples."""
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if labels:
                inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
                self.lines.append(f"{name}{{{inner}}} {_number(value)}")
            else:
                self.lines.append(f"{name} {_number(value)}")

    def one(self, name: str, kind: str, help_: str, value: float | int) -> None:
        """Add a family of one unlabelled sample."""
        self.family(name, kind, help_, [({}, value)])

    def text(self) -> str:
        """The exposition as text."""
        return "\n".join(self.lines) + "\n"
