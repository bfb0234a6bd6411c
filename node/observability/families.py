"""Small makers of the `prometheus_client` metric families `GET /metrics` yields.

Names are written whole, as they appear in the scrape and in docs/observability.md: a counter's
name ends in `_total`, which `counter` and `counters` take off before handing it to
`CounterMetricFamily` (the library writes it back on every sample). No counter gets a creation
time, so the text has no `_created` samples.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

Samples = Iterable[tuple[object, float]]


def _bare(name: str) -> str:
    if not name.endswith("_total"):
        raise ValueError(f"a counter's name ends in _total: {name}")
    return name.removesuffix("_total")


def gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
    """A gauge of one unlabelled sample."""
    return GaugeMetricFamily(name, help_, value=value)


def gauges(name: str, help_: str, label: str, samples: Samples) -> GaugeMetricFamily:
    """A gauge with one label: a sample for each (label value, value); none is allowed."""
    family = GaugeMetricFamily(name, help_, labels=[label])
    for key, value in samples:
        family.add_metric([str(key)], value)
    return family


def counter(name: str, help_: str, value: float) -> CounterMetricFamily:
    """A counter of one unlabelled sample; `name` ends in `_total`."""
    return CounterMetricFamily(_bare(name), help_, value=value)


def counters(name: str, help_: str, label: str, samples: Samples) -> CounterMetricFamily:
    """A counter with one label; `name` ends in `_total`."""
    family = CounterMetricFamily(_bare(name), help_, labels=[label])
    for key, value in samples:
        family.add_metric([str(key)], value)
    return family
