"""One OMS duty cycle in one numba call: poll the input rings, apply, publish, release.

The worker's fast path. Called once per ``do_work``, it does what the Python wrapper would do with
a dozen ring and kernel calls, so a cycle costs one dispatch (a few microseconds) plus the work.

Order of effects per batch, so a crash at any point loses nothing and doubles nothing:

1. the batch is sized so that everything it can produce fits in every output ring *now*
   (at most 2 events, 1 order and 1 report per input, plus what is staged; a new exchange
   session's report, alone at the head of its batch, uses the budget of the whole batch:
   ``hftshm.oms.session_nb``);
2. events are committed to the writer's ring first, then orders to the exchange, then reports
   to every report ring (strategies, risk);
3. only then are the inputs released. A crash before 3 re-delivers the batch; the OMS refuses
   it as duplicates and stale reports instead of applying it twice.

If the writer's ring has no room for a minimal batch, the cycle does nothing and returns
``EVENTS_FULL``: the worker then takes its slow path (events to the spill file, backlog policy).

``rings``: an ``OmsRings`` (the four rings' control words and records, by name);
``report_ctrls``/``report_records``: tuples with one entry per report ring. ``histogram``: hop latency per input (upstream publish -> our publish);
empty to skip.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from hftshm.codes import Action
from hftshm.metrics.histogram_nb import record as record_latency
from hftshm.oms.order_table_nb import S_OPEN
from hftshm.oms.oms_nb import C_EVENTS, C_ORDERS, C_REPORTS, O_NEXT_DEADLINE, ST_WORDS, on_orders, on_reports
from hftshm.oms.timers_nb import on_timers
from hftshm.transport.clock_nb import monotonic_ns
from hftshm.transport.ring_nb import (claimable, commit, commit_quiet, consumer_position, free_capacity, release,
                                     try_claim, try_poll, wake_consumer_if_parked)

EVENTS_FULL = -1


class OmsRings(NamedTuple):
    """The OMS's rings besides the report outputs: control words and records of each."""

    orders_ctrl: np.ndarray  # approved orders, from risk
    orders: np.ndarray
    reports_ctrl: np.ndarray  # execution reports, from the exchange
    reports: np.ndarray
    exchange_ctrl: np.ndarray  # orders, to the exchange
    exchange: np.ndarray
    events_ctrl: np.ndarray  # order events, to the writer
    events: np.ndarray


@njit(cache=True)
def _contiguous(ctrl, records, max_n):
    """(first index, count) of up to ``max_n`` readable records that do not wrap."""
    available = try_poll(ctrl, max_n)
    if available <= 0:
        return 0, 0
    start = consumer_position(ctrl) & (records.shape[0] - 1)
    return start, min(available, records.shape[0] - start)


@njit(cache=True, inline="always")
def _free(ctrl, want):
    """Free slots of an output ring, re-reading the consumer's cursor when the producer's cached copy
    says fewer than ``want``. ``free_capacity`` alone re-reads it only at 0 free: a writer's ring
    whose cached count stopped at 1 free slot read as full (fewer than 2 events) until the Python
    path ran, and the compiled cycle handed over to it for a round."""
    free = free_capacity(ctrl)
    if free < want:
        claimable(ctrl, want)  # refreshes the cached consumer cursor; claims nothing
        free = free_capacity(ctrl)
    return free


@njit(cache=True)
def _room(rings, report_ctrls, out):
    """Inputs one batch may take so its outputs fit everywhere; EVENTS_FULL if the writer's ring is full."""
    counts = out[3]
    events_free = _free(rings.events_ctrl, counts[C_EVENTS] + 2) - counts[C_EVENTS]
    if events_free < 2:
        return EVENTS_FULL
    room = min(events_free // 2, _free(rings.exchange_ctrl, counts[C_ORDERS] + 1) - counts[C_ORDERS])
    for ctrl in report_ctrls:
        room = min(room, _free(ctrl, counts[C_REPORTS] + 1) - counts[C_REPORTS])
    return max(room, 0)


@njit(cache=True)
def _publish_plain(ctrl, records, staged, n):
    """Publish the writer's events without waking it: ``cycle`` wakes it once at its end, after the
    orders and reports are out (a futex wake-up costs microseconds; the writer lingers anyway)."""
    seq = try_claim(ctrl, n)
    mask = records.shape[0] - 1
    for i in range(n):
        records[(seq + i) & mask] = staged[i]
    commit_quiet(ctrl, seq, n)


@njit(cache=True)
def _publish_stamped(ctrl, records, staged, n):
    """Publish with the per-ring dense sequence in ``seq``."""
    seq = try_claim(ctrl, n)
    mask = records.shape[0] - 1
    for i in range(n):
        j = (seq + i) & mask
        records[j] = staged[i]
        records[j].seq = seq + i
    commit(ctrl, seq, n)


@njit(cache=True)
def _flush(rings, report_ctrls, report_records, out):
    """Everything staged into the rings, events first (room was checked before staging)."""
    counts = out[3]
    if counts[C_EVENTS] > 0:
        _publish_plain(rings.events_ctrl, rings.events, out[2], counts[C_EVENTS])
    if counts[C_ORDERS] > 0:
        _publish_stamped(rings.exchange_ctrl, rings.exchange, out[0], counts[C_ORDERS])
    if counts[C_REPORTS] > 0:
        for k in range(len(report_ctrls)):
            _publish_stamped(report_ctrls[k], report_records[k], out[1], counts[C_REPORTS])
    counts[:] = 0


@njit(cache=True)
def cycle(book, ctl, out, rings, report_ctrls, report_records, histogram, tick_to_order, counters, batch, now_ns,
          wall_ns):
    """One duty cycle: reports, then orders, then ack timeouts. Returns the work done or EVENTS_FULL.

    ``counters`` (the worker's shared-memory counters) get the ``ST_*`` statistics in their first
    slots and the open-order count after them, whenever there was work. The order-event writer, if
    parked, is woken at the end."""
    work = _cycle(book, ctl, out, rings, report_ctrls, report_records, histogram, tick_to_order, counters, batch,
                  now_ns, wall_ns)
    wake_consumer_if_parked(rings.events_ctrl)
    return work


@njit(cache=True)
def _cycle(book, ctl, out, rings, report_ctrls, report_records, histogram, tick_to_order, counters, batch, now_ns,
           wall_ns):
    staging = out[2].shape[0]
    limit = min(batch, staging // 2)
    work = 0
    room = _room(rings, report_ctrls, out)
    if room == EVENTS_FULL:
        return EVENTS_FULL
    # reports first: they free state (and strategies wait for them)
    start, n = _contiguous(rings.reports_ctrl, rings.reports, min(limit, room))
    if n > 0:
        records = rings.reports[start:start + n]
        consumed = on_reports(book, ctl, out, records, n, now_ns, wall_ns)
        _flush(rings, report_ctrls, report_records, out)
        _count(book, ctl, counters)
        _report_hops(histogram, records, consumed)
        release(rings.reports_ctrl, consumed)
        work += consumed
        room = _room(rings, report_ctrls, out)
        if room == EVENTS_FULL:
            return work
    start, n = _contiguous(rings.orders_ctrl, rings.orders, min(limit, room))
    if n > 0:
        records = rings.orders[start:start + n]
        consumed = on_orders(book, ctl, out, records, n, now_ns, wall_ns)
        _flush(rings, report_ctrls, report_records, out)
        _count(book, ctl, counters)
        _order_hops(histogram, records, consumed)
        record_tick_to_order(tick_to_order, records, consumed)
        release(rings.orders_ctrl, consumed)
        work += consumed
        room = _room(rings, report_ctrls, out)
    if now_ns >= ctl[1][O_NEXT_DEADLINE] and room >= staging:
        work += on_timers(book, ctl, out, now_ns, wall_ns)
        _flush(rings, report_ctrls, report_records, out)
        _count(book, ctl, counters)
    return work


@njit(cache=True)
def _count(book, ctl, counters):
    """The statistics into the counters: after a batch's records are published, before its input is
    released. A restarted OMS counts on from the counters (worker.on_start), so they must hold what
    the published records did: killed before the batch was published, its input is redelivered and
    applied again (its events never left), and counted then; killed after this copy, the redelivered
    input is refused as duplicates or stale reports, not counted twice. Only a kill in the few
    instructions between the publication and this copy leaves a batch uncounted (copied once at the
    end of the cycle, after the releases, that window was most of a busy cycle)."""
    stats = ctl[2]
    for i in range(ST_WORDS):
        counters[i] = stats[i]
    counters[ST_WORDS] = book[3][S_OPEN]


@njit(cache=True)
def _report_hops(histogram, records, n):
    if histogram.shape[0] == 0 or n == 0:
        return
    now = monotonic_ns()
    for i in range(n):
        if records[i].local_ts_ns > 0:
            record_latency(histogram, now - records[i].local_ts_ns)


@njit(cache=True)
def _order_hops(histogram, records, n):
    if histogram.shape[0] == 0 or n == 0:
        return
    now = monotonic_ns()
    for i in range(n):
        if records[i].ts_ns > 0:
            record_latency(histogram, now - records[i].ts_ns)


@njit(cache=True)
def record_tick_to_order(histogram, records, n):
    """The platform's headline latency: the feed published the tick that caused an order
    (``origin_ts_ns``) -> the OMS has published that order to the exchange (now). New orders only."""
    if histogram.shape[0] == 0 or n == 0:
        return
    now = monotonic_ns()
    for i in range(n):
        if records[i].action == Action.NEW and records[i].origin_ts_ns > 0:
            record_latency(histogram, now - records[i].origin_ts_ns)


@njit(cache=True)
def record_hops(histogram, sent_ts_ns, now_ns):
    """Hop latency per record from an array of upstream stamps (the worker's slow path)."""
    for i in range(sent_ts_ns.shape[0]):
        if sent_ts_ns[i] > 0:
            record_latency(histogram, now_ns - sent_ts_ns[i])
