"""The platform's stages after the strategy, in one process: risk -> OMS -> exchange and back.

These kernels chain the platform's own kernels (``hftshm.risk`` checks and accounting, the
``hftshm.oms`` order book, the exchange's replay fill model ``hftshm.exchange.fill_model_nb``)
exactly as the workers do over rings, with the rings replaced by in-process queues:

* orders to the exchange wait in the fill model's own pending queue, which stamps each with its
  arrival time (market time of the intent + a seeded entry latency, FIFO like one connection);
* ``sq``: the exchange's reports on their way back, each delivered at its ``local_ts_ns`` (exchange
  time + a seeded response latency, stamped by the fill model), FIFO;
* ``lq``: reports the platform itself originates (risk and OMS rejects): delivered at once.

Both the Python backtest loop (``venue.PlatformVenue``) and the compiled one (``simulate_nb``) call
these, so the two paths see identical fills. State ``V`` is one tuple, built by ``venue.PlatformVenue``::

    V = (risk, oms, exchange, sq, lq, scratch, stats)
    exchange = (S, pend, pend_arrival, room)   # the ExchangeSimulator's state; room[0] = reports one
                                               # arriving order may need

Per-event work takes its arrays as plain arguments: reading arrays out of a tuple costs a
reference-count update per array, which per market event would cost more than the matching.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.exchange import fill_model_nb as fm
from hftshm.oms import oms_nb
from hftshm.risk import accounting_nb, checks_nb, emit_nb

# lq sources
SRC_RISK = 1  # risk's own reject: to the strategy only (risk already knows)
SRC_OMS = 2  # the OMS's reject: to the strategy and to risk accounting

# stats
ST_ORDERS_TO_EXCHANGE = 0
ST_EXCHANGE_REPORTS = 1
ST_DELIVERED = 2
ST_QUEUE_FULL = 3  # records dropped because a queue was full (sized so this stays 0)
ST_RISK_REJECTS = 4
ST_OMS_REJECTS = 5
ST_WORDS = 8

# queue ptr words
Q_HEAD, Q_TAIL, Q_LAST_TS = 0, 1, 2


@njit(cache=True)
def _q_push_report(reports, times, srcs, ptr, rec, ts, src, stats):
    cap = reports.shape[0]
    if ptr[Q_TAIL] - ptr[Q_HEAD] >= cap:
        stats[ST_QUEUE_FULL] += 1
        return
    if ts < ptr[Q_LAST_TS]:
        ts = ptr[Q_LAST_TS]
    ptr[Q_LAST_TS] = ts
    k = ptr[Q_TAIL] & (cap - 1)
    reports[k] = rec
    times[k] = ts
    srcs[k] = src
    ptr[Q_TAIL] += 1


@njit(cache=True, inline="always")
def due(times, ptr, now_ns):
    """True when the queue's head is due by ``now_ns`` (cheap: the hot loop asks before calling)."""
    return ptr[Q_HEAD] < ptr[Q_TAIL] and times[ptr[Q_HEAD] & (times.shape[0] - 1)] <= now_ns


# ------------------------------------------------------------------------------ exchange side

@njit(cache=True)
def exchange_out(out, j, sq_reports, sq_times, sq_srcs, sq_ptr, stats):
    """Queue the exchange's reports ``out[:j]`` for delivery at their ``local_ts_ns``."""
    for k in range(j):
        _q_push_report(sq_reports, sq_times, sq_srcs, sq_ptr, out[k], out[k].local_ts_ns, 0, stats)
    stats[ST_EXCHANGE_REPORTS] += j


@njit(cache=True)
def pending_due(pend_arrival, sw, now_ns):
    """An order reaches the exchange by ``now_ns`` (cheap: the hot loop asks before calling)."""
    return (sw[fm.SW_PEND_HEAD] < sw[fm.SW_PEND_TAIL]
            and pend_arrival[sw[fm.SW_PEND_HEAD] & (pend_arrival.shape[0] - 1)] <= now_ns)


@njit(cache=True)
def arrive_flat(now_ns, S, pend, pend_arrival, room, out, sq_reports, sq_times, sq_srcs, sq_ptr, stats):
    """Orders that reach the exchange by ``now_ns`` are applied, in arrival order."""
    while True:
        j = fm.apply_due(S, pend, pend_arrival, now_ns, out, 0, room)
        exchange_out(out, j, sq_reports, sq_times, sq_srcs, sq_ptr, stats)
        if j == 0 or not pending_due(pend_arrival, S[11], now_ns):
            return


@njit(cache=True)
def market_flat(events, start, stop, S, pend, pend_arrival, room, out, sq_reports, sq_times, sq_srcs, sq_ptr,
                stats):
    """Market events ``events[start:stop]`` reach the exchange (orders arriving before each first)."""
    i = start
    while i < stop:
        i, j = fm.run_events(S, pend, pend_arrival, events, i, stop, out, 0, room)
        exchange_out(out, j, sq_reports, sq_times, sq_srcs, sq_ptr, stats)


@njit(cache=True)
def market(V, events, start, stop):
    S, pend, pend_arrival, room = V[2]
    sq_reports, sq_times, sq_srcs, sq_ptr = V[3]
    market_flat(events, start, stop, S, pend, pend_arrival, room[0], V[5][0], sq_reports, sq_times, sq_srcs, sq_ptr,
                V[6])


# ------------------------------------------------------------------------------ platform side

@njit(cache=True)
def _drain_oms(V, now_ns):
    """Move what the OMS staged: orders to the exchange (its pending queue), its own rejects to lq."""
    stats = V[6]
    S, pend, pend_arrival, _room = V[2]
    lq_reports, lq_times, lq_srcs, lq_ptr = V[4]
    out_orders, out_reports, _events, counts = V[1][2]
    n = counts[oms_nb.C_ORDERS]
    queued = fm.enqueue_orders(S, pend, pend_arrival, out_orders, 0, n)
    stats[ST_ORDERS_TO_EXCHANGE] += queued
    stats[ST_QUEUE_FULL] += n - queued  # sized so this stays 0; the run reports it if not
    for k in range(counts[oms_nb.C_REPORTS]):
        _q_push_report(lq_reports, lq_times, lq_srcs, lq_ptr, out_reports[k], now_ns, SRC_OMS, stats)
        stats[ST_OMS_REJECTS] += 1
    counts[:] = 0  # the audit trail (order events) is the platform's database's business, not a backtest's


@njit(cache=True)
def send(V, intents, n, now_ns):
    """Intents from the strategy at market time ``now_ns``: risk checks, then the OMS."""
    oms = V[1]
    stats = V[6]
    symbols, strategies, account, table, control, decisions, targets, r_orders, r_rejects, _mark = V[0]
    lq_reports, lq_times, lq_srcs, lq_ptr = V[4]
    approved = checks_nb.check_intents(intents, 0, -1, n, decisions, targets, now_ns, symbols, strategies, account,
                                       table, control)
    n_orders = emit_nb.emit_decisions(intents, 0, -1, n, decisions, targets, r_orders, np.int64(-1), np.int64(0),
                                      r_rejects, np.int64(-1), np.int64(0), now_ns)
    for k in range(n - n_orders):
        _q_push_report(lq_reports, lq_times, lq_srcs, lq_ptr, r_rejects[k], now_ns, SRC_RISK, stats)
        stats[ST_RISK_REJECTS] += 1
    done = 0
    while done < approved:
        consumed = oms_nb.on_orders(oms[0], oms[1], oms[2], r_orders[done:], approved - done, now_ns, now_ns)
        _drain_oms(V, now_ns)
        done += consumed


@njit(cache=True)
def mark_flat(snap, symbols, account, control, symbol_id, mid, ts_ns):
    """A new mid for risk's price band and PnL (the platform's risk reads the same book)."""
    snap[0].symbol_id = symbol_id
    snap[0].mid = mid
    snap[0].valid = 1
    snap[0].exch_ts_ns = ts_ns
    accounting_nb.apply_marks(snap, 0, -1, 1, symbols, account, control)


@njit(cache=True)
def mark(V, symbol_id, mid, ts_ns):
    risk = V[0]
    mark_flat(risk[9], risk[0], risk[2], risk[4], symbol_id, mid, ts_ns)


@njit(cache=True)
def needs_delivery(V, now_ns):
    """Anything to deliver or time out by ``now_ns`` (the Python loop's cheap pre-check)."""
    return (V[4][3][Q_HEAD] < V[4][3][Q_TAIL] or due(V[3][1], V[3][3], now_ns)
            or now_ns >= V[1][1][1][oms_nb.O_NEXT_DEADLINE])


@njit(cache=True)
def _deliver_local(V, out, j):
    """The platform's own rejects (risk's, the OMS's) into ``out[j:]``, in the order they were made."""
    risk = V[0]
    symbols, account, table, control = risk[0], risk[2], risk[3], risk[4]
    cap = out.shape[0]
    reports, times, srcs, ptr = V[4]
    qcap = reports.shape[0]
    while ptr[Q_HEAD] < ptr[Q_TAIL] and j < cap:
        k = ptr[Q_HEAD] & (qcap - 1)
        out[j] = reports[k]
        if srcs[k] == SRC_OMS:
            accounting_nb.apply_reports(out, j, -1, 1, symbols, account, table, control)
        ptr[Q_HEAD] += 1
        j += 1
    return j


@njit(cache=True)
def deliver(V, now_ns, out, j):
    """Reports due by ``now_ns`` into ``out[j:]``, in order: the platform's own rejects, the
    exchange's (through the OMS, as its worker forwards them), and what the OMS's ack timers
    produce at ``now_ns`` (a deterministic platform run hands those over at the same time: the OMS
    runs its timers when the exchange's watermark moves its clock, before passing the watermark on).
    Returns the new ``j``."""
    risk = V[0]
    oms = V[1]
    stats = V[6]
    symbols, account, table, control = risk[0], risk[2], risk[3], risk[4]
    cap = out.shape[0]
    first = j
    j = _deliver_local(V, out, j)
    reports, times, srcs, ptr = V[3]
    qcap = reports.shape[0]
    one = V[5][1]
    out_reports = oms[2][1]
    counts = oms[2][3]
    # room for the worst case of one report: the OMS forwards at most one per exchange report
    while ptr[Q_HEAD] < ptr[Q_TAIL] and j < cap:
        k = ptr[Q_HEAD] & (qcap - 1)
        if times[k] > now_ns:
            break
        one[0] = reports[k]
        ptr[Q_HEAD] += 1
        oms_nb.on_reports(oms[0], oms[1], oms[2], one, 1, now_ns, now_ns)
        for m in range(counts[oms_nb.C_REPORTS]):
            out[j] = out_reports[m]
            accounting_nb.apply_reports(out, j, -1, 1, symbols, account, table, control)
            j += 1
        counts[:] = 0
    if now_ns >= oms[1][1][oms_nb.O_NEXT_DEADLINE] and j < cap:
        oms_nb.on_timers(oms[0], oms[1], oms[2], now_ns, now_ns)
        _drain_oms(V, now_ns)
        j = _deliver_local(V, out, j)
    stats[ST_DELIVERED] += j - first
    return j


@njit(cache=True)
def pending(V):
    """Orders and reports still in flight."""
    sw, sq, lq = V[2][0][11], V[3][3], V[4][3]
    return (sw[fm.SW_PEND_TAIL] - sw[fm.SW_PEND_HEAD]) + (sq[Q_TAIL] - sq[Q_HEAD]) + (lq[Q_TAIL] - lq[Q_HEAD])
