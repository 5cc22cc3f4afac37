"""Histogram kernels and readers: bucket mapping, clamping, percentiles, Prometheus parts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftshm.metrics import histogram as h
from hftshm.metrics import histogram_nb as hnb


def reference_index(value_ns: int) -> int:
    """Bucket index by definition: the first bucket whose upper bound is >= value."""
    return int(np.searchsorted(h.UPPER_NS, value_ns, side="left"))


def test_bounds_are_increasing_and_relative_width_is_bounded():
    bounds = h.UPPER_NS.astype(np.float64)
    assert np.all(np.diff(bounds) > 0)
    assert h.UPPER_NS[0] == 1 and h.UPPER_NS[15] == 16 and h.UPPER_NS[-1] == 2**40
    # bucket i > 15 spans (bounds[i-1], bounds[i]]: never wider than 1/16 of its lower bound
    widths = np.diff(bounds)[15:]
    assert np.max(widths / bounds[15:-1]) <= 1 / 16 + 1e-12


@pytest.mark.parametrize("value", [1, 2, 15, 16, 17, 18, 31, 32, 33, 34, 35, 1000, 1023, 1024, 1025,
                                    123_456, 10**9, 2**40 - 1, 2**40])
def test_bucket_index_matches_definition(value):
    assert hnb.bucket_index(value) == reference_index(value)
    assert hnb.upper_bound_ns(hnb.bucket_index(value)) == h.UPPER_NS[hnb.bucket_index(value)]


def test_bucket_index_random_values_match_definition():
    rng = np.random.default_rng(7)
    values = np.unique(np.concatenate([rng.integers(1, 2**40, 5000), 2 ** np.arange(41), 2 ** np.arange(41) + 1]))
    values = values[(values >= 1) & (values <= 2**40)]
    got = np.array([hnb.bucket_index(int(v)) for v in values])
    want = np.searchsorted(h.UPPER_NS, values, side="left")
    assert np.array_equal(got, want)


def test_record_counts_negatives_zero_and_overflow():
    counts = h.new_histogram()
    for v in (-5, -1, 0, 1, 100, 2**41):
        h.record(counts, v)
    assert counts[hnb.COUNT] == 6
    assert counts[hnb.NEGATIVE] == 2
    assert counts[0] == 4  # -5, -1, 0 clamp to bucket 0, and 1 belongs there
    assert counts[hnb.OVERFLOW] == 1
    assert counts[hnb.SUM_NS] == 1 + 100 + 2**41
    assert counts[hnb.MAX_NS] == 2**41
    assert counts[: hnb.OVERFLOW + 1].sum() == counts[hnb.COUNT]


def test_percentiles_are_upper_estimates_within_a_bucket():
    rng = np.random.default_rng(1)
    samples = rng.lognormal(mean=8.0, sigma=1.0, size=200_000).astype(np.int64) + 1
    counts = h.new_histogram()
    h.record_many(counts, samples)
    for q in (0.5, 0.99, 0.999):
        exact = float(np.quantile(samples, q, method="inverted_cdf"))
        estimate = h.percentile_ns(counts, q)
        assert exact <= estimate <= exact * (1 + 1 / 16) + 1
    summary = h.summarize(counts)
    assert summary.count == len(samples)
    assert summary.max_ns == samples.max()
    assert summary.p50_ns <= summary.p99_ns <= summary.p999_ns <= summary.max_ns
    assert math.isclose(summary.mean_ns, samples.mean())


def test_percentile_of_small_exact_values_is_exact_and_empty_is_nan():
    counts = h.new_histogram()
    h.record_many(counts, np.array([3, 3, 3, 7], dtype=np.int64))
    assert h.percentile_ns(counts, 0.5) == 3.0
    assert h.percentile_ns(counts, 1.0) == 7.0
    assert math.isnan(h.percentile_ns(h.new_histogram(), 0.5))
    with pytest.raises(ValueError):
        h.percentile_ns(counts, 1.5)


def test_cumulative_buckets_are_exact_at_exported_bounds():
    rng = np.random.default_rng(3)
    samples = rng.integers(1, 10**10, 20_000)
    counts = h.new_histogram()
    h.record_many(counts, samples)
    parts, total, sum_s = h.cumulative_buckets(counts)
    assert total == len(samples)
    assert parts[-1] == (math.inf, len(samples))
    for le_s, cumulative in parts[:-1]:
        assert cumulative == int(np.sum(samples <= round(le_s * 1e9)))
    assert [p[1] for p in parts] == sorted(p[1] for p in parts)
    assert math.isclose(sum_s, samples.sum() / 1e9)
    assert set(h.EXPORT_BOUNDS_NS.tolist()) <= set(h.UPPER_NS.tolist())


def test_merge_into_adds_histograms():
    a, b = h.new_histogram(), h.new_histogram()
    h.record_many(a, np.array([10, 20], dtype=np.int64))
    h.record_many(b, np.array([-1, 5000], dtype=np.int64))
    h.merge_into(a, b)
    assert a[hnb.COUNT] == 4 and a[hnb.NEGATIVE] == 1 and a[hnb.MAX_NS] == 5000 and a[hnb.SUM_NS] == 5030
