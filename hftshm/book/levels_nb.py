"""numba kernels: L2 book storage on integer price ticks, several symbols in one set of arrays.

Per book (row ``b`` of every array): a dense window of ``W`` ticks, ``[lo, lo + W)``, holding the
quantity in lots at ``tick - lo`` (an update near the touch is one store; the next best level after
a delete is a short scan), and every level outside the window in sorted ``far`` arrays (price
ascending, both sides), so depth is never truncated. When the touch drifts within W/8 of a window
edge the window is re-centred (O(W), rare). ``l2_apply_nb`` applies events on top of this; this module
stores levels and reads the top of book out.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.book.issues import BookIssue

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


@njit(cache=True)
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


# ------------------------------------------------------------------ top of book


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
