"""The fill model's own view of the visible market book: price levels, and what we already took.

Each level carries the market's quantity and ``used``: lots our own simulated orders already took
from it, which the next of our orders cannot take again. The market's own next update of a level
(depth, snapshot, bbo) resets ``used``, because its quantity is then the exchange's fresh word on it.

Depth diffs and snapshot levels set levels; a CLEAR empties the book. A BBO (the exchange's own
top of book) is newer than the depth it follows when its update id is higher: then better-priced
levels on its side are stale and removed, and its level is set. A side full to ``depth`` levels
drops its worst level to admit a better one (deep levels never matter for fills).

Storage (per book and side), as in the L2 book (``hftshm.book.levels_nb``): a dense window of
``WINDOW_TICKS`` ticks ``[lo, lo + WINDOW_TICKS)`` holds the levels near the touch at ``price - lo``,
so the common update is one store and the next best level is a short scan; every level outside
the window sits in sorted ``far`` arrays (best at the END; deep updates shift them, but they are
few). When the side's best drifts near a window edge the window is re-centred (O(window + far),
rare). Shifting sorted arrays of thousands of levels on every deep update was what made the old
view slow.

A level is addressed by a location ``loc``: ``loc < depth`` is far slot ``loc``, ``loc >= depth``
is window slot ``loc - depth``; ``mv_qty``/``mv_used`` hold both ranges, ``mv_price`` the far prices
(a window slot's price is ``lo + slot``). Walk a side from its best with ``best_loc``/``next_loc``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.exchange.common_nb import SC_LOT, SC_LOT_INV, SC_TICK, SC_TICK_INV, nearest_units

# 32768 ticks (3,276.8 USD for BTCUSDT) hold nearly all of a 4096-level book side: far updates are rare
WINDOW_TICKS = 1 << 15
NO_LEVEL = -1

# per-book words (mv_i64[book, MV_*]); "+ side" words: side 0 (bids) / 1 (asks)
MV_FAR_N = 0  # + side: levels in the far arrays
MV_LAST_UPDATE_ID = 2  # highest depth/snapshot update id applied
MV_DROPPED = 3  # levels dropped because a side was full
MV_WIN_N = 4  # + side: levels in the window
MV_WIN_BEST = 6  # + side: window slot of the window's best level, -1 if none
MV_WIN_LO = 8  # + side: price ticks of window slot 0
MV_RECENTRES = 10
MV_WIN_WORST = 12  # + side: window slot of the window's worst level, -1 if none (found when a side is full)
MV_WINDOW = 14  # window width in ticks (kept here, not compiled in: numba caches of callers stay valid)
MV_WORDS = 16


def allocate(n_books: int, depth: int, window_ticks: int = WINDOW_TICKS) -> dict:
    mv_i64 = np.zeros((n_books, MV_WORDS), dtype=np.int64)
    mv_i64[:, MV_WINDOW] = window_ticks
    mv_i64[:, MV_WIN_BEST] = NO_LEVEL
    mv_i64[:, MV_WIN_BEST + 1] = NO_LEVEL
    mv_i64[:, MV_WIN_WORST] = NO_LEVEL
    mv_i64[:, MV_WIN_WORST + 1] = NO_LEVEL
    return {
        "mv_price": np.zeros((n_books, 2, depth), dtype=np.int64),
        "mv_qty": np.zeros((n_books, 2, depth + window_ticks), dtype=np.int64),
        "mv_used": np.zeros((n_books, 2, depth + window_ticks), dtype=np.int64),
        "mv_i64": mv_i64,
    }


@njit(cache=True, _nrt=False, inline="always")
def _key(side, price_ticks):
    """Larger is better on both sides."""
    return price_ticks if side == 0 else -price_ticks


@njit(cache=True, _nrt=False, inline="always")
def _worse_step(side):
    """Window slot step towards worse prices."""
    return -1 if side == 0 else 1


@njit(cache=True, _nrt=False, inline="always")
def _worst_edge(mv_i64, b, side):
    """Price of the window's worst slot."""
    lo = mv_i64[b, MV_WIN_LO + side]
    return lo if side == 0 else lo + mv_i64[b, MV_WINDOW] - 1


@njit(cache=True, _nrt=False, inline="always")
def _best_edge(mv_i64, b, side):
    lo = mv_i64[b, MV_WIN_LO + side]
    return lo + mv_i64[b, MV_WINDOW] - 1 if side == 0 else lo


# ------------------------------------------------------------------ far levels (sorted by key, best at end)


@njit(cache=True, _nrt=False)
def _far_lower_bound(mv_price, mv_i64, b, side, key):
    """Number of far levels with key below ``key``."""
    lo = 0
    hi = mv_i64[b, MV_FAR_N + side]
    while lo < hi:
        mid = (lo + hi) >> 1
        if _key(side, mv_price[b, side, mid]) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, _nrt=False)
def _far_find(mv_price, mv_i64, b, side, price_ticks):
    """(position, found) of a price in the far array."""
    n = mv_i64[b, MV_FAR_N + side]
    key = _key(side, price_ticks)
    if n > 0:
        top = _key(side, mv_price[b, side, n - 1])
        if key == top:
            return n - 1, True
        if key > top:
            return n, False
    pos = _far_lower_bound(mv_price, mv_i64, b, side, key)
    return pos, pos < n and mv_price[b, side, pos] == price_ticks


@njit(cache=True, _nrt=False)
def _far_delete(mv_price, mv_qty, mv_used, mv_i64, b, side, pos):
    n = mv_i64[b, MV_FAR_N + side]
    for k in range(pos, n - 1):
        mv_price[b, side, k] = mv_price[b, side, k + 1]
        mv_qty[b, side, k] = mv_qty[b, side, k + 1]
        mv_used[b, side, k] = mv_used[b, side, k + 1]
    mv_i64[b, MV_FAR_N + side] = n - 1


@njit(cache=True, _nrt=False)
def _far_insert(mv_price, mv_qty, mv_used, mv_i64, b, side, pos, price_ticks, lots, used):
    n = mv_i64[b, MV_FAR_N + side]
    for k in range(n, pos, -1):
        mv_price[b, side, k] = mv_price[b, side, k - 1]
        mv_qty[b, side, k] = mv_qty[b, side, k - 1]
        mv_used[b, side, k] = mv_used[b, side, k - 1]
    mv_price[b, side, pos] = price_ticks
    mv_qty[b, side, pos] = lots
    mv_used[b, side, pos] = used
    mv_i64[b, MV_FAR_N + side] = n + 1


# ------------------------------------------------------------------ walking a side


@njit(cache=True, _nrt=False)
def _scan_worse(mv_qty, b, side, cap, slot):
    """First occupied window slot strictly worse than ``slot``, -1 if none."""
    step = _worse_step(side)
    s = slot + step
    w = mv_qty.shape[2] - cap
    while 0 <= s < w:
        if mv_qty[b, side, cap + s] > 0:
            return s
        s += step
    return NO_LEVEL


@njit(cache=True, _nrt=False)
def _scan_better(mv_qty, b, side, cap, slot):
    """First occupied window slot strictly better than ``slot``, -1 if none."""
    step = -_worse_step(side)
    s = slot + step
    w = mv_qty.shape[2] - cap
    while 0 <= s < w:
        if mv_qty[b, side, cap + s] > 0:
            return s
        s += step
    return NO_LEVEL


@njit(cache=True, _nrt=False, forceinline=True)
def best_loc(mv_price, mv_i64, b, side):
    """Location of the best level of a side, NO_LEVEL (-1) if empty."""
    n = mv_i64[b, MV_FAR_N + side]
    wb = mv_i64[b, MV_WIN_BEST + side]
    cap = mv_price.shape[2]
    if n > 0:
        # the far array's best is the only far level that can beat the window
        if wb < 0 or _key(side, mv_price[b, side, n - 1]) > _key(side, mv_i64[b, MV_WIN_LO + side] + wb):
            return n - 1
    if wb >= 0:
        return cap + wb
    return NO_LEVEL


@njit(cache=True, _nrt=False, inline="always")
def loc_price(mv_price, mv_i64, b, side, loc):
    cap = mv_price.shape[2]
    return mv_price[b, side, loc] if loc < cap else mv_i64[b, MV_WIN_LO + side] + loc - cap


@njit(cache=True, _nrt=False)
def next_loc(mv_price, mv_qty, mv_i64, b, side, loc):
    """Location of the next worse level after ``loc``, NO_LEVEL (-1) if none."""
    cap = mv_price.shape[2]
    if loc >= cap:
        s = _scan_worse(mv_qty, b, side, cap, loc - cap)
        if s >= 0:
            return cap + s
        # then the far levels worse than the window: the best of them is just below the split
        below = _far_lower_bound(mv_price, mv_i64, b, side, _key(side, _worst_edge(mv_i64, b, side)))
        return below - 1 if below > 0 else NO_LEVEL
    k = loc - 1
    if k < 0:
        return NO_LEVEL
    best_edge_key = _key(side, _best_edge(mv_i64, b, side))
    if _key(side, mv_price[b, side, loc]) > best_edge_key:  # leaving the far levels better than the window
        if _key(side, mv_price[b, side, k]) > best_edge_key:
            return k
        wb = mv_i64[b, MV_WIN_BEST + side]
        if wb >= 0:
            return cap + wb
    return k


@njit(cache=True, _nrt=False)
def _worst_loc(mv_price, mv_qty, mv_i64, b, side):
    """Location of the worst level of a non-empty side."""
    cap = mv_price.shape[2]
    if mv_i64[b, MV_FAR_N + side] > 0 and \
            _key(side, mv_price[b, side, 0]) < _key(side, _worst_edge(mv_i64, b, side)):
        return 0
    if mv_i64[b, MV_WIN_N + side] > 0:
        return cap + mv_i64[b, MV_WIN_WORST + side]
    return 0


@njit(cache=True, _nrt=False)
def _remove_loc(mv_price, mv_qty, mv_used, mv_i64, b, side, loc):
    cap = mv_price.shape[2]
    if loc < cap:
        _far_delete(mv_price, mv_qty, mv_used, mv_i64, b, side, loc)
        return
    _remove_window_slot(mv_qty, mv_used, mv_i64, b, side, cap, loc - cap)


@njit(cache=True, _nrt=False, forceinline=True)
def _remove_window_slot(mv_qty, mv_used, mv_i64, b, side, cap, s):
    """Empty window slot ``s`` (occupied). Inlined into ``set_level``: a level deleted in the window is
    the commonest depth event, and a call passing the view's arrays cost more than the removal."""
    loc = cap + s
    mv_qty[b, side, loc] = 0
    mv_used[b, side, loc] = 0
    mv_i64[b, MV_WIN_N + side] -= 1
    if mv_i64[b, MV_WIN_BEST + side] == s:
        mv_i64[b, MV_WIN_BEST + side] = _scan_worse(mv_qty, b, side, cap, s)
    if mv_i64[b, MV_WIN_WORST + side] == s:
        mv_i64[b, MV_WIN_WORST + side] = _scan_better(mv_qty, b, side, cap, s)


@njit(cache=True, _nrt=False)
def _recentre(mv_price, mv_qty, mv_used, mv_i64, b, side, new_lo):
    """Move the window to ``[new_lo, new_lo + window)``: its levels go to the far arrays, the far
    levels inside the new range come in. Total levels never exceed ``depth``, so the far arrays fit."""
    cap = mv_price.shape[2]
    n = mv_i64[b, MV_FAR_N + side]
    win_n = mv_i64[b, MV_WIN_N + side]
    lo = mv_i64[b, MV_WIN_LO + side]
    w = mv_i64[b, MV_WINDOW]
    if win_n > 0:
        split = _far_lower_bound(mv_price, mv_i64, b, side, _key(side, _worst_edge(mv_i64, b, side)))
        for k in range(n - 1, split - 1, -1):
            mv_price[b, side, k + win_n] = mv_price[b, side, k]
            mv_qty[b, side, k + win_n] = mv_qty[b, side, k]
            mv_used[b, side, k + win_n] = mv_used[b, side, k]
        k = split
        for m in range(w):
            s = m if side == 0 else w - 1 - m  # worst first: far arrays ascend by key
            if mv_qty[b, side, cap + s] > 0:
                mv_price[b, side, k] = lo + s
                mv_qty[b, side, k] = mv_qty[b, side, cap + s]
                mv_used[b, side, k] = mv_used[b, side, cap + s]
                mv_qty[b, side, cap + s] = 0
                mv_used[b, side, cap + s] = 0
                k += 1
        n += win_n
    mv_i64[b, MV_FAR_N + side] = n
    mv_i64[b, MV_WIN_N + side] = 0
    mv_i64[b, MV_WIN_BEST + side] = NO_LEVEL
    mv_i64[b, MV_WIN_WORST + side] = NO_LEVEL
    mv_i64[b, MV_WIN_LO + side] = new_lo
    first = _far_lower_bound(mv_price, mv_i64, b, side, _key(side, _worst_edge(mv_i64, b, side)))
    stop = _far_lower_bound(mv_price, mv_i64, b, side, _key(side, _best_edge(mv_i64, b, side)) + 1)
    for k in range(first, stop):
        s = mv_price[b, side, k] - new_lo
        mv_qty[b, side, cap + s] = mv_qty[b, side, k]
        mv_used[b, side, cap + s] = mv_used[b, side, k]
    if stop > first:
        mv_i64[b, MV_WIN_BEST + side] = mv_price[b, side, stop - 1] - new_lo
        mv_i64[b, MV_WIN_WORST + side] = mv_price[b, side, first] - new_lo
        mv_i64[b, MV_WIN_N + side] = stop - first
        gone = stop - first
        for k in range(stop, n):
            mv_price[b, side, k - gone] = mv_price[b, side, k]
            mv_qty[b, side, k - gone] = mv_qty[b, side, k]
            mv_used[b, side, k - gone] = mv_used[b, side, k]
        mv_i64[b, MV_FAR_N + side] = n - gone
    mv_i64[b, MV_RECENTRES] += 1


@njit(cache=True, _nrt=False, forceinline=True)
def _keep_best_in_window(mv_price, mv_qty, mv_used, mv_i64, b, side):
    loc = best_loc(mv_price, mv_i64, b, side)
    if loc < 0:
        return
    s = loc_price(mv_price, mv_i64, b, side, loc) - mv_i64[b, MV_WIN_LO + side]
    w = mv_i64[b, MV_WINDOW]
    margin = w >> 3  # re-centre when the best is this close to a window edge
    if margin <= s < w - margin:
        return
    # leave most of the window on the worse side of the best, where the levels are
    best = s + mv_i64[b, MV_WIN_LO + side]
    new_lo = best - (w - 2 * margin) if side == 0 else best - 2 * margin
    _recentre(mv_price, mv_qty, mv_used, mv_i64, b, side, new_lo)


# ------------------------------------------------------------------ updates and reads


@njit(cache=True, _nrt=False, forceinline=True)
def qty_at(mv_price, mv_qty, mv_i64, b, side, price_ticks):
    """Visible lots at a price (0 if no level)."""
    s = price_ticks - mv_i64[b, MV_WIN_LO + side]
    if 0 <= s < mv_i64[b, MV_WINDOW]:
        return mv_qty[b, side, mv_price.shape[2] + s]
    pos, found = _far_find(mv_price, mv_i64, b, side, price_ticks)
    return mv_qty[b, side, pos] if found else 0


@njit(cache=True, _nrt=False)
def _admit(mv_price, mv_qty, mv_used, mv_i64, b, side, price_ticks):
    """Room for one new level on a side full to ``depth``: False if it is worse than everything kept,
    else the worst level is dropped."""
    cap = mv_price.shape[2]
    if mv_i64[b, MV_FAR_N + side] + mv_i64[b, MV_WIN_N + side] < cap:
        return True
    mv_i64[b, MV_DROPPED] += 1
    worst = _worst_loc(mv_price, mv_qty, mv_i64, b, side)
    if _key(side, price_ticks) < _key(side, loc_price(mv_price, mv_i64, b, side, worst)):
        return False
    _remove_loc(mv_price, mv_qty, mv_used, mv_i64, b, side, worst)
    return True


@njit(cache=True, _nrt=False, forceinline=True)
def set_level(mv_price, mv_qty, mv_used, mv_i64, b, side, price_ticks, lots):
    """Set a level's quantity (0 deletes it); returns the quantity it had before."""
    cap = mv_price.shape[2]
    s = price_ticks - mv_i64[b, MV_WIN_LO + side]
    if 0 <= s < mv_i64[b, MV_WINDOW]:
        loc = cap + s
        before = mv_qty[b, side, loc]
        if before > 0:
            if lots > 0:
                mv_qty[b, side, loc] = lots
                mv_used[b, side, loc] = 0
                return before
            wb = mv_i64[b, MV_WIN_BEST + side]
            _remove_window_slot(mv_qty, mv_used, mv_i64, b, side, cap, s)
            if s != wb:
                # not the window's best: the side's best is where it was, inside the margins
                # _keep_best_in_window left it in (the commonest depth event; its check cost more)
                return before
        else:
            # a side with room admits at once; only a full side calls _admit (which would say True)
            if lots <= 0 or (mv_i64[b, MV_FAR_N + side] + mv_i64[b, MV_WIN_N + side] >= cap
                             and not _admit(mv_price, mv_qty, mv_used, mv_i64, b, side, price_ticks)):
                return 0
            mv_qty[b, side, loc] = lots
            mv_used[b, side, loc] = 0
            mv_i64[b, MV_WIN_N + side] += 1
            ww = mv_i64[b, MV_WIN_WORST + side]
            if ww < 0 or _key(side, s) < _key(side, ww):
                mv_i64[b, MV_WIN_WORST + side] = s
            wb = mv_i64[b, MV_WIN_BEST + side]
            if wb >= 0 and _key(side, s) < _key(side, wb):
                return 0  # worse than the window's best: the side's best did not move
            mv_i64[b, MV_WIN_BEST + side] = s
    else:
        pos, found = _far_find(mv_price, mv_i64, b, side, price_ticks)
        before = mv_qty[b, side, pos] if found else 0
        if found:
            if lots > 0:
                mv_qty[b, side, pos] = lots
                mv_used[b, side, pos] = 0
                return before
            _far_delete(mv_price, mv_qty, mv_used, mv_i64, b, side, pos)
        else:
            if lots <= 0 or (mv_i64[b, MV_FAR_N + side] + mv_i64[b, MV_WIN_N + side] >= cap
                             and not _admit(mv_price, mv_qty, mv_used, mv_i64, b, side, price_ticks)):
                return 0
            pos, found = _far_find(mv_price, mv_i64, b, side, price_ticks)  # the drop may have moved it
            _far_insert(mv_price, mv_qty, mv_used, mv_i64, b, side, pos, price_ticks, lots, 0)
    _keep_best_in_window(mv_price, mv_qty, mv_used, mv_i64, b, side)
    return before


@njit(cache=True, _nrt=False)
def clear(mv_price, mv_qty, mv_used, mv_i64, b):
    cap = mv_price.shape[2]
    for side in range(2):
        for s in range(mv_i64[b, MV_WINDOW]):
            mv_qty[b, side, cap + s] = 0
            mv_used[b, side, cap + s] = 0
        mv_i64[b, MV_FAR_N + side] = 0
        mv_i64[b, MV_WIN_N + side] = 0
        mv_i64[b, MV_WIN_BEST + side] = NO_LEVEL
        mv_i64[b, MV_WIN_WORST + side] = NO_LEVEL


@njit(cache=True, _nrt=False, forceinline=True)
def apply_bbo(mv_price, mv_qty, mv_used, mv_i64, b, side, price_ticks, lots, update_id):
    """The exchange's top of one side, if newer than the depth applied: trims stale better levels."""
    if update_id < mv_i64[b, MV_LAST_UPDATE_ID] or price_ticks <= 0:
        return
    key = _key(side, price_ticks)
    loc = best_loc(mv_price, mv_i64, b, side)
    trimmed = False
    while loc >= 0 and _key(side, loc_price(mv_price, mv_i64, b, side, loc)) > key:
        _remove_loc(mv_price, mv_qty, mv_used, mv_i64, b, side, loc)
        loc = best_loc(mv_price, mv_i64, b, side)
        trimmed = True
    set_level(mv_price, mv_qty, mv_used, mv_i64, b, side, price_ticks, lots)
    if trimmed:
        # set_level re-checks the best's place only when its own change moved the best; nothing
        # trimmed (the common case), the best is where the last check left it
        _keep_best_in_window(mv_price, mv_qty, mv_used, mv_i64, b, side)


@njit(cache=True, _nrt=False)
def top_levels(mv_price, mv_qty, mv_i64, b, side, out_price, out_qty):
    """The best ``len(out_price)`` levels of a side, best first (price ticks, lots); returns how many."""
    n = 0
    loc = best_loc(mv_price, mv_i64, b, side)
    while loc >= 0 and n < len(out_price):
        out_price[n] = loc_price(mv_price, mv_i64, b, side, loc)
        out_qty[n] = mv_qty[b, side, loc]
        n += 1
        loc = next_loc(mv_price, mv_qty, mv_i64, b, side, loc)
    return n


@njit(cache=True, _nrt=False)
def event_units(scale, b, price, qty):
    """(price ticks, lots) of a market event, rounded to the grid."""
    return (nearest_units(price, scale[b, SC_TICK], scale[b, SC_TICK_INV]),
            nearest_units(qty, scale[b, SC_LOT], scale[b, SC_LOT_INV]))
