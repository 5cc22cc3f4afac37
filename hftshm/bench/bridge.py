"""``hftshm bench bridge``: ring records through export -> NATS JetStream -> import, between two
processes standing for two platform instances (separate rings, separate NATS connections), beside a
plain shared-memory ring between the same two processes.

* throughput: the producer writes ``--count`` market events back to back into the exporting
  platform's ring; the bridge carries them in batches of ``[bridge] batch_records``; records/s =
  count / (last arrival in the importing platform's ring - first record written); one publish at
  a time (what ships) and pipelined (``--window``, ``.pipelined`` entries), alternating in one run;
* paced latency: one record every ``--interval-us``, stamped (``publish_ts_ns``) when written into
  the exporting ring; one-way latency = the consumer's ``time.monotonic_ns`` when it reads it from
  the importing ring - the stamp. The same pacing through one shared-memory ring gives the local
  figure; the bridge adds the difference.

Needs a NATS server with JetStream (``--url``, default nats://127.0.0.1:4222); the bench uses a
throw-away namespace and deletes its stream afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import time
import uuid
from pathlib import Path

import numpy as np
import typer

from hftshm.bench.report import emit, percentiles_ns

RING_CAPACITY = 1 << 16
WRITE_BATCH = 4096


def _consume(ring_name: str, count: int, importer: dict | None, ready, result) -> None:
    """The importing platform: (an import worker and) a consumer reading ``count`` records."""
    from hftshm.bridge.config import BridgeConfig
    from hftshm.transport.ring import Ring

    worker = None
    if importer:
        from hftshm.bridge.importer import ImportWorker

        worker = ImportWorker(ring_name, importer["subject"])
        worker.on_start(_context("import", BridgeConfig(**importer["config"]), importer["run_dir"],
                                 outputs={ring_name: Ring.attach(ring_name, "market_event", role="producer")}))
    ring = Ring.attach(ring_name, "market_event", role="consumer")
    ready.set()
    latencies = np.empty(count, dtype=np.int64)
    seen = 0
    while seen < count:
        view = ring.poll(WRITE_BATCH)
        n = len(view)
        if n == 0:
            time.sleep(0)  # lets the import worker's NATS thread have the GIL
            continue
        now = time.monotonic_ns()
        latencies[seen: seen + n] = now - view["publish_ts_ns"]
        seen += n
        ring.release(n)
        if worker is not None:
            worker.do_work()
    result.put((time.monotonic_ns(), latencies.tolist() if count <= 200_000 else latencies[-1:].tolist()))
    if worker is not None:
        worker.on_close()


def _context(name, config, run_dir, inputs=None, outputs=None):
    from hftshm.runtime.worker import WorkerContext

    return WorkerContext(name=name, params={}, inputs=inputs or {}, outputs=outputs or {}, config=config,
                         counters=np.zeros(32, np.int64), histograms={}, run_dir=Path(run_dir),
                         log=logging.getLogger(f"hftshm.bench.{name}"))


def _run(config, count: int, interval_ns: int, through_nats: bool, run_dir: Path,
         window: int = 0) -> tuple[float, np.ndarray]:
    """(records/s, latencies ns) for ``count`` records through the bridge (or one local ring)."""
    from hftshm.bridge.export import ExportWorker
    from hftshm.transport.layout import load
    from hftshm.transport.ring import Ring
    from hftshm.transport.testing import unique_name

    ctx = mp.get_context("spawn")
    source = Ring.create(unique_name("bsrc"), "market_event", RING_CAPACITY)
    target = Ring.create(unique_name("bdst"), "market_event", RING_CAPACITY) if through_nats else source
    ready, result = ctx.Event(), ctx.Queue()
    exporter = None
    subject = config.subject(f"bench{uuid.uuid4().hex[:6]}")
    importer = {"subject": subject, "config": config.__dict__, "run_dir": str(run_dir / "import")} if through_nats else None
    consumer = ctx.Process(target=_consume, args=(target.name, count, importer, ready, result), daemon=True)
    try:
        if through_nats:
            exporter = ExportWorker(source.name, subject, window=window)
            exporter.on_start(_context("export", config, run_dir / "export", inputs={source.name: source}))
        consumer.start()
        if not ready.wait(120):
            raise RuntimeError("the importing process did not start")
        template = load("market_event").zeros(WRITE_BATCH)
        template["seq"] = np.arange(WRITE_BATCH)
        written = 0
        started = time.monotonic_ns()
        next_at = started
        while written < count:
            if interval_ns and time.monotonic_ns() < next_at:
                if exporter is not None:
                    exporter.do_work()
                    time.sleep(0)  # lets the export worker's NATS thread have the GIL
                continue
            view = source.claim(1 if interval_ns else min(WRITE_BATCH, count - written))
            n = len(view)
            if n:
                view[:] = template[:n]
                view["seq"] += written
                view["publish_ts_ns"] = time.monotonic_ns()
                source.commit(n)
                written += n
                next_at += interval_ns
            if exporter is not None:
                exporter.do_work()
        while exporter is not None and result.empty():
            exporter.do_work()
            time.sleep(0.0002)
        finished_ns, latencies = result.get(timeout=300)
        consumer.join(30)
        return count / ((finished_ns - started) / 1e9), np.asarray(latencies, dtype=np.int64)
    finally:
        if exporter is not None:
            exporter.on_close()
        if consumer.is_alive():
            consumer.kill()
        for ring in {id(source): source, id(target): target}.values():
            ring.close()
            ring.unlink()


async def _delete_stream(config) -> None:
    import nats

    nc = await nats.connect(config.url)
    try:
        await nc.jetstream().delete_stream(config.stream)
    except Exception:
        pass
    await nc.close()


def bridge_command(
    count: int = typer.Option(2_000_000, "--count", help="back-to-back market events through the bridge"),
    paced_count: int = typer.Option(2_000, "--paced-count", help="paced records per transport"),
    interval_us: float = typer.Option(500.0, "--interval-us", help="gap between paced records"),
    batch: int = typer.Option(8192, "--batch", help="records per NATS message ([bridge] batch_records)"),
    window: int = typer.Option(8, "--window", help="publishes awaiting their PubAck at once in the .pipelined entries "
                               "([bridge] publish_window; what ships publishes one at a time)"),
    url: str = typer.Option("nats://127.0.0.1:4222", "--url", help="NATS server with JetStream"),
    repeat: int = typer.Option(3, "--repeat", help="throughput runs per window setting (median reported)"),
    quick: bool = typer.Option(False, "--quick", help="tiny counts: checks it runs, measures nothing"),
    json_path: str = typer.Option(None, "--json", help="write {\"results\": [...]} here"),
) -> None:
    """Records/s through export -> NATS JetStream -> import between two processes, and the one-way
    latency the bridge adds at a paced rate beside a local shared-memory ring's."""
    import os
    import tempfile

    from hftshm.bridge.config import BridgeConfig

    if quick:
        count, paced_count, repeat = 20_000, 50, 1
    config = BridgeConfig(url=url, namespace=f"bench{uuid.uuid4().hex[:8]}", batch_records=batch, max_bytes=-1)
    load = os.getloadavg()[0]
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp)
            # one publish at a time (what ships, [bridge] publish_window = 1) and pipelined (--window),
            # alternating, the order flipping every round, so both see the same load
            settings = (("", 1), (".pipelined", window))
            rates = {suffix: [] for suffix, _ in settings}
            for i in range(repeat):
                for suffix, w in (settings if i % 2 == 0 else settings[::-1]):
                    rates[suffix].append(_run(config, count, 0, True, run_dir, window=w)[0])
            for suffix, w in settings:
                results.append({"name": "bridge.throughput" + suffix, "ops_per_s": float(np.median(rates[suffix])),
                                "records": count, "batch": batch, "window": w, "runs": repeat,
                                "each_ops_per_s": [round(r) for r in rates[suffix]]})
            interval_ns = int(interval_us * 1000)
            _, local = _run(config, paced_count, interval_ns, False, run_dir)
            _, bridged = _run(config, paced_count, interval_ns, True, run_dir, window=1)
            _, pipelined = _run(config, paced_count, interval_ns, True, run_dir, window=window)
            local_p = percentiles_ns(local)
            bridged_p = percentiles_ns(bridged)
            results.append({"name": "bridge.paced.local_ring", **local_p, "records": paced_count})
            results.append({"name": "bridge.paced.nats", **bridged_p, "records": paced_count, "window": 1})
            results.append({"name": "bridge.paced.added", "p50_ns": bridged_p["p50_ns"] - local_p["p50_ns"],
                            "p99_ns": bridged_p["p99_ns"] - local_p["p99_ns"]})
            results.append({"name": "bridge.paced.nats.pipelined", **percentiles_ns(pipelined), "records": paced_count,
                            "window": window})
    finally:
        asyncio.run(_delete_stream(config))
    emit("bench bridge: ring -> export -> NATS JetStream -> import -> ring", results, json_path,
         notes=[f"load average {load:.2f}; paced interval {interval_us:g} us; target >= 1M records/s batched"],
         width=140)


def register(bench_app: typer.Typer) -> None:
    bench_app.command("bridge")(bridge_command)
