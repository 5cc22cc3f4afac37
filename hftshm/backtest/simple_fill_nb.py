"""Kernels of the simple test fill model (rules in simple_fill.py); ``order`` records in,
``execution_report`` records out. Unit tests only: the platform's exchange is ``hftshm.exchange``.

State: ``top`` float64[4] (best bid, bid qty, best ask, ask qty from BBO events) and ``resting``, a
small table of ``RESTING_DTYPE`` rows (used = 0: free).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.codes import Action, EventKind, OrderType, Reason, ReportEvent, Side, TimeInForce

RESTING_DTYPE = np.dtype([
    ("used", "i8"), ("order_id", "i8"), ("client_order_id", "i8"), ("origin_ts_ns", "i8"), ("strategy_id", "i8"),
    ("symbol_id", "i8"), ("side", "i8"), ("price", "f8"), ("leaves", "f8"), ("cum", "f8"),
])
TOP_BID, TOP_BID_QTY, TOP_ASK, TOP_ASK_QTY = 0, 1, 2, 3
TOP_HIGH = 4  # rows of ``resting`` ever used: scans stop there


def new_state(capacity: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    top = np.full(5, np.nan)
    top[TOP_HIGH] = 0.0
    return top, np.zeros(capacity, dtype=RESTING_DTYPE)


@njit(cache=True)
def _report(out, j, ts, order_id, client_order_id, origin_ts_ns, strategy_id, symbol_id, side, event, price, qty,
            leaves, cum, fee, reason):
    r = out[j]
    r.seq = 0
    r.exch_ts_ns = ts
    r.local_ts_ns = 0
    r.origin_ts_ns = origin_ts_ns
    r.order_id = order_id
    r.client_order_id = client_order_id
    r.contra_order_id = 0
    r.price = price
    r.qty = qty
    r.leaves_qty = leaves
    r.cum_qty = cum
    r.fee = fee
    r.strategy_id = strategy_id
    r.symbol_id = symbol_id
    r.event = event
    r.side = side
    r.reason = reason
    r.flags = 0
    return j + 1


@njit(cache=True)
def _fill_resting(resting, k, ts, qty, maker_bps, out, j):
    o = resting[k]
    o.leaves = round(o.leaves - qty, 9)
    o.cum += qty
    done = o.leaves <= 0.0
    j = _report(out, j, ts, o.order_id, o.client_order_id, o.origin_ts_ns, o.strategy_id, o.symbol_id, o.side,
                ReportEvent.FILL if done else ReportEvent.PARTIAL, o.price, qty, max(o.leaves, 0.0), o.cum,
                o.price * qty * maker_bps * 1e-4, 0)
    if done:
        o.used = 0
    return j


@njit(cache=True)
def on_order(top, resting, o, ts, maker_bps, taker_bps, out, j):
    """Apply one arriving ``order`` record at exchange time ``ts``; returns the next report index."""
    if o.action == Action.CANCEL:
        for k in range(int(top[TOP_HIGH])):
            r = resting[k]
            if r.used != 0 and r.order_id == o.target_order_id:
                r.used = 0
                return _report(out, j, ts, r.order_id, r.client_order_id, r.origin_ts_ns, r.strategy_id, r.symbol_id,
                               r.side, ReportEvent.CANCEL, r.price, r.leaves, 0.0, r.cum, 0.0, Reason.USER_CANCEL)
        return _report(out, j, ts, o.target_order_id, o.client_order_id, o.origin_ts_ns, o.strategy_id, o.symbol_id,
                       o.side, ReportEvent.REJECT, o.price, 0.0, 0.0, 0.0, 0.0, Reason.UNKNOWN_ORDER)
    if o.action != Action.NEW:
        return _report(out, j, ts, o.order_id, o.client_order_id, o.origin_ts_ns, o.strategy_id, o.symbol_id, o.side,
                       ReportEvent.REJECT, o.price, 0.0, 0.0, 0.0, 0.0, Reason.MALFORMED_ORDER)
    market = o.order_type == OrderType.MARKET
    if o.side == Side.BUY:
        best, best_qty = top[TOP_ASK], top[TOP_ASK_QTY]
        crosses = best == best and (market or best <= o.price)
    else:
        best, best_qty = top[TOP_BID], top[TOP_BID_QTY]
        crosses = best == best and (market or best >= o.price)
    if crosses and o.tif == TimeInForce.POST_ONLY:
        return _report(out, j, ts, o.order_id, o.client_order_id, o.origin_ts_ns, o.strategy_id, o.symbol_id, o.side,
                       ReportEvent.REJECT, o.price, 0.0, 0.0, 0.0, 0.0, Reason.POST_ONLY_WOULD_CROSS)
    j = _report(out, j, ts, o.order_id, o.client_order_id, o.origin_ts_ns, o.strategy_id, o.symbol_id, o.side,
                ReportEvent.ACK, o.price, o.qty, o.qty, 0.0, 0.0, 0)
    leaves = o.qty
    cum = 0.0
    if crosses:
        qty = min(leaves, best_qty)
        if qty > 0.0:
            leaves = round(leaves - qty, 9)
            cum = qty
            j = _report(out, j, ts, o.order_id, o.client_order_id, o.origin_ts_ns, o.strategy_id, o.symbol_id,
                        o.side, ReportEvent.FILL if leaves <= 0.0 else ReportEvent.PARTIAL, best, qty, leaves, cum,
                        best * qty * taker_bps * 1e-4, 0)
    if leaves <= 0.0:
        return j
    if market or o.tif == TimeInForce.IOC or o.tif == TimeInForce.FOK:
        return _report(out, j, ts, o.order_id, o.client_order_id, o.origin_ts_ns, o.strategy_id, o.symbol_id, o.side,
                       ReportEvent.CANCEL, o.price, leaves, 0.0, cum, 0.0, Reason.IOC_REMAINDER)
    for k in range(resting.shape[0]):
        r = resting[k]
        if r.used == 0:
            r.used = 1
            r.order_id = o.order_id
            r.client_order_id = o.client_order_id
            r.origin_ts_ns = o.origin_ts_ns
            r.strategy_id = o.strategy_id
            r.symbol_id = o.symbol_id
            r.side = o.side
            r.price = o.price
            r.leaves = leaves
            r.cum = cum
            top[TOP_HIGH] = max(top[TOP_HIGH], k + 1.0)
            return j
    return _report(out, j, ts, o.order_id, o.client_order_id, o.origin_ts_ns, o.strategy_id, o.symbol_id, o.side,
                   ReportEvent.CANCEL, o.price, leaves, 0.0, cum, 0.0, Reason.BOOK_FULL)


@njit(cache=True)
def on_event(top, resting, ev, maker_bps, out, j):
    """Apply one market event; resting orders it trades through fill. Returns the next report index."""
    ts = ev.exch_ts_ns
    if ev.kind == EventKind.BBO:
        if ev.side == Side.BUY:
            top[TOP_BID] = ev.price
            top[TOP_BID_QTY] = ev.qty
        else:
            top[TOP_ASK] = ev.price
            top[TOP_ASK_QTY] = ev.qty
        for k in range(int(top[TOP_HIGH])):
            r = resting[k]
            if r.used != 0 and ((r.side == Side.BUY and top[TOP_ASK] < r.price)
                                or (r.side == Side.SELL and top[TOP_BID] > r.price)):
                j = _fill_resting(resting, k, ts, r.leaves, maker_bps, out, j)
    elif ev.kind == EventKind.TRADE:
        qty = ev.qty
        for k in range(int(top[TOP_HIGH])):
            if qty <= 0.0:
                break
            r = resting[k]
            through = (r.side == Side.BUY and ev.price < r.price) or (r.side == Side.SELL and ev.price > r.price)
            if r.used != 0 and through:
                take = min(r.leaves, qty)
                qty -= take
                j = _fill_resting(resting, k, ts, take, maker_bps, out, j)
    return j
