"""The fill model's own view of the visible market book: price levels, and what we already took.

Per book and side, levels sit in sorted arrays with the BEST at the END (as in the matching
engine): the top changes most and is cheapest to touch there. Each level carries the market's
quantity and ``used``: lots our own simulated orders already took from it, which the next of our
orders cannot take again. The market's own next update of a level (depth, snapshot, bbo) resets
``used``, because its quantity is then the exchange's fresh word on that level.

Depth diffs and snapshot levels set levels; a CLEAR empties the book. A BBO (the exchange's own
top of book) is newer than the depth it follows when its update id is higher: then better-priced
levels on its side are stale and removed, and its level is set. A side full to ``depth`` levels
drops its worst level to admit a better one (deep levels never matter for fills).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.exchange.common_nb import SC_LOT, SC_LOT_INV, SC_TICK, SC_TICK_INV, nearest_units

# per-book words (mv_i64[book, MV_*])
MV_LEN = 0  # + side: levels on side 0 (bids) / 1 (asks)
MV_LAST_UPDATE_ID = 2  # highest depth/snapshot update id applied
MV_DROPPED = 3  # levels dropped because a side was full
MV_WORDS = 4


def allocate(n_books: int, depth: int) -> dict:
    return {
        "mv_price": np.zeros((n_books, 2, depth), dtype=np.int64),
        "mv_qty": np.zeros((n_books, 2, depth), dtype=np.int64),
        "mv_used": np.zeros((n_books, 2, depth), dtype=np.int64),
        "mv_i64": np.zeros((n_books, MV_WORDS), dtype=np.int64),
    }


@njit(cache=True, _nrt=False, inline="always")
def _key(side, price_ticks):
    return price_ticks if side == 0 else -price_ticks


@njit(cache=True, _nrt=False)
def find(mv_price, mv_i64, b, side, price_ticks):
    """(position, found) of a price in the side's sorted array."""
    n = mv_i64[b, MV_LEN + side]
    key = _key(side, price_ticks)
    if n > 0:
        top = _key(side, mv_price[b, side, n - 1])
        if key == top:
            return n - 1, True
        if key > top:
            return n, False
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if _key(side, mv_price[b, side, mid]) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo, lo < n and mv_price[b, side, lo] == price_ticks


@njit(cache=True, _nrt=False)
def qty_at(mv_price, mv_qty, mv_i64, b, side, price_ticks):
    """Visible lots at a price (0 if no level)."""
    pos, found = find(mv_price, mv_i64, b, side, price_ticks)
    return mv_qty[b, side, pos] if found else 0


@njit(cache=True, _nrt=False)
def set_level(mv_price, mv_qty, mv_used, mv_i64, b, side, price_ticks, lots):
    """Set a level's quantity (0 deletes it); returns the quantity it had before."""
    pos, found = find(mv_price, mv_i64, b, side, price_ticks)
    n = mv_i64[b, MV_LEN + side]
    depth = mv_price.shape[2]
    if found:
        before = mv_qty[b, side, pos]
        if lots > 0:
            mv_qty[b, side, pos] = lots
            mv_used[b, side, pos] = 0
        else:
            for k in range(pos, n - 1):
                mv_price[b, side, k] = mv_price[b, side, k + 1]
                mv_qty[b, side, k] = mv_qty[b, side, k + 1]
                mv_used[b, side, k] = mv_used[b, side, k + 1]
            mv_i64[b, MV_LEN + side] = n - 1
        return before
    if lots <= 0:
        return 0
    if n == depth:
        if pos == 0:
            mv_i64[b, MV_DROPPED] += 1  # worse than everything kept
            return 0
        # drop the worst level (index 0) and insert below pos
        for k in range(0, pos - 1):
            mv_price[b, side, k] = mv_price[b, side, k + 1]
            mv_qty[b, side, k] = mv_qty[b, side, k + 1]
            mv_used[b, side, k] = mv_used[b, side, k + 1]
        pos -= 1
        mv_i64[b, MV_DROPPED] += 1
    else:
        for k in range(n, pos, -1):
            mv_price[b, side, k] = mv_price[b, side, k - 1]
            mv_qty[b, side, k] = mv_qty[b, side, k - 1]
            mv_used[b, side, k] = mv_used[b, side, k - 1]
        mv_i64[b, MV_LEN + side] = n + 1
    mv_price[b, side, pos] = price_ticks
    mv_qty[b, side, pos] = lots
    mv_used[b, side, pos] = 0
    return 0


@njit(cache=True, _nrt=False)
def clear(mv_i64, b):
    mv_i64[b, MV_LEN] = 0
    mv_i64[b, MV_LEN + 1] = 0


@njit(cache=True, _nrt=False)
def apply_bbo(mv_price, mv_qty, mv_used, mv_i64, b, side, price_ticks, lots, update_id):
    """The exchange's top of one side, if newer than the depth applied: trims stale better levels."""
    if update_id < mv_i64[b, MV_LAST_UPDATE_ID] or price_ticks <= 0:
        return
    n = mv_i64[b, MV_LEN + side]
    key = _key(side, price_ticks)
    while n > 0 and _key(side, mv_price[b, side, n - 1]) > key:
        n -= 1
    mv_i64[b, MV_LEN + side] = n
    set_level(mv_price, mv_qty, mv_used, mv_i64, b, side, price_ticks, lots)


@njit(cache=True, _nrt=False, inline="always")
def best_pos(mv_i64, b, side):
    """Index of the best level of a side, -1 if empty."""
    return mv_i64[b, MV_LEN + side] - 1


@njit(cache=True, _nrt=False)
def event_units(scale, b, price, qty):
    """(price ticks, lots) of a market event, rounded to the grid."""
    return (nearest_units(price, scale[b, SC_TICK], scale[b, SC_TICK_INV]),
            nearest_units(qty, scale[b, SC_LOT], scale[b, SC_LOT_INV]))
