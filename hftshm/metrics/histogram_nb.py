"""numba kernels over a log-linear latency histogram (an int64 array, usually a shared-memory view).

Layout of one histogram array (``SLOTS`` int64 words)::

    [0, BUCKETS)     counts per bucket; bucket i holds values v with UPPER_NS[i-1] < v <= UPPER_NS[i]
    OVERFLOW         values above the largest bound (exported in the +Inf bucket)
    COUNT            number of recorded values (negatives included)
    SUM_NS           sum of recorded values (negatives counted as 0)
    NEGATIVE         values below 0, clamped into bucket 0: a clock went backwards, worth seeing
    MAX_NS           largest recorded value

Buckets are HDR-like: exact up to 16 ns, then 16 linear sub-buckets per power of two, so a bucket
is never wider than 1/16 (6.25 %) of its values, and the index is a count-leading-zeros plus shifts.
Only the owning worker writes (single writer, no locks); readers may see a count a few records
ahead of another, which a scrape tolerates. ``(lo, hi]`` buckets make Prometheus ``le`` exact.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros

SUB_BUCKET_BITS = 4
SUB_BUCKETS = 1 << SUB_BUCKET_BITS  # 16 linear sub-buckets per power of two
MAX_EXPONENT = 40  # values above 2**40 ns (~18 min) overflow
BUCKETS = SUB_BUCKETS + (MAX_EXPONENT - SUB_BUCKET_BITS) * SUB_BUCKETS  # 592

OVERFLOW = BUCKETS
COUNT = BUCKETS + 1
SUM_NS = BUCKETS + 2
NEGATIVE = BUCKETS + 3
MAX_NS = BUCKETS + 4
SLOTS = BUCKETS + 8  # a few spare words keep each histogram a multiple of 64 bytes


@njit(cache=True, inline="always")
def bucket_index(value_ns: np.int64) -> np.int64:
    """Bucket of a value >= 1 ns (callers clamp); BUCKETS means overflow."""
    # (lo, hi] buckets: index the value minus one so an exact bound lands in the bucket it closes
    u = np.uint64(value_ns - 1)
    if u < np.uint64(SUB_BUCKETS):
        return np.int64(u)
    exponent = np.int64(63 - leading_zeros(u))  # floor(log2(u)) >= SUB_BUCKET_BITS
    if exponent >= MAX_EXPONENT:
        return np.int64(BUCKETS)
    shift = exponent - SUB_BUCKET_BITS
    sub = np.int64(u >> np.uint64(shift)) - SUB_BUCKETS  # 0..15
    return SUB_BUCKETS + shift * SUB_BUCKETS + sub


@njit(cache=True)
def record(counts: np.ndarray, value_ns: np.int64) -> None:
    """Add one latency sample (ns) to ``counts``; a few ns, no allocation, never raises."""
    v = np.int64(value_ns)
    counts[COUNT] += 1
    if v <= 0:
        if v < 0:
            counts[NEGATIVE] += 1
        counts[0] += 1
        return
    counts[bucket_index(v)] += 1  # BUCKETS is the OVERFLOW slot
    counts[SUM_NS] += v
    if v > counts[MAX_NS]:
        counts[MAX_NS] = v


@njit(cache=True)
def record_many(counts: np.ndarray, values_ns: np.ndarray) -> None:
    """``record`` over an array of samples (benchmarks, tests, batch recorders)."""
    for i in range(values_ns.shape[0]):
        record(counts, values_ns[i])


@njit(cache=True)
def upper_bound_ns(index: np.int64) -> np.int64:
    """Inclusive upper bound (ns) of bucket ``index`` (0 <= index < BUCKETS)."""
    if index < SUB_BUCKETS:
        return index + 1
    shift = (index - SUB_BUCKETS) // SUB_BUCKETS
    sub = (index - SUB_BUCKETS) % SUB_BUCKETS
    # largest u in the bucket is ((SUB_BUCKETS + sub + 1) << shift) - 1, and v = u + 1
    return (SUB_BUCKETS + sub + 1) << shift


@njit(cache=True)
def merge_into(target: np.ndarray, source: np.ndarray) -> None:
    """Add histogram ``source`` to ``target`` (e.g. summing the same stage over workers)."""
    for i in range(COUNT + 1):
        target[i] += source[i]
    target[SUM_NS] += source[SUM_NS]
    target[NEGATIVE] += source[NEGATIVE]
    if source[MAX_NS] > target[MAX_NS]:
        target[MAX_NS] = source[MAX_NS]
