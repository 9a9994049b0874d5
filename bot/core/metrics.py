"""A small thread-safe metrics registry rendered in the Prometheus text format."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable

Labels = tuple[tuple[str, str], ...]
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Counters, histograms and gauges (computed on scrape) under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._help: dict[str, tuple[str, str]] = {}
        self._counters: dict[str, dict[Labels, float]] = {}
        self._histograms: dict[str, tuple[tuple[float, ...], dict[Labels, list[float]]]] = {}
        self._gauges: dict[str, Callable[[], Iterable[tuple[Labels, float]]]] = {}

    def inc(self, name: str, help_text: str, amount: float = 1.0, **labels: str) -> None:
        """Add to a counter."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._help.setdefault(name, ("counter", help_text))
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0.0) + amount

    def observe(
        self,
        name: str,
        help_text: str,
        value: float,
        buckets: tuple[float, ...] = DURATION_BUCKETS,
        **labels: str,
    ) -> None:
        """Record one observation in a histogram."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._help.setdefault(name, ("histogram", help_text))
            bounds, series = self._histograms.setdefault(name, (buckets, {}))
            # counts per bucket, then the sum and the count
            data = series.setdefault(key, [0.0] * (len(bounds) + 2))
            index = bisect.bisect_left(bounds, value)
            for i in range(index, len(bounds)):
                data[i] += 1
            data[-2] += value
            data[-1] += 1

    def gauge(
        self, name: str, help_text: str, read: Callable[[], Iterable[tuple[Labels, float]]]
    ) -> None:
        """Register a gauge whose series are read at scrape time."""
        with self._lock:
            self._help[name] = ("gauge", help_text)
            self._gauges[name] = read

    def value(self, name: str, **labels: str) -> float:
        """The current value of a counter series (0 if never incremented)."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            return self._counters.get(name, {}).get(key, 0.0)

    def render(self) -> str:
        """Everything, in the Prometheus text exposition format."""
        lines: list[str] = []
        with self._lock:
            helps = dict(self._help)
            counters = {k: dict(v) for k, v in self._counters.items()}
            histograms = {
                k: (b, {lk: list(d) for lk, d in s.items()})
                for k, (b, s) in self._histograms.items()
            }
            gauges = dict(self._gauges)
        for name in sorted(helps):
            kind, help_text = helps[name]
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            if kind == "counter":
                for labels, value in sorted(counters.get(name, {}).items()):
                    lines.append(f"{name}{_labels(labels)} {value:g}")
            elif kind == "gauge":
                try:
                    series = list(gauges[name]())
                except Exception:  # a gauge that cannot be read is left out of this scrape
                    series = []
                for labels, value in series:
                    lines.append(f"{name}{_labels(labels)} {value:g}")
            else:
                bounds, series_map = histograms[name]
                for labels, data in sorted(series_map.items()):
                    for bound, count in zip(bounds, data, strict=False):
                        le = (*labels, ("le", f"{bound:g}"))
                        lines.append(f"{name}_bucket{_labels(le)} {count:g}")
                    inf = (*labels, ("le", "+Inf"))
                    lines.append(f"{name}_bucket{_labels(inf)} {data[-1]:g}")
                    lines.append(f"{name}_sum{_labels(labels)} {data[-2]:g}")
                    lines.append(f"{name}_count{_labels(labels)} {data[-1]:g}")
        return "\n".join(lines) + "\n"
