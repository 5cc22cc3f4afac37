"""The OMS's ring step as one kernel over a named bundle, for the compiled trading cycle.

``step(stage)`` is ``OmsWorker.do_work``'s fast path (``cycle_nb.cycle``) with the idle check in
front, callable from compiled code: no Python and no argument unboxing between risk's order and
its publish to the exchange. It returns ``NEEDS_PYTHON`` when the order-event writer's ring is full:
the worker's slow path (the spill file, the backlog policy) then runs in Python.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from hftshm.oms.cycle_nb import EVENTS_FULL, cycle
from hftshm.oms.next_lines_nb import prefetch_next
from hftshm.oms.rehearsal_nb import OmsRehearsal, rehearse_when_due
from hftshm.oms.oms_nb import O_NEXT_DEADLINE
from hftshm.transport.clock_nb import _clock_gettime_ns, monotonic_ns
from hftshm.transport.ring_nb import has_data

NEEDS_PYTHON = -1  # the writer's ring is full: the worker's Python slow path must run
CLOCK_REALTIME = 0


class OmsStage(NamedTuple):
    """``OmsEngine``'s state and the worker's rings, as ``cycle_nb.cycle`` takes them."""

    book: tuple  # OmsEngine.book
    ctl: tuple  # OmsEngine.ctl
    out: tuple  # OmsEngine.out (staging)
    rings: tuple  # cycle_nb.OmsRings
    report_ctrls: tuple  # one per execution_report output ring (strategies, risk)
    report_records: tuple
    words: np.ndarray  # OmsEngine.words (the next ack deadline)
    hop_histogram: np.ndarray
    tick_to_order: np.ndarray
    counters: np.ndarray
    batch: int
    rehearsal: OmsRehearsal  # the twin idle passes rehearse the order path on (oms.rehearsal_nb)


@njit(cache=True, nogil=True, inline="always")
def realtime_ns():
    """CLOCK_REALTIME in ns (``time.time_ns()``): the OMS stamps events with wall time."""
    return _clock_gettime_ns(CLOCK_REALTIME)


@njit(cache=True, nogil=True, _nrt=False)
def step(stage):
    """One OMS duty cycle; records handled, 0 when idle, ``NEEDS_PYTHON`` when the writer is behind."""
    now = monotonic_ns()
    if (not has_data(stage.rings.orders_ctrl) and not has_data(stage.rings.reports_ctrl)
            and now < stage.words[O_NEXT_DEADLINE]):
        return 0
    work = cycle(stage.book, stage.ctl, stage.out, stage.rings, stage.report_ctrls, stage.report_records,
                 stage.hop_histogram, stage.tick_to_order, stage.counters, stage.batch, now, realtime_ns())
    if work == EVENTS_FULL:
        return NEEDS_PYTHON
    return work


@njit(cache=True, nogil=True, _nrt=False)
def warm(stage, idle_ns):
    """Idle ``idle_ns``: rehearse the order path when due (``rehearsal_nb``), then prefetch the lines
    the next orders will touch (``next_lines_nb``); returns the lines asked for."""
    rehearse_when_due(stage.rehearsal, idle_ns, monotonic_ns(), realtime_ns())
    return prefetch_next(stage.book, stage.ctl)
