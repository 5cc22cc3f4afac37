"""Histogram invariants for arbitrary samples: nothing is lost, percentiles bound the truth from
above within one bucket, exported cumulative buckets are exact."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hftshm.metrics import histogram as h
from hftshm.metrics.histogram_nb import COUNT, MAX_NS, NEGATIVE, OVERFLOW, SUM_NS

values = st.lists(st.integers(min_value=-10**6, max_value=2**42), min_size=1, max_size=300)


@settings(max_examples=200, deadline=None)
@given(values)
def test_every_sample_is_counted_once(samples):
    counts = h.new_histogram()
    h.record_many(counts, np.array(samples, dtype=np.int64))
    arr = np.array(samples)
    assert counts[COUNT] == len(samples) == counts[: OVERFLOW + 1].sum()
    assert counts[NEGATIVE] == int((arr < 0).sum())
    assert counts[SUM_NS] == int(arr[arr > 0].sum())
    assert counts[MAX_NS] == max(0, int(arr.max()))
    assert counts[OVERFLOW] == int((arr > 2**40).sum())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=2**40), min_size=1, max_size=300),
       st.sampled_from([0.0, 0.5, 0.9, 0.99, 0.999, 1.0]))
def test_percentile_is_an_upper_estimate_within_one_bucket(samples, q):
    counts = h.new_histogram()
    h.record_many(counts, np.array(samples, dtype=np.int64))
    exact = float(np.quantile(samples, q, method="inverted_cdf"))
    estimate = h.percentile_ns(counts, q)
    assert exact <= estimate <= max(exact * (1 + 1 / 16), exact + 1)


@settings(max_examples=100, deadline=None)
@given(values)
def test_exported_buckets_are_exact_and_cumulative(samples):
    counts = h.new_histogram()
    h.record_many(counts, np.array(samples, dtype=np.int64))
    parts, total, _ = h.cumulative_buckets(counts)
    arr = np.maximum(np.array(samples), 0)
    assert total == len(samples)
    for le_s, cumulative in parts[:-1]:
        assert cumulative == int((arr <= round(le_s * 1e9)).sum())
