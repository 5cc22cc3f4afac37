"""Helpers for the bridge tests: worker contexts on test rings, a fresh JetStream namespace per test."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from pathlib import Path

import numpy as np

from hftshm.bridge.config import BridgeConfig, stream_name
from hftshm.runtime.worker import WorkerContext

NATS_URL = "nats://127.0.0.1:4222"
NATS_START = ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/nats-server", "--",
              "-a", "127.0.0.1", "-p", "4222", "-js", "-sd", "/var/lib/nats-server"]


def context(name: str, config: BridgeConfig, run_dir: Path, inputs=None, outputs=None) -> WorkerContext:
    """A worker context in ``run_dir``, which gets a run manifest's start time as a supervisor's run
    has one: workers started again in the same ``run_dir`` belong to the same run."""
    manifest = Path(run_dir) / "current.json"
    if not manifest.exists():
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text('{"started_ns": %d}' % time.time_ns())
    return WorkerContext(name=name, params={}, inputs=inputs or {}, outputs=outputs or {}, config=config,
                         counters=np.zeros(32, np.int64), histograms={}, run_dir=Path(run_dir),
                         log=logging.getLogger(f"test.{name}"))


def counters(worker) -> dict[str, int]:
    return {name: int(worker.ctx.counters[i]) for i, name in enumerate(worker.COUNTER_NAMES)}


async def _delete_stream(namespace: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=3)
    try:
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(stream_name(namespace))
    finally:
        await nc.close()


def delete_stream(namespace: str) -> None:
    asyncio.run(_delete_stream(namespace))


@contextlib.contextmanager
def fresh_namespace(**settings):
    """A BridgeConfig on a namespace no other test uses; its stream is deleted afterwards."""
    namespace = "t" + uuid.uuid4().hex[:10]
    try:
        yield BridgeConfig(url=NATS_URL, namespace=namespace, **settings)
    finally:
        asyncio.run(_delete_stream(namespace))


def publish_raw(config: BridgeConfig, subject: str, messages: list[bytes]) -> None:
    """Publish hand-made batches (redeliveries, gaps, foreign layouts) straight into the stream."""
    import nats

    from hftshm.bridge.nats_thread import ensure_stream

    async def run():
        nc = await nats.connect(config.url)
        js = nc.jetstream()
        await ensure_stream(js, config)
        for message in messages:
            await js.publish(subject, message)
        await nc.close()

    asyncio.run(run())


def market_events(first: int, n: int) -> np.ndarray:
    from hftshm.transport import layout

    records = layout.load("market_event").zeros(n)
    records["seq"] = np.arange(first, first + n)
    records["price"] = 60000.0 + np.arange(n) * 0.1
    return records


def drain_ring(ring, into: list, max_n: int = 65536) -> int:
    view = ring.poll(max_n)
    into.extend(view["seq"].tolist())
    ring.release(len(view))
    return len(view)


def run_importer(ring_name: str, subject: str, namespace: str, run_dir: str) -> None:
    """An import worker alone in this process, duty cycle until killed (``python -m tests.bridge_helpers``)."""
    from hftshm.bridge.importer import ImportWorker
    from hftshm.transport.ring import Ring

    ring = Ring.attach(ring_name, "market_event", role="producer", takeover=True)
    worker = ImportWorker(ring_name, subject)
    worker.on_start(context("import", BridgeConfig(url=NATS_URL, namespace=namespace), Path(run_dir),
                            outputs={ring_name: ring}))
    print("ready", flush=True)
    while True:
        worker.do_work()
        time.sleep(0.001)


def run_exporter(ring_name: str, subject: str, namespace: str, run_dir: str) -> None:
    """An export worker alone in this process, duty cycle until killed."""
    from hftshm.bridge.export import ExportWorker
    from hftshm.transport.ring import Ring

    ring = Ring.attach(ring_name, "market_event", role="consumer", takeover=True)
    worker = ExportWorker(ring_name, subject)
    worker.on_start(context("export", BridgeConfig(url=NATS_URL, namespace=namespace, batch_records=256,
                                                         publish_window=8),
                            Path(run_dir), inputs={ring_name: ring}))
    print("ready", flush=True)
    while True:
        if not worker.do_work():
            time.sleep(0.0005)


if __name__ == "__main__":
    import sys

    {"import": run_importer, "export": run_exporter}[sys.argv[1]](*sys.argv[2:6])
