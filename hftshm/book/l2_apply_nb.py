"""numba kernels: apply ``market_event`` records to L2 books (storage in ``levels_nb``).

``books`` is a tuple of arrays (see ``BOOK_TUPLE``) so Python passes one argument for all of it; the
loop kernels unpack it once and the per-event code lives in one function, ``_run``: unpacking a
tuple or passing the arrays to a helper per event costs reference counting (~50-100 ns an event).
Bad events are rejected and counted per reason (``BookIssue``), never raised. Prices become ticks
as ``rint(price * px_scale)`` (``px_scale`` = 1 / tick size) and back as ``ticks * px_num /
px_den``, which for a decimal tick (0.1 = 1/10) gives exactly ``float("61800.2")``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.book.issues import BookIssue
from hftshm.book.levels_nb import (  # noqa: F401 (re-exported: callers use l2_apply_nb.BS_*, l2_apply_nb.NO_BID, ...)
    BS_BEST_BID, BS_BEST_ASK, BS_WIN_LO, BS_WIN_PLACED, BS_WIN_BIDS, BS_WIN_ASKS, BS_FAR_BIDS, BS_FAR_ASKS,
    BS_EXCH_TS, BS_LOCAL_TS, BS_UPDATE_ID, BS_BOOK_SEQ, BS_VALID, BS_CHANGED, BS_BBO_BID, BS_BBO_BID_QTY,
    BS_BBO_ASK, BS_BBO_ASK_QTY, BS_BBO_UPDATE_ID, BS_LAST_TRADE, BS_LAST_TRADE_QTY, BS_TRADES, BS_RECENTRES,
    BS_MESSAGES, BS_DEPTH_UPDATE_ID, BS_EVENTS, N_BOOK_STATE, BP_PX_SCALE, BP_PX_NUM, BP_PX_DEN, BP_QTY_SCALE,
    BP_QTY_NUM, BP_QTY_DEN, N_BOOK_PARAMS, NO_BID, NO_ASK, MAX_TICKS, BOOK_TUPLE, set_level, top_levels, _top,
    _fill_snapshot, _clear, _far_set, _highest_bid_below, _lowest_ask_above, _maybe_recentre,
)
from hftshm.codes import EventFlag, EventKind, Side

# apply status
APPLY_REJECTED = -1
APPLY_OTHER = 0  # trade / bbo: the L2 book did not change
APPLY_BOOK = 1  # book changed, message continues
APPLY_BOOK_END = 2  # book changed and the message is complete: the book is consistent

_LAST = int(EventFlag.LAST_IN_MESSAGE)
_INVALID = int(EventFlag.BOOK_INVALID)
_SNAP_TOL = 1e-6


@njit(cache=True)
def _end_of_message(state, bid_win, ask_win, fbp, fbq, fap, faq, issues, b):
    state[b, BS_MESSAGES] += 1
    bid = state[b, BS_BEST_BID]
    ask = state[b, BS_BEST_ASK]
    if bid != NO_BID and ask != NO_ASK:
        if bid > ask:
            issues[b, BookIssue.CROSSED] += 1
        elif bid == ask:
            issues[b, BookIssue.LOCKED] += 1
    _maybe_recentre(state, bid_win, ask_win, fbp, fbq, fap, faq, issues, b)


@njit(cache=True, _nrt=False, forceinline=True)
def _event(state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of, ev):
    """Apply one event (a ``market_event`` record) to its book. Returns (APPLY_* status, book index
    or -1, price ticks, lots, on the grid): the last three are the event's units when it was a level,
    trade or BBO on its book's grid (the fill model's view then need not convert it again); at
    APPLY_BOOK_END the caller completes the message (``message_end_top``). Force-inlined into
    ``_run`` and into the backtest's event pass (``fill_model_nb.run_events`` given the book), which
    applies the book in the same pass over a message as the fill model's view."""
    status = APPLY_REJECTED
    t = np.int64(0)
    lots = np.int64(0)
    on_grid = False
    sym = np.int64(ev["symbol_id"])
    b = book_of[sym] if sym < len(book_of) else -1
    if b < 0:
        issues[issues.shape[0] - 1, BookIssue.UNKNOWN_SYMBOL] += 1  # the last row: symbols with no book
        return APPLY_REJECTED, b, np.int64(0), np.int64(0), False
    state[b, BS_EVENTS] += 1
    kind = ev["kind"]
    flags = ev["flags"]
    local_ts = ev["local_ts_ns"]
    if local_ts < state[b, BS_LOCAL_TS]:
        issues[b, BookIssue.LOCAL_TS_BACKWARDS] += 1
    state[b, BS_LOCAL_TS] = local_ts
    changed = False
    if kind == EventKind.CLEAR:
        _clear(state, bid_win, ask_win, b)
        state[b, BS_VALID] = 0
        if flags & _INVALID:
            issues[b, BookIssue.GAP_CLEAR] += 1
        changed = True
    elif kind == EventKind.DEPTH or kind == EventKind.SNAPSHOT or kind == EventKind.TRADE or kind == EventKind.BBO:
        side = ev["side"]
        price = ev["price"]
        qty = ev["qty"]
        px_scale = params[b, BP_PX_SCALE]
        qty_scale = params[b, BP_QTY_SCALE]
        issue = 0
        if side != Side.BUY and side != Side.SELL:
            issue = BookIssue.BAD_SIDE
        elif not np.isfinite(price):
            issue = BookIssue.NAN_OR_INF_PRICE
        elif not np.isfinite(qty):
            issue = BookIssue.NAN_OR_INF_QTY
        elif price <= 0.0:
            issue = BookIssue.NON_POSITIVE_PRICE
        elif qty < 0.0:
            issue = BookIssue.NEGATIVE_QTY
        elif price * px_scale >= MAX_TICKS or qty * qty_scale >= MAX_TICKS:
            issue = BookIssue.PRICE_OUT_OF_RANGE
        t = np.int64(0)
        lots = np.int64(0)
        if issue == 0:
            x = price * px_scale
            rounded = np.rint(x)
            t = np.int64(rounded)
            if abs(x - rounded) > _SNAP_TOL:
                issue = BookIssue.OFF_TICK
            else:
                x = qty * qty_scale
                rounded = np.rint(x)
                lots = np.int64(rounded)
                if abs(x - rounded) > _SNAP_TOL:
                    issue = BookIssue.OFF_LOT
        on_grid = issue == 0
        if issue != 0:
            issues[b, issue] += 1
        elif kind == EventKind.TRADE:
            status = APPLY_OTHER
            state[b, BS_LAST_TRADE] = t
            state[b, BS_LAST_TRADE_QTY] = lots
            state[b, BS_TRADES] += 1
        elif kind == EventKind.BBO:
            status = APPLY_OTHER
            if side == Side.BUY:
                state[b, BS_BBO_BID] = t
                state[b, BS_BBO_BID_QTY] = lots
            else:
                state[b, BS_BBO_ASK] = t
                state[b, BS_BBO_ASK_QTY] = lots
            state[b, BS_BBO_UPDATE_ID] = ev["update_id"]
        else:
            if kind == EventKind.DEPTH:
                if state[b, BS_VALID] == 0:
                    issues[b, BookIssue.DEPTH_WHILE_INVALID] += 1
                update_id = ev["update_id"]
                if update_id < state[b, BS_DEPTH_UPDATE_ID]:
                    issues[b, BookIssue.UPDATE_ID_BACKWARDS] += 1
                state[b, BS_DEPTH_UPDATE_ID] = update_id
            # set the level: window store, or far arrays; keep the best price current
            width = bid_win.shape[1]
            if state[b, BS_WIN_PLACED] == 0:
                state[b, BS_WIN_LO] = t - width // 2
                state[b, BS_WIN_PLACED] = 1
            idx = t - state[b, BS_WIN_LO]
            stored = True
            if side == Side.BUY:
                if 0 <= idx < width:
                    old = bid_win[b, idx]
                    bid_win[b, idx] = lots
                    if old == 0:
                        if lots != 0:
                            state[b, BS_WIN_BIDS] += 1
                    elif lots == 0:
                        state[b, BS_WIN_BIDS] -= 1
                else:
                    n_far = _far_set(fbp, fbq, b, state[b, BS_FAR_BIDS], t, lots)
                    if n_far < 0:
                        stored = False
                    else:
                        state[b, BS_FAR_BIDS] = n_far
                if stored:
                    if lots != 0:
                        if t > state[b, BS_BEST_BID]:
                            state[b, BS_BEST_BID] = t
                    elif t == state[b, BS_BEST_BID]:
                        state[b, BS_BEST_BID] = _highest_bid_below(state, b, bid_win, fbp, t)
            else:
                if 0 <= idx < width:
                    old = ask_win[b, idx]
                    ask_win[b, idx] = lots
                    if old == 0:
                        if lots != 0:
                            state[b, BS_WIN_ASKS] += 1
                    elif lots == 0:
                        state[b, BS_WIN_ASKS] -= 1
                else:
                    n_far = _far_set(fap, faq, b, state[b, BS_FAR_ASKS], t, lots)
                    if n_far < 0:
                        stored = False
                    else:
                        state[b, BS_FAR_ASKS] = n_far
                if stored:
                    if lots != 0:
                        if t < state[b, BS_BEST_ASK]:
                            state[b, BS_BEST_ASK] = t
                    elif t == state[b, BS_BEST_ASK]:
                        state[b, BS_BEST_ASK] = _lowest_ask_above(state, b, ask_win, fap, t)
            if stored:
                state[b, BS_BOOK_SEQ] += 1
                if kind == EventKind.SNAPSHOT and flags & _LAST:
                    state[b, BS_VALID] = 1
                changed = True
            else:
                issues[b, BookIssue.FAR_LEVELS_FULL] += 1
    else:
        issues[b, BookIssue.UNKNOWN_KIND] += 1
    if changed:
        exch_ts = ev["exch_ts_ns"]
        if exch_ts < state[b, BS_EXCH_TS]:
            issues[b, BookIssue.EXCH_TS_BACKWARDS] += 1
        state[b, BS_EXCH_TS] = exch_ts
        state[b, BS_UPDATE_ID] = ev["update_id"]
        state[b, BS_CHANGED] = 1
        status = APPLY_BOOK_END if flags & _LAST else APPLY_BOOK
    return status, b, t, lots, on_grid


@njit(cache=True)
def _run(state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of, events, start, stop,
         levels, out_meta, out_px, out_qty, out_snap, max_rows):
    """Apply events[start:stop] in order. At each consistent point (end of a book-changing message),
    by which outputs are given (the others None; numba compiles the unused branches away):

    - ``out_snap``: a ``book_snapshot`` record with the top ``levels`` (``out_px/out_qty`` scratch);
    - ``out_meta`` + ``out_px/out_qty``: one row of top levels (ticks, lots) and its metadata;
    - only ``out_px/out_qty``: the top levels into row 0, kept nowhere (benchmarks: the book's cost);
    - nothing: apply only.

    Stops early after ``max_rows`` consistent points. Returns (next event index, consistent points,
    checksum of best prices, status of the last event (APPLY_*), its book index).

    The per-event code (``_event``) is force-inlined (LLVM ``alwaysinline``): a called helper taking the
    book arrays costs a reference-count increment and decrement per array per event (~50 ns an event).
    """
    rows = 0
    checksum = np.int64(0)
    status = APPLY_REJECTED
    b = -1
    i = start
    while i < stop and rows < max_rows:
        status, b, _, _, _ = _event(state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of, events[i])
        if status == APPLY_BOOK_END:
            _end_of_message(state, bid_win, ask_win, fbp, fbq, fap, faq, issues, b)
            if out_snap is not None:
                rec = out_snap[rows]
                _fill_snapshot(state, params, bid_win, ask_win, fbp, fbq, fap, faq, b, rec, levels, out_px, out_qty)
                rec.symbol_id = events[i]["symbol_id"]
                rec.flags = 0
            elif out_meta is not None:
                _top_row(state, bid_win, ask_win, fbp, fbq, fap, faq, b, i, levels, out_meta, out_px, out_qty, rows)
            elif out_px is not None:
                n_bids, n_asks = _top(state, bid_win, ask_win, fbp, fbq, fap, faq, b, levels, out_px, out_qty, 0)
                if n_bids > 0:
                    checksum += out_px[0, 0, 0]
                if n_asks > 0:
                    checksum += out_px[0, 1, 0]
            rows += 1
        i += 1
    return i, rows, checksum, status, b


@njit(cache=True)
def _top_row(state, bid_win, ask_win, fbp, fbq, fap, faq, b, i, levels, out_meta, out_px, out_qty, row):
    """Row ``row`` of the top ``levels`` (ticks, lots) and its metadata, for book ``b`` after event ``i``."""
    n_bids, n_asks = _top(state, bid_win, ask_win, fbp, fbq, fap, faq, b, levels, out_px, out_qty, row)
    out_meta[row, 0] = b
    out_meta[row, 1] = state[b, BS_EXCH_TS]
    out_meta[row, 2] = state[b, BS_LOCAL_TS]
    out_meta[row, 3] = state[b, BS_UPDATE_ID]
    out_meta[row, 4] = state[b, BS_VALID]
    out_meta[row, 5] = n_bids
    out_meta[row, 6] = n_asks
    out_meta[row, 7] = i


@njit(cache=True)
def message_end_top(state, bid_win, ask_win, fbp, fbq, fap, faq, issues, b, i, out_meta, out_px, out_qty):
    """What ``_run`` does at the end of a book-changing message for the backtest loop, which applied
    the message's events itself (``_event``): the message counted and checked, the window re-centred
    if due, and row 0 of ``out_meta/out_px/out_qty`` set to the best level of each side."""
    _end_of_message(state, bid_win, ask_win, fbp, fbq, fap, faq, issues, b)
    _top_row(state, bid_win, ask_win, fbp, fbq, fap, faq, b, i, 1, out_meta, out_px, out_qty, 0)


@njit(cache=True)
def _apply(state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of, events, i):
    """Apply ``events[i]`` alone; returns (APPLY_* status, book index or -1). For callers that keep the
    arrays unpacked and interleave their own work per event (a range through ``_run`` is cheaper)."""
    _, _, _, status, b = _run(state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of, events, i, i + 1,
                              0, None, None, None, None, 1)
    return status, b


@njit(cache=True)
def apply_events_top(books, events, start, stop, levels, out_meta, out_px, out_qty):
    """Apply events[start:stop]; at each consistent point write the top ``levels`` (ticks, lots) into
    ``out_px/out_qty[row, side, level]`` and ``out_meta[row]`` (book, exch_ts, local_ts, update_id,
    valid, n_bids, n_asks, event index). Stops early when the out arrays are full.
    Returns (next event index, rows)."""
    state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of = books
    i, rows, _, _, _ = _run(state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of, events, start, stop,
                            levels, out_meta, out_px, out_qty, None, out_meta.shape[0])
    return i, rows


@njit(cache=True)
def apply_events_count(books, events, start, stop, levels, scratch_px, scratch_qty):
    """Apply events and extract the top ``levels`` at every consistent point, keeping nothing: the
    book's own cost (benchmarks). Returns (consistent points, checksum of best prices)."""
    state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of = books
    _, rows, checksum, _, _ = _run(state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of, events, start,
                                   stop, levels, None, scratch_px, scratch_qty, None, stop - start + 1)
    return rows, checksum


@njit(cache=True)
def apply_events(books, events, start, stop):
    """Apply events[start:stop]; returns the number of consistent points passed."""
    state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of = books
    _, rows, _, _, _ = _run(state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of, events, start,
                            stop, 0, None, None, None, None, stop - start + 1)
    return rows


@njit(cache=True)
def apply_events_snapshots(books, events, start, stop, levels, out, scratch_px, scratch_qty):
    """Apply events[start:stop]; write a ``book_snapshot`` record into ``out`` at each consistent point
    (stops early when ``out`` is full). Returns (next event index, records)."""
    state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of = books
    i, rows, _, _, _ = _run(state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of, events, start, stop,
                            levels, None, scratch_px, scratch_qty, out, len(out))
    return i, rows
