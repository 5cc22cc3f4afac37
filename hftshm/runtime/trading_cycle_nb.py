"""The composite ``trading`` process's duty cycle in compiled code: strategies -> risk -> OMS ->
exchange, round and round, with no Python between a tick and its order.

``run_slice`` keeps looping in compiled code while work flows and while it spins idle, and returns
to Python only

* at the housekeeping cadence (``SliceLimits.slice_ns``), after a pass that found no work (or at
  ``SliceLimits.max_slice_ns`` if work never stops): a pass runs the strategies, then risk, then the
  OMS, so an order caused by a tick the strategies took in a pass is published in that pass, and
  the slice never ends between the two;
* after ``SliceLimits.spin_ns`` without work, when the process's wait strategy parks (spin-park):
  not at all. The slice parks itself on the futex doorbells of every ring the process consumes
  (``transport.park_nb``) and goes on where it stopped when a producer rings, so the tick that
  woke it meets no Python; a park that times out (the park timeout) ends the slice at the next
  idle pass, for housekeeping and heartbeats;
* after ``SliceLimits.spin_ns`` without work otherwise (``SliceEnd.IDLE``): spin-yield yields in
  Python; spin-park's Python parker takes over when an input holds data the stages cannot take
  (a full output: it parks on that output's producer doorbell);
* when a stage needs its Python path (``SliceEnd.NEEDS_PYTHON``: the OMS's event writer is behind).

While it spins idle, every ``SliceLimits.warm_ns`` the slice pulls the stages' small state, the ring
headers, the next slots of the rings it writes and its own machine code back into the caches
(``keep_warm_nb``, the table in ``warm``, a ``WarmSet``) and the lines of the OMS's big tables its
next orders will touch (``oms.next_lines_nb``); risk and the OMS also rehearse their hot path on a
private twin (``runtime.rehearsal_nb``: what goes cold is the code's execution, not only its
bytes). At a real-time pace a tick comes every ~0.6 ms, long enough for all of it to leave the
core's caches, and a tick's pass costs 3-4x as much from cold caches as warm.

The strategies stage is ``strategies_stage_nb.step`` over any set of compiled strategies: their
callbacks travel in its bundle as first-class functions typed by signature (as vectorbt's
``simulate_nb`` takes an ``order_func_nb``), so ``run_slice`` is specialized per set of callback
signatures, not per strategy object, and is cached: a process start or a restart loads it from
numba's cache instead of compiling the four stages again (tens of seconds). Risk, the OMS and the
exchange are the fixed stages ``risk.stage_nb``, ``oms.stage_nb``, ``exchange.stage_nb``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np
from numba import njit

from hftshm.exchange import stage_nb as exchange_stage
from hftshm.oms import stage_nb as oms_stage
from hftshm.risk import stage_nb as risk_stage
from hftshm.runtime import keep_warm_nb
from hftshm.runtime import strategies_stage_nb as strategies_stage
from hftshm.transport import park_nb
from hftshm.transport.clock_nb import monotonic_ns


class SliceEnd(IntEnum):
    """Why ``run_slice`` returned to Python."""

    CADENCE = 0  # housekeeping is due
    IDLE = 1  # spun ``spin_ns`` without work: wait (yield / park) in Python, then call again
    NEEDS_PYTHON = 2  # a stage's slow path must run (the OMS's event ring is full)


# plain ints inside the kernel (one return type on every path)
_CADENCE = int(SliceEnd.CADENCE)
_IDLE = int(SliceEnd.IDLE)
_NEEDS_PYTHON = int(SliceEnd.NEEDS_PYTHON)


class SliceLimits(NamedTuple):
    slice_ns: int  # housekeeping cadence: return after the first idle pass past this
    max_slice_ns: int  # return after this even if every pass found work
    spin_ns: int  # idle time spun before returning IDLE (a huge value: never)
    warm_ns: int  # idle: the working set is prefetched this often (0: never)


class WarmSet(NamedTuple):
    """What an idle slice prefetches (``runtime.keep_warm.working_set``: raw addresses)."""

    regions: np.ndarray  # int64 (n, 3): address, bytes, kind
    rings: np.ndarray  # int64 (m, 4): ctrl address, records address, record bytes, slots
    counts: np.ndarray  # int64 (2,): prefetch passes, cache lines asked for


class SliceResult(NamedTuple):
    end: int  # SliceEnd
    work: int  # records handled by every stage in the slice
    passes: int


_GO_ON = -1


@njit(nogil=True, _nrt=False, inline="always")
def _slice_end(elapsed_ns, idle_ns, work, limits):
    """Why a slice ends after a pass (``_CADENCE``: housekeeping is due; ``_IDLE``: idle for
    ``spin_ns``), or ``_GO_ON``. Busy passes run up to ``max_slice_ns``, idle ones to ``slice_ns``."""
    if work > 0:
        return _CADENCE if elapsed_ns >= limits.max_slice_ns else _GO_ON
    if elapsed_ns >= limits.slice_ns:
        return _CADENCE
    if idle_ns >= limits.spin_ns:
        return _IDLE
    return _GO_ON


@njit(nogil=True, _nrt=False, inline="always")
def _warm_due(limits, now, warmed, work):
    """An idle pass ``limits.warm_ns`` after the last pull (or the last work)."""
    return work == 0 and limits.warm_ns > 0 and now - warmed >= limits.warm_ns


@njit(nogil=True, _nrt=False, inline="always")
def _pull(warm):
    warm.counts[1] += keep_warm_nb.prefetch_working_set(warm.regions, warm.rings)
    warm.counts[0] += 1


@njit(nogil=True, _nrt=False)
def no_lines_ahead(stage, idle_ns):
    """``run_stage``'s idle look-ahead for a stage with none (the OMS's: ``oms.stage_nb.warm``)."""
    return 0


# cached: its signature holds no dispatcher (the callbacks in ``strategies`` are typed by signature),
# so its index pickles; the stages it calls are linked into it and need not be cached themselves
@njit(nogil=True, _nrt=False, cache=True)
def run_slice(strategies, risk, oms, exchange, limits, parking, warm):
    """Loop the four stages until housekeeping is due, the process has been idle ``spin_ns`` (and
    cannot park here: ``parking``, a ``park_nb.ParkBundle``), or a stage needs Python; idle, keep
    ``warm`` (a ``WarmSet``) in the caches. Returns a ``SliceResult``."""
    start = monotonic_ns()
    idle_since = start
    warmed = start
    total = 0
    passes = 0
    while True:
        passes += 1
        work = strategies_stage.step(strategies)
        work += risk_stage.step(risk)
        done = oms_stage.step(oms)
        if done == oms_stage.NEEDS_PYTHON:
            return SliceResult(_NEEDS_PYTHON, total + work, passes)
        work += done
        work += exchange_stage.step(exchange)
        now = monotonic_ns()
        total += work
        if work > 0:
            idle_since = now
        if work > 0:
            warmed = now
        elif _warm_due(limits, now, warmed, work):
            # risk and the OMS rehearse when due (the OMS then prefetches its next orders' lines in
            # its big tables); the working set comes back after the twins' work
            risk_stage.warm(risk, now - idle_since)
            warm.counts[1] += oms_stage.warm(oms, now - idle_since)
            _pull(warm)
            warmed = now
        end = _slice_end(now - start, now - idle_since, work, limits)
        if end == _IDLE and parking.enabled:
            if park_nb.park(parking) == park_nb.HAS_DATA:
                return SliceResult(_IDLE, total, passes)
            idle_since = monotonic_ns()  # spin again after a wake-up before the next park
            continue
        if end != _GO_ON:
            return SliceResult(end, total, passes)


# process-per-worker placement: one stage per process, the same loop around it (not cached either:
# its first argument is a dispatcher)
@njit(nogil=True, _nrt=False)
def run_stage(step, ahead, stage, limits, warm):
    """``run_slice`` for a process that runs one stage: ``step(stage)`` until housekeeping is due,
    ``spin_ns`` idle, or the step returns a negative value (it needs its Python path); idle, keep
    ``warm`` in the caches and call ``ahead(stage, idle_ns)`` (risk and the OMS rehearse; the OMS
    prefetches its next orders' lines)."""
    start = monotonic_ns()
    idle_since = start
    warmed = start
    total = 0
    passes = 0
    while True:
        passes += 1
        work = step(stage)
        if work < 0:
            return SliceResult(_NEEDS_PYTHON, total, passes)
        now = monotonic_ns()
        total += work
        if work > 0:
            idle_since = now
        if work > 0:
            warmed = now
        elif _warm_due(limits, now, warmed, work):
            warm.counts[1] += ahead(stage, now - idle_since)
            _pull(warm)
            warmed = now
        end = _slice_end(now - start, now - idle_since, work, limits)
        if end != _GO_ON:
            return SliceResult(end, total, passes)
