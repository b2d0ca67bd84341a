"""Compact labelled families for the series kept per environment: one float per series in a dict
(a histogram: its bucket counts and sum in one list), instead of a prometheus_client child object
with a lock per value. Measured: a prometheus_client gauge child costs 720 bytes and a histogram
child 3.2 KB, about 20 KB per environment in all, 200 MB of a daemon's memory at 10,000 of them;
here a series costs its key and a float.

They are prometheus_client collectors all the same (registered in the daemon's registry, read by
``registry.get_sample_value``, ``generate_latest`` and the Pushgateway push alike); ``promtext``
writes them without building a ``Sample`` per series. Used from the event loop only; a scrape in
another thread reads a copy of the dict (one C-level copy, atomic under the GIL)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

Labels = tuple[str, ...]


class _Series(Collector):
    """Series by label values; removed one by one or by a test on their labels."""

    values: dict[Labels, Any]

    def remove(self, labels: Labels) -> None:
        self.values.pop(labels, None)

    def remove_where(self, gone: Callable[[Labels], bool]) -> None:
        for labels in [k for k in self.values if gone(k)]:
            del self.values[labels]


class Family(_Series):
    """A labelled gauge (``kind="gauge"``) or counter (``"counter"``, exposed as ``<name>_total``)."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry, kind: str
    ) -> None:
        self.name = name.removesuffix("_total") if kind == "counter" else name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.kind = kind
        self.values: dict[Labels, float] = {}
        registry.register(self)

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = float(value)

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def ensure(self, labels: Labels) -> None:
        """The series at 0 unless it exists."""
        self.values.setdefault(labels, 0.0)

    def collect(self) -> Iterator[Metric]:
        family: Metric
        if self.kind == "counter":
            family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        else:
            family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in list(self.values.items()):
            family.add_metric(list(labels), value)
        yield family


class HistogramFamily(_Series):
    """A labelled histogram: per series the count in each bucket (the last one +Inf), then the sum."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        buckets: Sequence[float],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.kind = "histogram"
        bounds = sorted(float(b) for b in buckets)
        self.bounds = bounds if bounds and math.isinf(bounds[-1]) else [*bounds, math.inf]
        self.values: dict[Labels, list[float]] = {}
        registry.register(self)

    def ensure(self, labels: Labels) -> None:
        if labels not in self.values:
            self.values[labels] = [0.0] * (len(self.bounds) + 1)

    def observe(self, labels: Labels, value: float) -> None:
        if value != value:  # NaN: in no bucket (as prometheus_client), and it would spoil the sum
            return
        state = self.values.get(labels)
        if state is None:
            state = self.values[labels] = [0.0] * (len(self.bounds) + 1)
        state[bisect.bisect_left(self.bounds, value)] += 1.0  # le: value <= bound
        state[-1] += value

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, state in list(self.values.items()):
            counts = tuple(state)
            cumulative, acc = [], 0.0
            for bound, count in zip(self.bounds, counts, strict=False):
                acc += count
                cumulative.append((go_float(bound), acc))
            family.add_metric(list(labels), cumulative, counts[-1])
        yield family


def go_float(value: float) -> str:
    """A float as prometheus_client writes it (Go's style: the bucket bounds in ``le``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to an exponent sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return text
