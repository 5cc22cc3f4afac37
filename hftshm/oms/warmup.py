"""Warm the OMS worker's kernels in ``on_start``, with the exact argument types of its steps.

numba compiles a kernel and everything it calls on the first call with a new set of argument
types. The OMS's fast path is one call (``cycle_nb.cycle``) whose types depend on the rings'
layouts and on how many report rings there are (a tuple of that length), and its first step is
the recovery (``OmsEngine.restore``, index look-ups). Calling each once on a scratch engine and
private rings shaped like the real ones compiles (or loads from the cache) the whole call graph
before the worker turns RUNNING, and touches no real state: the real rings may hold records a
restarted OMS must not consume before its recovery.
"""

from __future__ import annotations

import time

import numpy as np

from hftshm.oms import cycle_nb
from hftshm.oms.engine import OmsEngine
from hftshm.runtime import warm_types
from hftshm.transport.ring import Ring

warm_types.install()  # the signatures every other process compiles and caches: one per argument type

_SCRATCH_ORDERS = 64


def _private_like(ring) -> Ring:
    return Ring.private(ring.layout, capacity=64, name=f"warm-{ring.name}")


def warm_oms(worker) -> None:
    """Compile or load the kernels ``worker`` (an ``OmsWorker`` after its ``on_start`` set-up) calls."""
    real = worker.engine
    scratch = OmsEngine(max_orders=_SCRATCH_ORDERS, timeouts_ns=real.timeouts_ns, epoch=1,
                        staging=len(real.out_orders))
    # recovery, the first step: reload rows, then look orders up by id and by client id
    scratch.restore(np.zeros(0, dtype=scratch.orders.dtype))
    scratch.order(1)
    scratch.order_by_client_id(1, 1)
    if worker.events_out is None:
        return  # the in-process writer's slow path only; nothing compiled is on it
    private = [_private_like(r) for r in (worker.orders_in, worker.reports_in, worker.exchange_out,
                                          worker.events_out)]
    reports = [_private_like(r) for r in worker.reports_out]
    rings = cycle_nb.OmsRings(private[0].ctrl, private[0].records, private[1].ctrl, private[1].records,
                              private[2].ctrl, private[2].records, private[3].ctrl, private[3].records)
    cycle_nb.cycle(scratch.book, scratch.ctl, scratch.out, rings, tuple(r.ctrl for r in reports),
                   tuple(r.records for r in reports), np.zeros_like(worker._histogram),
                   np.zeros_like(worker._tick_to_order), np.zeros_like(worker.counters), worker.batch,
                   time.monotonic_ns(), time.time_ns())
    for ring in private + reports:
        ring.close()
