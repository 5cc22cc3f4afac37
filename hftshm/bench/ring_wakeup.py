"""``hftshm bench ring-wakeup``: what each wait strategy costs in wake-up latency and in CPU.

A producer process publishes one stamped record every ``--interval-us``; a consumer process runs the
same loop a worker runner does (``try_read`` as the duty cycle, ``strategy.idle(work)`` after it) with
each wait strategy in turn. Reported per strategy: one-way latency p50/p99/p99.9 (consumer
CLOCK_MONOTONIC - producer stamp) and the consumer's CPU use (CPU seconds per wall second): the price
of low latency when workers outnumber cores. Neither process is pinned, as in a normal deployment.
"""

from __future__ import annotations

import os
import time

import typer

STRATEGY_PARAMS = {"busy-spin": {}, "spin-yield": {"spins": 100}, "spin-park": {"spins": 100, "yields": 20}}


def _produce(name: str, count: int, interval_ns: int) -> None:
    import numpy as np

    from hftshm.transport.ring import Ring

    ring = Ring.attach(name, "market_event", role="producer")
    record = np.zeros((), ring.dtype)
    next_send = time.monotonic_ns()
    for seq in range(count):
        next_send += interval_ns
        while time.monotonic_ns() < next_send:
            time.sleep(0) if next_send - time.monotonic_ns() > 200_000 else None
        record["seq"] = seq
        record["publish_ts_ns"] = time.monotonic_ns()
        ring.write(record)
    ring.close()


def _consume(name: str, count: int, strategy_name: str, conn) -> None:
    import numpy as np

    from hftshm.transport.ring import Ring
    from hftshm.transport.wait import WaitStrategy

    ring = Ring.attach(name, "market_event", role="consumer")
    strategy = WaitStrategy.from_config(strategy_name, **STRATEGY_PARAMS[strategy_name]).bind([ring])
    samples = np.zeros(count, np.int64)
    conn.send("ready")
    received = 0
    cpu_start, wall_start = time.process_time(), time.monotonic()
    while received < count:
        record = ring.try_read()
        if record is not None:
            samples[received] = time.monotonic_ns() - int(record["publish_ts_ns"])
            received += 1
        strategy.idle(record is not None)
    cpu_per_wall = (time.process_time() - cpu_start) / (time.monotonic() - wall_start)
    conn.send((samples, cpu_per_wall, getattr(strategy, "parks", 0), ring.consumer_wakes))
    ring.close()


def measure(strategy_name: str, count: int, interval_ns: int) -> dict:
    import multiprocessing

    from hftshm.bench.report import percentiles_ns
    from hftshm.transport.ring import Ring

    ctx = multiprocessing.get_context("fork")
    name = f"hftshm_{os.getpid()}_bench-wakeup-{strategy_name}"
    with Ring.create(name, "market_event", 1024, replace=True) as ring:
        try:
            parent, child = ctx.Pipe()
            consumer = ctx.Process(target=_consume, args=(name, count, strategy_name, child), daemon=True)
            consumer.start()
            parent.recv()
            producer = ctx.Process(target=_produce, args=(name, count, interval_ns), daemon=True)
            producer.start()
            samples, cpu_per_wall, parks, wakes = parent.recv()
            producer.join()
            consumer.join()
        finally:
            ring.unlink()
    row = {"name": strategy_name, "ops_per_s": 1e9 / interval_ns}
    row.update(percentiles_ns(samples))
    row.update({"consumer_cpu_per_wall_s": cpu_per_wall, "parks": parks, "wakes": wakes})
    return row


def register(bench_app: typer.Typer) -> None:
    bench_app.command("ring-wakeup")(ring_wakeup_command)


def ring_wakeup_command(
    count: int = typer.Option(2_000, "--count", help="records per strategy"),
    interval_us: float = typer.Option(1_000.0, "--interval-us", help="gap between records (long enough to park)"),
    json_path: str = typer.Option(None, "--json", help="write {\"results\": [...]} here"),
) -> None:
    """Wake-up latency and consumer CPU of busy-spin, spin-yield and spin-park (futex doorbell)."""
    from hftshm.bench.report import emit

    from hftshm.transport.ring_nb import try_poll  # noqa: F401  (compile before forking)

    rows = [measure(name, count, int(interval_us * 1000)) for name in STRATEGY_PARAMS]
    emit("hftshm bench ring-wakeup: one record every "
         f"{interval_us:g} us, Python consumer loop", rows, json_path,
         [f"{len(os.sched_getaffinity(0))} CPUs, shared machine: figures are noisy.",
          "spin-park: parks on the ring's futex doorbell after 100 idle spins and 20 yields; "
          "the producer's commit rings it only while it is parked."])
