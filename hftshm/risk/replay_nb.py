"""Kernels of a risk restart: fold the OMS's recorded fills into the symbol rows, and recognise a
redelivered fill report (already inside that fold) so it is not booked twice.

``replayed`` is a structured array of ``REPLAYED_DTYPE`` sorted by order id: per order, the
cumulative quantity the fold booked. An order's fills carry strictly increasing ``cum_qty``, so a
fill report at or below that mark is one the fold holds; above it, it is news. Empty when the worker
did not restart (nothing to recognise): the report kernel then takes its usual one-call path.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hftshm.codes import ReportEvent, Side
from hftshm.risk.accounting_nb import apply_fill, apply_reports
from hftshm.risk.state_nb import refresh_symbol_pnl

REPLAYED_DTYPE = np.dtype([("order_id", "i8"), ("cum_qty", "f8")])
_CUM_REL_EPS = 1e-9


def replay_marks(marks: dict[int, float]) -> np.ndarray:
    """``{order id: cum qty}`` as the sorted array the kernels search."""
    out = np.zeros(len(marks), dtype=REPLAYED_DTYPE)
    if marks:
        ids = np.fromiter(marks.keys(), dtype=np.int64, count=len(marks))
        order = np.argsort(ids)
        out["order_id"] = ids[order]
        out["cum_qty"] = np.fromiter(marks.values(), dtype=np.float64, count=len(marks))[order]
    return out


@njit(cache=True, nogil=True)
def is_replayed(replayed, order_id, cum_qty):
    """Whether a fill report with this order id and cumulative quantity is already booked."""
    lo = 0
    hi = len(replayed)
    while lo < hi:
        mid = (lo + hi) >> 1
        if replayed[mid].order_id < order_id:
            lo = mid + 1
        else:
            hi = mid
    if lo == len(replayed) or replayed[lo].order_id != order_id:
        return False
    mark = replayed[lo].cum_qty
    return cum_qty > 0.0 and cum_qty <= mark + _CUM_REL_EPS * max(1.0, mark)


@njit(cache=True, nogil=True)
def apply_new_reports(reports, start, mask, n, symbols, account, table, control_words, replayed):
    """``accounting_nb.apply_reports`` over ``reports[(start + i) & mask]``, skipping fill reports
    ``replayed`` already holds (counted in ``account.reports_replayed``); returns fills applied."""
    if len(replayed) == 0:
        return apply_reports(reports, start, mask, n, symbols, account, table, control_words)
    fills = 0
    run = 0  # first record of the current run of new reports
    for k in range(n):
        r = reports[(start + k) & mask]
        if (r.event == ReportEvent.PARTIAL or r.event == ReportEvent.FILL) and is_replayed(replayed, r.order_id,
                                                                                            r.cum_qty):
            if k > run:
                fills += apply_reports(reports, start + run, mask, k - run, symbols, account, table, control_words)
            account[0].reports_replayed += 1
            run = k + 1
    if n > run:
        fills += apply_reports(reports, start + run, mask, n - run, symbols, account, table, control_words)
    return fills


@njit(cache=True)
def fold_fills(symbols, symbol_ids, sides, qtys, prices, fees):
    """Book recorded fills (in the order they happened) into the symbol rows; returns how many were
    booked (a fill of a symbol no longer configured, or malformed, is skipped)."""
    booked = 0
    for i in range(len(symbol_ids)):
        sid = symbol_ids[i]
        qty = qtys[i]
        price = prices[i]
        fee = fees[i]
        if sid < 0 or sid >= len(symbols) or symbols[sid].known == 0:
            continue
        if not (qty > 0.0) or math.isinf(qty) or not (price > 0.0) or math.isinf(price):
            continue
        if sides[i] != Side.BUY and sides[i] != Side.SELL:
            continue
        apply_fill(symbols[sid], sides[i], qty, price, fee if math.isfinite(fee) else 0.0)
        refresh_symbol_pnl(symbols[sid])
        booked += 1
    return booked
