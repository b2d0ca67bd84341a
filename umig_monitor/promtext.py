"""The Prometheus text exposition (format 0.0.4) of a registry: what ``/metrics`` serves and what is
pushed to a Pushgateway. The metrics stay prometheus_client's own (their children, locks and
values); only the text is written here, because prometheus_client's ``generate_latest`` builds a
``Sample`` with a fresh label dict per series and validates and escapes every label name and value
on every scrape: 550 CPU-ms per scrape at 1,000 environments (43,000 series), all of it repeated
work. Here each series' line prefix (name and escaped labels) is built once and kept while the
series lives, so a scrape formats only values.

Counters, gauges and histograms (what the daemon's metrics are) take that path; any other collector
(the process collector, the leader-only families) is written by prometheus_client itself. The
output parses to exactly what ``generate_latest`` gives (``tests/test_promtext.py`` holds the two
side by side), with the same family order."""

from __future__ import annotations

import math
import weakref
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.registry import Collector

from umig_monitor.series import Family, HistogramFamily
from umig_monitor.series import go_float as _go

__all__ = ["exposition"]

FAST = (Counter, Gauge, Histogram)
_WRITERS: weakref.WeakKeyDictionary[Any, _Writer] = weakref.WeakKeyDictionary()  # per metric


def exposition(registry: CollectorRegistry, names: Collection[str] | None = None) -> bytes:
    """The registry in the text format; only the families with these exposed names (a counter's
    with ``_total``) when ``names`` is given."""
    out: list[str] = []
    for collector in _collectors(registry):
        if type(collector) in FAST:
            _fast(collector, names, out)
        elif isinstance(collector, Family | HistogramFamily):
            _ours(collector, names, out)
        else:
            out.append(generate_latest(_Only(collector, names)).decode())
    return "".join(out).encode()


def _collectors(registry: CollectorRegistry) -> list[Collector]:
    # In registration order, as generate_latest writes them. prometheus_client keeps no public list;
    # this is the mapping its own collect() walks (under the same lock).
    with registry._lock:
        return list(registry._collector_to_names)


class _Only(Collector):
    """One collector's families, optionally only those with the given exposed names."""

    def __init__(self, collector: Collector, names: Collection[str] | None) -> None:
        self._collector = collector
        self._names = names

    def collect(self) -> Iterator[Any]:
        for family in self._collector.collect():
            exposed = f"{family.name}_total" if family.type == "counter" else family.name
            if self._names is None or exposed in self._names:
                yield family


def _writer(metric: Any, name: str, kind: str, doc: str, labelnames: Any, bounds: Any) -> _Writer:
    """The family's writer, made on its first scrape and kept as long as the family."""
    writer = _WRITERS.get(metric)
    if writer is None:
        exposed = name + "_total" if kind == "counter" else name
        writer = _WRITERS[metric] = (
            _HistogramWriter(exposed, kind, doc, labelnames, bounds)
            if kind == "histogram"
            else _Writer(exposed, kind, doc, labelnames)
        )
    return writer


def _fast(metric: Any, names: Collection[str] | None, out: list[str]) -> None:
    """A prometheus_client counter, gauge or histogram, from its children's value holders."""
    kind = metric._type
    writer = _writer(
        metric,
        metric._name,
        kind,
        metric._documentation,
        metric._labelnames,
        getattr(metric, "_upper_bounds", ()),
    )
    if names is not None and writer.exposed not in names:
        return
    if metric._labelnames:
        with metric._lock:
            children = list(metric._metrics.items())
    elif metric._is_observable():
        children = [((), metric)]
    else:
        children = []
    out.append(writer.header)
    # The holders' floats, read without their locks: one attribute read is atomic in CPython, and
    # a scrape needs no more (prometheus_client's get() takes the lock to read the same field).
    if kind == "histogram":
        writer.write([(k, (*[b._value for b in c._buckets], c._sum._value)) for k, c in children], out)
    else:
        writer.write([(k, c._value._value) for k, c in children], out)


def _ours(family: Family | HistogramFamily, names: Collection[str] | None, out: list[str]) -> None:
    """One of our compact families (``series``): its dict of values as it is."""
    bounds = family.bounds if isinstance(family, HistogramFamily) else ()
    writer = _writer(family, family.name, family.kind, family.documentation, family.labelnames, bounds)
    if names is not None and writer.exposed not in names:
        return
    out.append(writer.header)
    if isinstance(family, HistogramFamily):
        # Stored as bucket counts then the sum, as the writer takes them; a copy, so that a
        # value changed since is told from the one written last time.
        writer.write([(k, tuple(v)) for k, v in list(family.values.items())], out)
    else:
        writer.write(list(family.values.items()), out)


class _Writer:
    """One family's lines. Per series it keeps its line prefix (name and escaped labels), and its
    last value with the text written for it: a series unchanged since the last scrape (most are:
    the status of each outcome, failure counts, deployment counts) is the same string again."""

    def __init__(self, exposed: str, kind: str, documentation: str, labelnames: Any) -> None:
        doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
        self.header = f"# HELP {exposed} {doc}\n# TYPE {exposed} {kind}\n"
        self.exposed = exposed
        self._labelnames: tuple[str, ...] = tuple(labelnames)
        self._kept: dict[tuple[str, ...], list[Any]] = {}

    def write(self, children: list[tuple[tuple[str, ...], Any]], out: list[str]) -> None:
        """The text of each (labels, value), from what was kept where the value is the same."""
        kept = self._kept
        for labels, value in children:
            entry = kept.get(labels)
            if entry is None:
                entry = kept[labels] = [self.prefix(labels), None, ""]
            elif entry[1] == value:  # a NaN float never equals itself (a tuple holding the same NaN does)
                out.append(entry[2])
                continue
            entry[1] = value
            entry[2] = text = self.render(entry[0], value)
            out.append(text)
        # Series removed since (an environment moved away) leave their entry behind: drop them all
        # now and then; the live ones are rebuilt on the next scrape.
        if len(kept) > 2 * len(children) + 64:
            kept.clear()

    def prefix(self, labels: tuple[str, ...]) -> Any:
        return f"{self.exposed}{_labels(zip(self._labelnames, labels, strict=True))} "

    def render(self, prefix: Any, value: Any) -> str:
        # v - v is 0.0 exactly when v is finite: cheaper than a call, on every changed line.
        return f"{prefix}{repr(value) if value - value == 0 else _go(value)}\n"


class _HistogramWriter(_Writer):
    """A histogram's block of lines per series; its value is (count in each bucket..., sum)."""

    def __init__(self, exposed: str, kind: str, documentation: str, labelnames: Any, bounds: Any) -> None:
        super().__init__(exposed, kind, documentation, labelnames)
        self._bounds = [_go(b) for b in bounds]

    def prefix(self, labels: tuple[str, ...]) -> tuple[list[str], str, str]:
        pairs = list(zip(self._labelnames, labels, strict=True))
        buckets = [f"{self.exposed}_bucket{_labels([*pairs, ('le', le)])} " for le in self._bounds]
        plain = _labels(pairs)
        return buckets, f"{self.exposed}_count{plain} ", f"{self.exposed}_sum{plain} "

    def render(self, prefix: Any, value: Any) -> str:
        buckets, count, total = prefix
        lines = []
        acc = 0.0
        for bucket, observed in zip(buckets, value[:-1], strict=True):
            acc += observed  # counts: finite
            lines.append(f"{bucket}{acc!r}\n")
        lines.append(f"{count}{acc!r}\n{total}{_number(value[-1])}\n")
        return "".join(lines)


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    ordered = sorted(pairs)  # as generate_latest writes them
    if not ordered:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in ordered) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    """A sample value: Python's shortest repr (any float the format accepts)."""
    if math.isfinite(value):
        return repr(float(value))
    return _go(value)
