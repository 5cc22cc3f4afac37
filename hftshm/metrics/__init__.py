"""Metrics: latency histograms in shared memory and their Prometheus export."""
