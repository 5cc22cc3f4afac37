"""Latency histograms: what the arrays mean, outside the hot path.

Workers record with the njit kernel ``record(counts, value_ns)`` (re-exported here); everything in
this module reads: bucket bounds, percentiles, the cumulative buckets Prometheus wants. The array
layout is documented in ``hftshm.metrics.histogram_nb``.

Prometheus export uses a subset of the internal bounds (``EXPORT_BOUNDS_NS``: 1, 1.25, 1.5, 1.75
times each power of two from 64 ns to ~137 s). Every exported bound is an internal bound, so
cumulative counts are exact, not interpolated; 4 bounds per octave keep ``histogram_quantile``
within ~19 % while a histogram costs ~130 series instead of ~600.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hftshm.metrics.histogram_nb import (
    BUCKETS,
    COUNT,
    MAX_NS,
    NEGATIVE,
    OVERFLOW,
    SLOTS,
    SUB_BUCKETS,
    SUM_NS,
    merge_into,
    record,
    record_many,
    upper_bound_ns,
)

__all__ = [
    "BUCKETS",
    "SLOTS",
    "UPPER_NS",
    "EXPORT_BOUNDS_NS",
    "HistogramSummary",
    "new_histogram",
    "record",
    "record_many",
    "merge_into",
    "percentile_ns",
    "summarize",
    "cumulative_buckets",
    "upper_bounds_seconds",
]


def _upper_bounds() -> np.ndarray:
    # computed in Python (not by calling the njit kernel) so importing this module compiles nothing
    bounds = np.empty(BUCKETS, dtype=np.int64)
    for index in range(BUCKETS):
        if index < SUB_BUCKETS:
            bounds[index] = index + 1
        else:
            shift, sub = divmod(index - SUB_BUCKETS, SUB_BUCKETS)
            bounds[index] = (SUB_BUCKETS + sub + 1) << shift
    bounds.setflags(write=False)
    return bounds


#: inclusive upper bound (ns) of every bucket; bucket i holds UPPER_NS[i-1] < v <= UPPER_NS[i]
UPPER_NS: np.ndarray = _upper_bounds()


def _export_indices() -> np.ndarray:
    wanted = []
    for exponent in range(6, 38):  # 64 ns .. 2**37 ns (~137 s)
        for quarter in (4, 5, 6, 7):  # x1, x1.25, x1.5, x1.75
            wanted.append((quarter << exponent) >> 2)
    position = {int(b): i for i, b in enumerate(UPPER_NS)}
    indices = np.array([position[w] for w in wanted], dtype=np.int64)
    indices.setflags(write=False)
    return indices


_EXPORT_INDICES = _export_indices()
#: the bucket bounds (ns) exported as Prometheus ``le`` labels, ascending
EXPORT_BOUNDS_NS: np.ndarray = UPPER_NS[_EXPORT_INDICES]


def new_histogram() -> np.ndarray:
    """A zeroed private histogram (shared ones come from ``MetricsSegment.histogram``)."""
    return np.zeros(SLOTS, dtype=np.int64)


def upper_bounds_seconds(bounds_ns: np.ndarray | None = None) -> list[float]:
    """Bucket bounds in seconds (Prometheus base unit), default the exported ones."""
    bounds = EXPORT_BOUNDS_NS if bounds_ns is None else bounds_ns
    return [int(b) / 1e9 for b in bounds]


def percentile_ns(counts: np.ndarray, q: float) -> float:
    """Value (ns) at quantile ``q`` in [0, 1]: the upper bound of the bucket holding that rank,
    capped at the largest value seen (so it never reports more than was observed). NaN if empty.

    Reports at most one bucket width (6.25 %) above the true value, never below it, as HdrHistogram's
    "highest equivalent value" does: for latency an upper estimate is the safe side.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q!r} must be in [0, 1]")
    buckets = np.asarray(counts[: OVERFLOW + 1], dtype=np.int64)
    total = int(buckets.sum())
    if total <= 0:
        return float("nan")
    rank = max(1, int(np.ceil(q * total)))
    index = int(np.searchsorted(np.cumsum(buckets), rank))
    max_ns = int(counts[MAX_NS])
    if index >= BUCKETS:  # the rank is in the overflow bucket: the max is all we know
        return float(max_ns)
    bound = int(UPPER_NS[index])
    if max_ns > 0:
        bound = min(bound, max_ns)
    return float(bound)


@dataclass(frozen=True)
class HistogramSummary:
    count: int
    sum_ns: int
    negative: int
    max_ns: int
    p50_ns: float
    p99_ns: float
    p999_ns: float

    @property
    def mean_ns(self) -> float:
        positive = self.count - self.negative
        return self.sum_ns / positive if positive > 0 else float("nan")

    def as_dict(self) -> dict:
        return {
            "count": self.count,
            "sum_ns": self.sum_ns,
            "negative": self.negative,
            "max_ns": self.max_ns,
            "mean_ns": self.mean_ns,
            "p50_ns": self.p50_ns,
            "p99_ns": self.p99_ns,
            "p999_ns": self.p999_ns,
        }


def summarize(counts: np.ndarray) -> HistogramSummary:
    """Count, sum, max and p50/p99/p99.9 of one histogram (copy it first if it is being written)."""
    return HistogramSummary(
        count=int(counts[COUNT]),
        sum_ns=int(counts[SUM_NS]),
        negative=int(counts[NEGATIVE]),
        max_ns=int(counts[MAX_NS]),
        p50_ns=percentile_ns(counts, 0.50),
        p99_ns=percentile_ns(counts, 0.99),
        p999_ns=percentile_ns(counts, 0.999),
    )


def cumulative_buckets(counts: np.ndarray) -> tuple[list[tuple[float, int]], int, float]:
    """Prometheus histogram parts: ``[(le_seconds, cumulative_count), ...]`` ending with +Inf,
    the total count and the sum in seconds. Consistent even while a worker writes: the total is
    the +Inf bucket, read from the same copy as the buckets."""
    snapshot = np.array(counts[: OVERFLOW + 1], dtype=np.int64)
    cumulative = np.cumsum(snapshot)
    total = int(cumulative[-1])
    parts = [(int(bound) / 1e9, int(cumulative[index])) for bound, index in zip(EXPORT_BOUNDS_NS, _EXPORT_INDICES)]
    parts.append((float("inf"), total))
    return parts, total, int(counts[SUM_NS]) / 1e9
