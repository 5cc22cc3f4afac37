"""numba kernels: L2 books on integer price ticks, full depth, several symbols in one set of arrays.

Storage per book (row ``b`` of every array):

- a dense window of ``W`` ticks, ``[lo, lo + W)``, quantity in lots indexed by ``tick - lo``: an update
  near the touch is one store, and the next best level after a delete is a short scan;
- every level outside the window (the 560.0 bid and 621368.7 ask in the real data) in sorted
  ``far`` arrays (price ascending, both sides), so depth is never truncated;
- when the touch drifts within W/8 of a window edge the window is re-centred (O(W), rare).

``books`` is a tuple of arrays (see ``BOOK_TUPLE``) so Python passes one argument for all of it; the
loop kernels unpack it once and per-event helpers take the arrays themselves and index them in 2-D
(unpacking a tuple or slicing a view per event costs reference counting, ~100 ns an event).
Bad events are rejected and counted per reason (``BookIssue``), never raised. Prices become ticks as
``rint(price * px_scale)`` (``px_scale`` = 1 / tick size) and back as ``ticks * px_num / px_den``,
which for a decimal tick (0.1 = 1/10) gives exactly ``float("61800.2")``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.book.issues import BookIssue
from hftshm.codes import EventFlag, EventKind, Side

# book state slots (int64)
BS_BEST_BID = 0  # ticks; NO_BID when the side is empty
BS_BEST_ASK = 1  # ticks; NO_ASK when the side is empty
BS_WIN_LO = 2
BS_WIN_PLACED = 3
BS_WIN_BIDS = 4  # non-empty bid levels inside the window
BS_WIN_ASKS = 5
BS_FAR_BIDS = 6  # levels in the far arrays
BS_FAR_ASKS = 7
BS_EXCH_TS = 8  # of the last book-changing event
BS_LOCAL_TS = 9  # of the last event of the symbol
BS_UPDATE_ID = 10  # of the last book-changing event
BS_BOOK_SEQ = 11  # level updates applied
BS_VALID = 12  # 1 after a complete snapshot, 0 at start and after a gap
BS_CHANGED = 13  # book changed since the caller last took a snapshot
BS_BBO_BID = 14  # the exchange's own best bid (ticks) / qty (lots) / update id
BS_BBO_BID_QTY = 15
BS_BBO_ASK = 16
BS_BBO_ASK_QTY = 17
BS_BBO_UPDATE_ID = 18
BS_LAST_TRADE = 19  # ticks
BS_LAST_TRADE_QTY = 20
BS_TRADES = 21
BS_RECENTRES = 22
BS_MESSAGES = 23  # book-changing messages completed
BS_DEPTH_UPDATE_ID = 24  # update id of the last applied depth level (for update-id monotonicity)
BS_EVENTS = 25  # events seen (all kinds, rejected included)
N_BOOK_STATE = 32

# book parameters (float64)
BP_PX_SCALE = 0  # 1 / tick size
BP_PX_NUM = 1  # tick size = num / den, den a power of ten
BP_PX_DEN = 2
BP_QTY_SCALE = 3
BP_QTY_NUM = 4
BP_QTY_DEN = 5
N_BOOK_PARAMS = 8

NO_BID = np.int64(-1)
NO_ASK = np.int64(1) << 62
MAX_TICKS = float(1 << 52)

# apply status
APPLY_REJECTED = -1
APPLY_OTHER = 0  # trade / bbo: the L2 book did not change
APPLY_BOOK = 1  # book changed, message continues
APPLY_BOOK_END = 2  # book changed and the message is complete: the book is consistent

_LAST = int(EventFlag.LAST_IN_MESSAGE)
_INVALID = int(EventFlag.BOOK_INVALID)
_SNAP_TOL = 1e-6

BOOK_TUPLE = ("state", "params", "bid_win", "ask_win", "far_bid_px", "far_bid_qty", "far_ask_px", "far_ask_qty",
              "issues", "book_of")


# ------------------------------------------------------------------ far levels (sorted, price ascending)


@njit(cache=True)
def _lower_bound(px, b, n, t):
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if px[b, mid] < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _far_set(px, qty, b, n, t, lots):
    """Set/insert/delete level ``t`` in row ``b`` of a sorted far array holding ``n`` levels; returns the
    new n, -1 if full."""
    pos = _lower_bound(px, b, n, t)
    if pos < n and px[b, pos] == t:
        if lots != 0:
            qty[b, pos] = lots
            return n
        for i in range(pos, n - 1):
            px[b, i] = px[b, i + 1]
            qty[b, i] = qty[b, i + 1]
        return n - 1
    if lots == 0:
        return n  # deleting a level we do not have is normal on Binance
    if n >= px.shape[1]:
        return -1
    for i in range(n, pos, -1):
        px[b, i] = px[b, i - 1]
        qty[b, i] = qty[b, i - 1]
    px[b, pos] = t
    qty[b, pos] = lots
    return n + 1


# ------------------------------------------------------------------ best levels


@njit(cache=True)
def _highest_bid_below(state, b, win, far_px, t):
    """The highest bid tick strictly below ``t`` (NO_BID if none)."""
    lo = state[b, BS_WIN_LO]
    width = win.shape[1]
    best = NO_BID
    if state[b, BS_WIN_BIDS] > 0 and t > lo:
        i = min(t - lo, width) - 1
        while i >= 0 and win[b, i] == 0:
            i -= 1
        if i >= 0:
            best = lo + i
    n = state[b, BS_FAR_BIDS]
    if n > 0:
        pos = _lower_bound(far_px, b, n, t) - 1
        if pos >= 0 and far_px[b, pos] > best:
            best = far_px[b, pos]
    return best


@njit(cache=True)
def _lowest_ask_above(state, b, win, far_px, t):
    """The lowest ask tick strictly above ``t`` (NO_ASK if none)."""
    lo = state[b, BS_WIN_LO]
    width = win.shape[1]
    best = NO_ASK
    if state[b, BS_WIN_ASKS] > 0 and t < lo + width - 1:
        i = max(t - lo + 1, 0)
        while i < width and win[b, i] == 0:
            i += 1
        if i < width:
            best = lo + i
    n = state[b, BS_FAR_ASKS]
    if n > 0:
        pos = _lower_bound(far_px, b, n, t + 1)
        if pos < n and far_px[b, pos] < best:
            best = far_px[b, pos]
    return best


@njit(cache=True, inline="always")
def _set_side(state, b, win, far_px, far_qty, is_bid, t, lots):
    width = win.shape[1]
    if state[b, BS_WIN_PLACED] == 0:
        state[b, BS_WIN_LO] = t - width // 2
        state[b, BS_WIN_PLACED] = 1
    idx = t - state[b, BS_WIN_LO]
    if 0 <= idx < width:
        old = win[b, idx]
        win[b, idx] = lots
        count_slot = BS_WIN_BIDS if is_bid else BS_WIN_ASKS
        if old == 0:
            if lots != 0:
                state[b, count_slot] += 1
        elif lots == 0:
            state[b, count_slot] -= 1
    else:
        far_slot = BS_FAR_BIDS if is_bid else BS_FAR_ASKS
        n = _far_set(far_px, far_qty, b, state[b, far_slot], t, lots)
        if n < 0:
            return False
        state[b, far_slot] = n
    if is_bid:
        best = state[b, BS_BEST_BID]
        if lots != 0:
            if t > best:
                state[b, BS_BEST_BID] = t
        elif t == best:
            state[b, BS_BEST_BID] = _highest_bid_below(state, b, win, far_px, t)
    else:
        best = state[b, BS_BEST_ASK]
        if lots != 0:
            if t < best:
                state[b, BS_BEST_ASK] = t
        elif t == best:
            state[b, BS_BEST_ASK] = _lowest_ask_above(state, b, win, far_px, t)
    return True


@njit(cache=True)
def set_level(books, b, is_bid, t, lots):
    """Set one level (lots 0 deletes). False when the far arrays are full (level not stored)."""
    state, _p, bid_win, ask_win, far_bid_px, far_bid_qty, far_ask_px, far_ask_qty, _i, _m = books
    if is_bid:
        return _set_side(state, b, bid_win, far_bid_px, far_bid_qty, True, t, lots)
    return _set_side(state, b, ask_win, far_ask_px, far_ask_qty, False, t, lots)


@njit(cache=True)
def _clear(state, bid_win, ask_win, b):
    bid_win[b, :] = 0
    ask_win[b, :] = 0
    state[b, BS_WIN_BIDS] = 0
    state[b, BS_WIN_ASKS] = 0
    state[b, BS_FAR_BIDS] = 0
    state[b, BS_FAR_ASKS] = 0
    state[b, BS_BEST_BID] = NO_BID
    state[b, BS_BEST_ASK] = NO_ASK
    state[b, BS_WIN_PLACED] = 0  # the next level (a snapshot's best bid) centres the window


@njit(cache=True)
def _recentre_side(state, issues, b, win, far_px, far_qty, far_slot, count_slot, new_lo):
    width = win.shape[1]
    old_lo = state[b, BS_WIN_LO]
    n = state[b, far_slot]
    for i in range(width):  # levels leaving the window go to the far arrays
        if win[b, i] != 0:
            t = old_lo + i
            if t < new_lo or t >= new_lo + width:
                m = _far_set(far_px, far_qty, b, n, t, win[b, i])
                if m < 0:
                    issues[b, BookIssue.FAR_LEVELS_FULL] += 1
                else:
                    n = m
    shift = new_lo - old_lo
    if shift > 0:
        for i in range(width):
            j = i + shift
            win[b, i] = win[b, j] if j < width else 0
    else:
        for i in range(width - 1, -1, -1):
            j = i + shift
            win[b, i] = win[b, j] if j >= 0 else 0
    k = 0
    for i in range(n):  # far levels now inside the window move in
        t = far_px[b, i]
        if new_lo <= t < new_lo + width:
            win[b, t - new_lo] = far_qty[b, i]
        else:
            far_px[b, k] = t
            far_qty[b, k] = far_qty[b, i]
            k += 1
    state[b, far_slot] = k
    count = 0
    for i in range(width):
        if win[b, i] != 0:
            count += 1
    state[b, count_slot] = count


@njit(cache=True)
def _maybe_recentre(state, bid_win, ask_win, fbp, fbq, fap, faq, issues, b):
    """Re-centre the window on the touch when it drifted within W/8 of an edge."""
    width = bid_win.shape[1]
    bid = state[b, BS_BEST_BID]
    ask = state[b, BS_BEST_ASK]
    if bid != NO_BID and ask != NO_ASK:
        centre = (bid + ask) >> 1
    elif bid != NO_BID:
        centre = bid
    elif ask != NO_ASK:
        centre = ask
    else:
        return False
    lo = state[b, BS_WIN_LO]
    margin = width >> 3
    if lo + margin <= centre < lo + width - margin:
        return False
    new_lo = centre - width // 2
    _recentre_side(state, issues, b, bid_win, fbp, fbq, BS_FAR_BIDS, BS_WIN_BIDS, new_lo)
    _recentre_side(state, issues, b, ask_win, fap, faq, BS_FAR_ASKS, BS_WIN_ASKS, new_lo)
    state[b, BS_WIN_LO] = new_lo
    state[b, BS_RECENTRES] += 1
    return True


# ------------------------------------------------------------------ events


@njit(cache=True)
def _top(state, bid_win, ask_win, fbp, fbq, fap, faq, b, depth, out_px, out_qty, row):
    """Best ``depth`` levels a side into ``out_px/out_qty[row, 0, :]`` (bids) and ``[row, 1, :]`` (asks),
    ticks and lots, best first. Returns (n_bids, n_asks)."""
    width = bid_win.shape[1]
    lo = state[b, BS_WIN_LO]
    top = lo + width
    # bids: far levels above the window, then the window downwards, then far levels below it
    found = 0
    j = state[b, BS_FAR_BIDS] - 1
    while j >= 0 and found < depth and fbp[b, j] >= top:
        out_px[row, 0, found] = fbp[b, j]
        out_qty[row, 0, found] = fbq[b, j]
        found += 1
        j -= 1
    remaining = state[b, BS_WIN_BIDS]
    best = state[b, BS_BEST_BID]
    if remaining > 0 and best >= lo and found < depth:
        i = min(best, top - 1) - lo
        while i >= 0 and found < depth and remaining > 0:
            q = bid_win[b, i]
            if q != 0:
                out_px[row, 0, found] = lo + i
                out_qty[row, 0, found] = q
                found += 1
                remaining -= 1
            i -= 1
    while j >= 0 and found < depth:
        if fbp[b, j] < lo:
            out_px[row, 0, found] = fbp[b, j]
            out_qty[row, 0, found] = fbq[b, j]
            found += 1
        j -= 1
    n_bids = found
    # asks: far levels below the window, then the window upwards, then far levels above it
    found = 0
    n_far = state[b, BS_FAR_ASKS]
    j = 0
    while j < n_far and found < depth and fap[b, j] < lo:
        out_px[row, 1, found] = fap[b, j]
        out_qty[row, 1, found] = faq[b, j]
        found += 1
        j += 1
    remaining = state[b, BS_WIN_ASKS]
    best = state[b, BS_BEST_ASK]
    if remaining > 0 and best < top and found < depth:
        i = max(best, lo) - lo
        while i < width and found < depth and remaining > 0:
            q = ask_win[b, i]
            if q != 0:
                out_px[row, 1, found] = lo + i
                out_qty[row, 1, found] = q
                found += 1
                remaining -= 1
            i += 1
    while j < n_far and found < depth:
        if fap[b, j] >= top:
            out_px[row, 1, found] = fap[b, j]
            out_qty[row, 1, found] = faq[b, j]
            found += 1
        j += 1
    for k in range(n_bids, depth):
        out_px[row, 0, k] = 0
        out_qty[row, 0, k] = 0
    for k in range(found, depth):
        out_px[row, 1, k] = 0
        out_qty[row, 1, k] = 0
    return n_bids, found


@njit(cache=True)
def top_levels(books, b, depth, out_px, out_qty):
    """Best ``depth`` levels a side of book ``b``: ``out_px/out_qty`` shaped (1, 2, >=depth), row 0 = bids."""
    state, _p, bid_win, ask_win, fbp, fbq, fap, faq, _i, _m = books
    return _top(state, bid_win, ask_win, fbp, fbq, fap, faq, b, depth, out_px, out_qty, 0)


@njit(cache=True)
def _fill_snapshot(state, params, bid_win, ask_win, fbp, fbq, fap, faq, b, rec, levels, scratch_px, scratch_qty):
    """Write a ``book_snapshot`` record for book ``b`` with its best ``levels`` levels (<= record width)."""
    px_num = params[b, BP_PX_NUM]
    px_den = params[b, BP_PX_DEN]
    q_num = params[b, BP_QTY_NUM]
    q_den = params[b, BP_QTY_DEN]
    width = rec.bid_px.shape[0]
    if levels > width:
        levels = width
    n_bids, n_asks = _top(state, bid_win, ask_win, fbp, fbq, fap, faq, b, levels, scratch_px, scratch_qty, 0)
    bid_px = rec.bid_px
    bid_qty = rec.bid_qty
    ask_px = rec.ask_px
    ask_qty = rec.ask_qty
    for k in range(width):
        if k < n_bids:
            bid_px[k] = scratch_px[0, 0, k] * px_num / px_den
            bid_qty[k] = scratch_qty[0, 0, k] * q_num / q_den
        else:
            bid_px[k] = np.nan
            bid_qty[k] = 0.0
        if k < n_asks:
            ask_px[k] = scratch_px[0, 1, k] * px_num / px_den
            ask_qty[k] = scratch_qty[0, 1, k] * q_num / q_den
        else:
            ask_px[k] = np.nan
            ask_qty[k] = 0.0
    rec.exch_ts_ns = state[b, BS_EXCH_TS]
    rec.local_ts_ns = state[b, BS_LOCAL_TS]
    rec.update_id = state[b, BS_UPDATE_ID]
    rec.book_seq = state[b, BS_BOOK_SEQ]
    rec.valid = state[b, BS_VALID]
    rec.levels = max(n_bids, n_asks)
    if n_bids > 0 and n_asks > 0:
        bid = bid_px[0]
        ask = ask_px[0]
        bq = bid_qty[0]
        aq = ask_qty[0]
        rec.mid = 0.5 * (bid + ask)
        rec.spread = ask - bid
        total = bq + aq
        if total > 0.0:
            rec.microprice = (bid * aq + ask * bq) / total
            rec.imbalance = (bq - aq) / total
        else:
            rec.microprice = np.nan
            rec.imbalance = np.nan
    else:
        rec.mid = np.nan
        rec.spread = np.nan
        rec.microprice = np.nan
        rec.imbalance = np.nan


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

    The per-event code is written out here rather than in helpers: an inlined helper taking the book
    arrays costs a reference-count increment and decrement per array per event (~50 ns an event).
    """
    rows = 0
    checksum = np.int64(0)
    status = APPLY_REJECTED
    b = -1
    n_book = len(book_of)
    unknown_row = issues.shape[0] - 1  # the last issues row counts events of symbols with no book
    i = start
    while i < stop and rows < max_rows:
        sym = np.int64(events[i]["symbol_id"])
        b = book_of[sym] if sym < n_book else -1
        status = APPLY_REJECTED
        if b < 0:
            issues[unknown_row, BookIssue.UNKNOWN_SYMBOL] += 1
            i += 1
            continue
        state[b, BS_EVENTS] += 1
        kind = events[i]["kind"]
        flags = events[i]["flags"]
        local_ts = events[i]["local_ts_ns"]
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
            side = events[i]["side"]
            price = events[i]["price"]
            qty = events[i]["qty"]
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
                state[b, BS_BBO_UPDATE_ID] = events[i]["update_id"]
            else:
                if kind == EventKind.DEPTH:
                    if state[b, BS_VALID] == 0:
                        issues[b, BookIssue.DEPTH_WHILE_INVALID] += 1
                    update_id = events[i]["update_id"]
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
            exch_ts = events[i]["exch_ts_ns"]
            if exch_ts < state[b, BS_EXCH_TS]:
                issues[b, BookIssue.EXCH_TS_BACKWARDS] += 1
            state[b, BS_EXCH_TS] = exch_ts
            state[b, BS_UPDATE_ID] = events[i]["update_id"]
            state[b, BS_CHANGED] = 1
            status = APPLY_BOOK
            if flags & _LAST:
                status = APPLY_BOOK_END
                _end_of_message(state, bid_win, ask_win, fbp, fbq, fap, faq, issues, b)
                if out_snap is not None:
                    rec = out_snap[rows]
                    _fill_snapshot(state, params, bid_win, ask_win, fbp, fbq, fap, faq, b, rec, levels, out_px, out_qty)
                    rec.symbol_id = sym
                    rec.flags = 0
                elif out_meta is not None:
                    n_bids, n_asks = _top(state, bid_win, ask_win, fbp, fbq, fap, faq, b, levels, out_px, out_qty, rows)
                    out_meta[rows, 0] = b
                    out_meta[rows, 1] = state[b, BS_EXCH_TS]
                    out_meta[rows, 2] = state[b, BS_LOCAL_TS]
                    out_meta[rows, 3] = state[b, BS_UPDATE_ID]
                    out_meta[rows, 4] = state[b, BS_VALID]
                    out_meta[rows, 5] = n_bids
                    out_meta[rows, 6] = n_asks
                    out_meta[rows, 7] = i
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
