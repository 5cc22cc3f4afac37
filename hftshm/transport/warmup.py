"""Compile (or load from the numba cache) the transport kernels a process calls from Python.

The ring's Python API (``claim``/``commit``/``poll``/``release``/``try_write``/...), the parker of
the spin-park wait strategy and a blocked producer's ``wait_for_space`` each call small numba
kernels over a ring header. Every one has a single signature (an int64 header array and int64 or
bool scalars), so exercising each path once on a private ring, before the first duty cycle, means
no step of the process ever stops to compile one (a fresh checkout: 0.1-0.4 s each; a cache load:
milliseconds). The worker process calls ``warm_transport`` before its workers' ``on_start``.
"""

from __future__ import annotations

from hftshm.runtime import warm_types
from hftshm.transport.ring import Ring

warm_types.install()  # before this process compiles its first kernel: one signature per argument type


def warm_transport() -> None:
    """Run every Python-side ring, doorbell and parking path once on private rings (no sleep
    longer than a zero timeout, nothing in shared memory)."""
    from hftshm.runtime.compile_cache import record_process_if_asked
    from hftshm.transport.doorbell import Parker, wait_for_space

    record_process_if_asked()  # `compile_cache record run`: this process writes what it compiles
    from hftshm.transport.wait import WaitStrategy

    ring = Ring.private("market_event", capacity=4)
    ring.register_producer()
    ring.register_consumer()
    record = ring.records[0].copy()
    view = ring.claim(2)
    ring.commit(len(view))
    ring.try_write(record)
    ring.write(record, timeout_s=0.0)
    ring.occupancy()
    ring.wake_consumer()
    ring.wake_producer()
    ring.count_drops(0)
    ring.wait_for_space(1, 0.0)  # full: arms the producer park, sleeps 0 s
    wait_for_space(ring.ctrl, 1, 0.0)
    # a parker whose input holds data and whose output is full takes the producer-park branch
    Parker([ring], 0.0, outputs=[ring]).park(0.0)
    view = ring.poll(4)
    ring.release(len(view))
    ring.try_read()
    ring.heartbeat()
    # an empty input: the consumer-park branch, a zero-timeout sleep on one doorbell and on several
    Parker([ring], 0.0).park(0.0)
    other = Ring.private("market_event", capacity=4)
    Parker([ring, other], 0.0).park(0.0)
    for name in ("spin-park", "spin-yield", "busy-spin"):
        strategy = WaitStrategy.from_config(name).bind(inputs=[ring], outputs=[ring])
        strategy.await_space(ring, 1, timeout_s=0.0)
    ring.close()
    other.close()
