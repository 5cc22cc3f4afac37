"""Benchmark: what monitoring costs. ``hftshm bench metrics``

* ``histogram.record``: one latency sample recorded from inside an njit loop (the hot-path cost a
  worker pays per measurement), per sample;
* ``snapshot``: one ``PlatformSnapshot`` of a run-shaped set of shared memory (5 workers, 5 rings,
  6 histograms, risk block, strategy rows);
* ``scrape``: one full ``GET /metrics`` through the Flask app (snapshot + every family + text);
* ``jwt.verify``: one token verification (every /api request pays it).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer


def register(bench_app: typer.Typer) -> None:
    bench_app.command("metrics")(metrics_command)


def _timed(fn, repeats: int) -> np.ndarray:
    samples = np.empty(repeats, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(repeats):
        start = clock()
        fn()
        samples[i] = clock() - start
    return samples


def _row(name: str, samples_ns: np.ndarray, per: int = 1) -> dict:
    from hftshm.bench.report import percentiles_ns

    per_op = samples_ns / per
    return {"name": name, "ops_per_s": 1e9 / float(np.mean(per_op)), **percentiles_ns(per_op)}


def metrics_command(
    samples: int = typer.Option(10_000_000, help="latency samples recorded for the histogram benchmark"),
    scrapes: int = typer.Option(300, help="scrapes and snapshots timed"),
    json_path: Path = typer.Option(None, "--json", help="write {\"results\": [...]} here"),
) -> None:
    """Cost of recording a latency, taking a snapshot, serving /metrics, and verifying a JWT."""
    from numba import njit

    from hftshm.bench.report import emit
    from hftshm.metrics.histogram import new_histogram, record
    from hftshm.metrics.rig import MonitoringRig
    from hftshm.security import tokens
    from hftshm.web.app import create_app
    from hftshm.web.config import WebConfig

    @njit(cache=False)
    def record_loop(counts, values):
        for i in range(values.shape[0]):
            record(counts, values[i])

    results = []
    values = np.random.default_rng(1).lognormal(np.log(2000.0), 1.0, samples).astype(np.int64)
    counts = new_histogram()
    record_loop(counts, values[:16])  # compile
    batch = 100_000
    chunks = [values[i:i + batch] for i in range(0, len(values), batch)]
    it = iter(chunks * 2)
    timings = _timed(lambda: record_loop(counts, next(it)), len(chunks))
    results.append(_row("histogram.record (njit, per sample)", timings, per=batch))

    secret = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKL"
    with MonitoringRig() as rig:
        for _ in range(5):
            rig.step(2000)
        view = rig.view()
        results.append(_row("snapshot (5 workers, 5 rings, 6 histograms)", _timed(view.snapshot, scrapes)))
        client = create_app(WebConfig(), view, jwt_secret=secret).test_client()
        client.get("/metrics")
        results.append(_row("scrape GET /metrics (Flask test client)", _timed(lambda: client.get("/metrics"), scrapes)))
        del client, view
    token = tokens.issue(secret, subject="bench", role="ops", ttl_s=600, issuer="hftshm", audience="hftshm-api")
    results.append(_row("jwt.verify (HS256)", _timed(
        lambda: tokens.verify(token, secret, issuer="hftshm", audience="hftshm-api"), scrapes * 10)))
    emit("monitoring costs", results, json_path,
         notes=["Figures from a shared machine; treat them as orders of magnitude.",
                "histogram.record is per sample inside an njit loop (what a worker pays per measurement)."])
