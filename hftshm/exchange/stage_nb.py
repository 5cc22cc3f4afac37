"""The simulated exchange's ring step as one kernel over a named bundle, for the compiled trading
cycle: orders in (queued at their arrival time), market events in (each preceded by the orders due
by then), reports out to every report ring. The same ``fill_model_nb`` kernels as
``ExchangeSimulator``, so the fills are the same as the Python stage's for the same interleaving.

Only the free-running case is compiled: no parity hold-back, no deterministic lockstep, a session
that is logged on and no reports held back by the Python path (``ExchangeWorker.compiled_stage``
offers the stage only then).

Back-pressure: the kernels write reports into the staging buffer ``out`` (it holds the worst case of
a batch, as ``ExchangeSimulator``'s does); what the report rings cannot take now stays there
(``OutQueue``) and goes out first at the next step, which takes no input until it has: wait, never
drop. If the cycle hands over to the Python path meanwhile, ``ExchangeWorker`` moves the rest into
its own backlog before anything else.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np
from numba import njit

from hftshm.codes import Action
from hftshm.exchange.fill_model_nb import SW_CLOCK, SW_PEND_HEAD, SW_PEND_TAIL, apply_due, enqueue_orders, run_events
from hftshm.metrics.histogram_nb import record as record_latency
from hftshm.transport.clock_nb import monotonic_ns
from hftshm.transport.ring_nb import (capacity, claimable, commit, consumer_position, has_data, release, try_claim,
                                     try_poll)

WATERMARK_ACTION = 0  # an order-ring record with this action only carries the upstream watermark


class OutQueue(IntEnum):
    """Slots of ``ExchangeStage.out_queue``: reports staged in ``out`` and not yet published."""

    HEAD = 0  # first unpublished report in ``out``
    TAIL = 1  # one past the last
    SIZE = 2


class ExchangeCounters(NamedTuple):
    """Indexes of the worker's status-row counters this step moves."""

    orders_in: int
    events_in: int
    reports_out: int
    watermarks: int


class ExchangeStage(NamedTuple):
    order_ctrl: np.ndarray  # orders from the OMS
    order_records: np.ndarray
    market_ctrl: np.ndarray  # the real market, from the feed
    market_records: np.ndarray
    report_ctrls: tuple  # execution_report outputs (normally one, to the OMS)
    report_records: tuple
    sim: tuple  # ExchangeSimulator.kernel_state's S
    pend: np.ndarray
    pend_arrival: np.ndarray
    room_per_order: int
    out: np.ndarray  # report staging (execution_report records), at least 2 x room_per_order
    out_queue: np.ndarray  # OutQueue
    scratch_orders: np.ndarray  # the admitted orders of one batch (order records)
    watermark: np.ndarray  # int64[1]: the upstream watermark seen in the order ring
    hop_histogram: np.ndarray  # OMS publish -> the exchange takes the order, ns
    counters: np.ndarray
    counter_slots: ExchangeCounters
    batch: int


@njit(cache=True, nogil=True, _nrt=False)
def _report_room(stage, want):
    """Reports (<= ``want``) every output ring can take now."""
    room = want
    for k in range(len(stage.report_ctrls)):
        room = min(room, claimable(stage.report_ctrls[k], room))
    return room


@njit(cache=True, nogil=True, _nrt=False)
def flush(stage):
    """Publish the staged reports every ring has room for, stamped with the publish time and each
    ring's dense sequence. Returns how many are still staged."""
    q = stage.out_queue
    head = q[OutQueue.HEAD]
    n = _report_room(stage, q[OutQueue.TAIL] - head)
    if n > 0:
        now = monotonic_ns()
        for k in range(len(stage.report_ctrls)):
            ctrl = stage.report_ctrls[k]
            records = stage.report_records[k]
            mask = records.shape[0] - 1
            seq = try_claim(ctrl, n)
            for t in range(n):
                slot = (seq + t) & mask
                records[slot] = stage.out[head + t]
                records[slot].local_ts_ns = now
                records[slot].seq = seq + t
            commit(ctrl, seq, n)
        stage.counters[stage.counter_slots.reports_out] += n
        q[OutQueue.HEAD] = head + n
    if q[OutQueue.HEAD] == q[OutQueue.TAIL]:
        q[OutQueue.HEAD] = 0
        q[OutQueue.TAIL] = 0
    return q[OutQueue.TAIL] - q[OutQueue.HEAD]


@njit(cache=True, nogil=True, _nrt=False)
def _staged(stage, j):
    """The kernels wrote ``out[:j]`` (the queue was empty): publish what fits."""
    stage.out_queue[OutQueue.HEAD] = 0
    stage.out_queue[OutQueue.TAIL] = j
    flush(stage)


@njit(cache=True, nogil=True, _nrt=False)
def take_orders(stage):
    """Queue a batch of orders (watermarks noted, LOGON records skipped) and answer those due."""
    sw = stage.sim[11]
    pending_free = stage.pend.shape[0] - (sw[SW_PEND_TAIL] - sw[SW_PEND_HEAD])
    limit = min(stage.batch, stage.scratch_orders.shape[0], pending_free)
    if limit <= 0:
        return 0
    n = try_poll(stage.order_ctrl, limit)
    if n == 0:
        return 0
    now = monotonic_ns()
    start = consumer_position(stage.order_ctrl)
    mask = capacity(stage.order_ctrl) - 1
    m = 0
    for i in range(n):
        rec = stage.order_records[(start + i) & mask]
        if stage.hop_histogram.shape[0] > 0:
            record_latency(stage.hop_histogram, now - rec.ts_ns)
        if rec.action == WATERMARK_ACTION:
            if rec.market_ts_ns > stage.watermark[0]:
                stage.watermark[0] = rec.market_ts_ns
            stage.counters[stage.counter_slots.watermarks] += 1
        elif rec.action != Action.LOGON:  # a LOGON repeated after a crash of the OMS changes nothing
            stage.scratch_orders[m] = rec
            m += 1
    if m > 0:
        enqueue_orders(stage.sim, stage.pend, stage.pend_arrival, stage.scratch_orders, 0, m)
        stage.counters[stage.counter_slots.orders_in] += m
        j = apply_due(stage.sim, stage.pend, stage.pend_arrival, sw[SW_CLOCK], stage.out, 0, stage.room_per_order)
        _staged(stage, j)  # what is not due yet (or found no room) applies at a later call, same clock
    release(stage.order_ctrl, n)
    return n


@njit(cache=True, nogil=True, _nrt=False)
def take_market(stage):
    """Apply a batch of market events, as many as the report rings have room for."""
    n = try_poll(stage.market_ctrl, stage.batch)
    if n == 0:
        return 0
    cap = capacity(stage.market_ctrl)
    start = consumer_position(stage.market_ctrl) & (cap - 1)
    n = min(n, cap - start)  # the part up to the ring's end; the rest next cycle
    events = stage.market_records[start:start + n]
    applied, j = run_events(stage.sim, stage.pend, stage.pend_arrival, events, 0, n, stage.out, 0,
                            stage.room_per_order)
    _staged(stage, j)
    if applied > 0:
        release(stage.market_ctrl, applied)
        stage.counters[stage.counter_slots.events_in] += applied
    return applied + j


@njit(cache=True, nogil=True, _nrt=False)
def step(stage):
    """One exchange duty cycle: staged reports, then orders, then market events. Returns records handled."""
    work = 0
    q = stage.out_queue
    if q[OutQueue.TAIL] > q[OutQueue.HEAD]:
        before = q[OutQueue.TAIL] - q[OutQueue.HEAD]
        left = flush(stage)
        if left:
            return before - left  # a report ring is full: no input until it drains
        work += before
    if has_data(stage.order_ctrl):
        work += take_orders(stage)
    if has_data(stage.market_ctrl):
        work += take_market(stage)
    return work
