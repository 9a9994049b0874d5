"""Small helpers shared by the benchmarks: percentiles and a results table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and mean, in the values' unit."""
    return {
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


def ms(seconds: float) -> str:
    """Seconds as a millisecond string."""
    return f"{seconds * 1000:.2f} ms"


def table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def median_range(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """ "median M (range LO-HI over N runs)"."""
    ordered = sorted(values)
    middle = statistics.median(ordered)
    low, high = fmt.format(ordered[0]), fmt.format(ordered[-1])
    return f"median {fmt.format(middle)} (range {low}-{high} over {len(ordered)} runs)"


def verdict(values: Sequence[float], target: float, *, at_most: bool = True) -> str:
    """Whether the median of the runs meets the target."""
    middle = statistics.median(values)
    met = middle <= target if at_most else middle >= target
    return f"target {'<=' if at_most else '>='} {target:g}: {'met' if met else 'MISSED'}"
