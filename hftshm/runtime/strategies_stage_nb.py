"""The strategies stage of the compiled trading cycle: any set of compiled strategies, over rings.

``trading_cycle_nb.run_slice`` calls ``step(stage) -> work done`` first in every pass (and
``trading_cycle_nb.run_stage`` loops it alone in a strategies process). It drives the strategies' own
compiled step (``hftshm.strategies.step_nb.step``: the same per-batch sequence ``StrategyHost``
follows, so a strategy stepped here queues what the Python worker would) straight from the
worker's rings, with no Python per record:

    report rings ──▶ step_nb.step(reports) ─┐
    market_event ring ─▶ step_nb.step(events) ├─▶ outbox ─▶ order_intent ring (seq, ts_ns stamped)
    book_snapshot ring ─▶ step_nb.step(books) ┘

Each ring's batch is handed over as contiguous runs of its records (a batch that wraps the ring's
end is two runs), so the step reads the records in place. The intents a run queued go out before
the next run is looked at. Back-pressure: when the intent ring cannot take the whole outbox the
rest stays queued (moved to the front) and no input is taken until it has gone out: the records
stay in their rings and a back-pressure cycle is counted, as the Python worker holds market data
while risk is behind.

Python keeps what is not per record (``hftshm.runtime.trading_cycle.compiled_strategies_step``):
control messages, the status table, naming a strategy whose kernel faulted (the step pauses it
and cancels its orders itself), restarts and deterministic runs (then the worker's Python path
runs).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numba.extending import overload

from hftshm.codes import Action
from hftshm.metrics.histogram_nb import record as record_latency
from hftshm.strategies import step_nb
from hftshm.transport.clock_nb import monotonic_ns
from hftshm.transport.ring_nb import capacity, claimable, commit, consumer_position, release, try_claim, try_poll

REPORT_BATCH = 1024
EVENT_BATCH = 4096
BOOK_BATCH = 1024
# Not cached themselves: ``trading_cycle_nb.run_slice``, which links them in, is (its signature types
# the strategies' callbacks by signature, so its cache index pickles).


class StageCounters(NamedTuple):
    """Indexes of the strategies worker's status-row counters this stage moves."""

    events: int
    books: int
    reports: int
    intents: int
    backpressure_cycles: int


class StrategiesStage(NamedTuple):
    book_ctrl: np.ndarray
    book_records: np.ndarray
    event_ctrl: np.ndarray
    event_records: np.ndarray
    report_ctrls: tuple  # execution_report inputs: risk's rejects, the OMS's reports
    report_records: tuple
    intent_ctrl: np.ndarray
    intent_records: np.ndarray
    strategies: object  # step_nb.StrategiesStep: the compiled strategies, their outbox and clock
    book_age: np.ndarray  # latency histograms (length 0: off)
    tick_to_intent: np.ndarray
    counters: np.ndarray
    counter_slots: StageCounters


@njit(nogil=True)
def flush_intents(s):
    """Publish as much of the outbox as the intent ring takes; True when it is empty."""
    icount = s.strategies.icount
    n = icount[0]
    if n == 0:
        return True
    room = claimable(s.intent_ctrl, n)
    if room == 0:
        return False
    seq = try_claim(s.intent_ctrl, room)
    mask = s.intent_records.shape[0] - 1
    now = monotonic_ns()
    outbox = s.strategies.intents
    for i in range(room):
        slot = (seq + i) & mask
        s.intent_records[slot] = outbox[i]
        s.intent_records[slot].seq = seq + i
        s.intent_records[slot].ts_ns = now
        if s.tick_to_intent.shape[0] > 0 and outbox[i].action == Action.NEW and outbox[i].origin_ts_ns > 0:
            record_latency(s.tick_to_intent, now - outbox[i].origin_ts_ns)
    commit(s.intent_ctrl, seq, room)
    for i in range(room, n):  # what did not fit waits at the front, in order
        outbox[i - room] = outbox[i]
    icount[0] = n - room
    s.counters[s.counter_slots.intents] += room
    return room == n


def hand_over(s, run, k):
    """Hand ``run`` (``k`` records of one input ring) to the strategies' step, in its layout's slot."""


@overload(hand_over, jit_options={"nogil": True})
def _hand_over(s, run, k):
    # chosen by the records' layout when the caller is typed, not passed as a function value: a
    # dispatcher passed as a value is lowered as a process address (a "dynamic global"), and a
    # kernel holding one cannot be cached, which made every start compile ``run_slice`` again
    field = dict(zip(s.fields, s.types))
    if run.dtype == field["event_records"].dtype:
        def impl(s, run, k):
            step_nb.step(s.strategies, s.report_records[0][0:0], 0, run, k, s.book_records[0:0], 0)
    elif run.dtype == field["book_records"].dtype:
        def impl(s, run, k):
            step_nb.step(s.strategies, s.report_records[0][0:0], 0, s.event_records[0:0], 0, run, k)
    else:
        def impl(s, run, k):
            step_nb.step(s.strategies, run, k, s.event_records[0:0], 0, s.book_records[0:0], 0)
    return impl


@njit(nogil=True)
def _take(s, ctrl, records, batch):
    """One batch of one ring through the strategies, as contiguous runs of its records; stops at a
    run whose intents the intent ring could not take (the rest of the batch stays in the ring)."""
    n = try_poll(ctrl, batch)
    if n == 0:
        return 0
    start = consumer_position(ctrl)
    mask = capacity(ctrl) - 1
    done = 0
    while done < n:
        first = (start + done) & mask
        k = min(n - done, mask + 1 - first)
        hand_over(s, records[first:first + k], k)
        done += k
        if not flush_intents(s):
            break
    release(ctrl, done)
    return done


@njit(nogil=True)
def step(s):
    """One strategies duty cycle over the rings; returns records taken."""
    if not flush_intents(s):
        s.counters[s.counter_slots.backpressure_cycles] += 1
        return 0
    work = 0
    for k in range(len(s.report_ctrls)):
        n = _take(s, s.report_ctrls[k], s.report_records[k], REPORT_BATCH)
        s.counters[s.counter_slots.reports] += n
        work += n
    if s.strategies.icount[0] == 0:
        n = _take(s, s.event_ctrl, s.event_records, EVENT_BATCH)
        s.counters[s.counter_slots.events] += n
        work += n
    if s.strategies.icount[0] == 0:
        if s.book_age.shape[0] > 0 and try_poll(s.book_ctrl, 1) > 0:
            first = s.book_records[consumer_position(s.book_ctrl) & (capacity(s.book_ctrl) - 1)]
            if first.publish_ts_ns > 0:
                record_latency(s.book_age, monotonic_ns() - first.publish_ts_ns)
        n = _take(s, s.book_ctrl, s.book_records, BOOK_BATCH)
        s.counters[s.counter_slots.books] += n
        work += n
    return work
