"""Benchmark: the real day through the full pipeline at speed 0, on shared-memory rings and on pyzmq.

Each variant runs the configured topology under a supervisor (no web server), from the moment the
feed starts until the feed has finished and every ring is empty. Reported: events per second end to
end, tick-to-order latency (feed publish -> order leaves the OMS) p50/p99/p99.9, and the per-hop
histograms. Variants: placement composite and process-per-worker, each on shm rings and on ZeroMQ
(``hftshm.runtime.zmq_bridge``), so the ratio is measured in one run on one machine.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import typer

from hftshm.config import DEFAULT_CONFIG


def register(bench_app: typer.Typer) -> None:
    bench_app.command("pipeline")(pipeline_command)


def pipeline_command(
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="platform config (its topology and data)"),
    placements: str = typer.Option("composite,process-per-worker", help="comma-separated placements to run"),
    transports: str = typer.Option("shm,zmq", help="comma-separated transports: shm, zmq"),
    json_path: Path = typer.Option(None, "--json", help="write {\"results\": [...]} here"),
) -> None:
    """Real data through feed -> strategies -> risk -> oms -> exchange at speed 0, hftshm rings vs pyzmq."""
    from hftshm.bench.report import emit

    results, hops = [], []
    for transport in [t.strip() for t in transports.split(",") if t.strip()]:
        for placement in [p.strip() for p in placements.split(",") if p.strip()]:
            row, hop_rows = run_variant(config, placement, transport)
            results.append(row)
            hops += hop_rows
    notes = []
    by_key = {(r["transport"], r["placement"]): r for r in results}
    for placement in {r["placement"] for r in results}:
        shm, zmq = by_key.get(("shm", placement)), by_key.get(("zmq", placement))
        if shm and zmq and zmq["ops_per_s"] and shm["p50_ns"] == shm["p50_ns"]:
            notes.append(f"{placement}: hftshm / zmq throughput {shm['ops_per_s'] / zmq['ops_per_s']:.1f}x, "
                         f"tick-to-order p50 zmq / hftshm {zmq['p50_ns'] / shm['p50_ns']:.1f}x")
    emit("pipeline: real day end to end at speed 0", results + hops, json_path, notes)


def run_variant(config_path: Path, placement: str, transport: str) -> tuple[dict, list[dict]]:
    from hftshm.metrics.histogram import summarize
    from hftshm.platform import PlatformConfig
    from hftshm.runtime import status as st
    from hftshm.runtime.platform_run import TICK_TO_ORDER
    from hftshm.runtime.supervisor import Supervisor

    name = "pipeline-hftshm" if transport == "shm" else "pipeline-zmq"
    with tempfile.TemporaryDirectory(prefix="hftshm-bench-") as tmp:
        overrides = {"feed": {"speed": 0.0}, "platform": {"placement": placement, "run_dir": tmp}}
        config = PlatformConfig.load(config_path, overrides)
        with Supervisor(config.topology, config, transport=transport) as sup:
            sup.start()
            deadline = time.monotonic() + 600
            while not sup.finished() and time.monotonic() < deadline:
                sup.poll()
                time.sleep(0.002)
            finished_ns = time.monotonic_ns()
            feed = sup.manifest.worker("feed")
            started_ns = int(sup.status.words[feed.row, st.STARTED_NS])
            published = int(sup.status.counters(feed.row)[feed.counter_names.index("events_published")])
            histograms = sup.metrics.snapshot() if sup.metrics else {}
            sup.shutdown()
    elapsed_s = (finished_ns - started_ns) / 1e9
    headline = summarize(histograms[TICK_TO_ORDER]) if TICK_TO_ORDER in histograms else None
    row = {"name": name, "transport": transport, "placement": placement, "events": published,
           "seconds": round(elapsed_s, 3), "ops_per_s": published / elapsed_s if elapsed_s > 0 else 0.0,
           "p50_ns": headline.p50_ns if headline else float("nan"),
           "p99_ns": headline.p99_ns if headline else float("nan"),
           "p999_ns": headline.p999_ns if headline else float("nan")}
    hop_rows = []
    for hop, counts in sorted(histograms.items()):
        figures = summarize(counts)
        if figures.count and hop != TICK_TO_ORDER:
            hop_rows.append({"name": f"{name}/{placement}/{hop}", "transport": transport, "placement": placement,
                             "events": figures.count, "p50_ns": figures.p50_ns, "p99_ns": figures.p99_ns,
                             "p999_ns": figures.p999_ns})
    return row, hop_rows
