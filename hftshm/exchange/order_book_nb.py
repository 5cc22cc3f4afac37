"""The matching engine's order book as preallocated integer tables (price-time priority).

Per book (one per symbol) and side, the price levels are kept in a sorted array of level indices
with the BEST level at the END: most activity is at the top of the book, so inserting or removing
a level there shifts few entries, and the best level is ``ladder[book, side, len - 1]``. Bids sort
by ascending price, asks by descending price, so one comparison on ``key = +/-price`` serves both.
Each level holds a FIFO of its orders as a doubly linked list through the order table (time
priority). Orders and levels come from per-book free stacks, so nothing allocates while matching.

Order table rows (``orders[slot, OR_*]``, int64) and level rows (``levels[idx, LV_*]``) are wide,
row-major records: one order's fields share a cache line or two.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# order table columns
OR_ID = 0
OR_CLIENT_ID = 1
OR_ORIGIN_TS = 2
OR_PRICE = 3  # ticks
OR_LEAVES = 4  # lots
OR_CUM = 5  # lots executed so far
OR_PREV = 6  # slot of the previous order at the level (-1: head)
OR_NEXT = 7
OR_LEVEL = 8  # level index
OR_BOOK = 9
OR_OWNER = 10
OR_SIDE = 11  # 0 bid, 1 ask
OR_TIF = 12
OR_STRATEGY = 13
OR_SYMBOL = 14
ORDER_COLS = 16

# level table columns
LV_PRICE = 0
LV_TOTAL = 1  # lots resting at the level
LV_HEAD = 2
LV_TAIL = 3
LV_COUNT = 4
LEVEL_COLS = 8

# per-book counters (book_i64[book, BK_*])
BK_LEVELS = 0  # + side: number of levels on side 0 / 1
BK_ORDERS = 2  # + side: resting orders on side 0 / 1
BK_FREE_ORDERS = 4  # entries on the order free stack
BK_FREE_LEVELS = 5
BOOK_COLS = 8


def allocate(n_books: int, capacity: int) -> dict:
    """Every table of ``n_books`` books of ``capacity`` resting orders each, all slots free."""
    orders = np.zeros((n_books * capacity, ORDER_COLS), dtype=np.int64)
    levels = np.zeros((n_books * capacity, LEVEL_COLS), dtype=np.int64)
    ladder = np.zeros((n_books, 2, capacity), dtype=np.int32)
    book_i64 = np.zeros((n_books, BOOK_COLS), dtype=np.int64)
    free_orders = np.empty((n_books, capacity), dtype=np.int32)
    free_levels = np.empty((n_books, capacity), dtype=np.int32)
    for b in range(n_books):
        # popped from the end: lowest slot first, which keeps a small book in few cache lines
        free_orders[b] = np.arange(capacity, dtype=np.int32)[::-1] + b * capacity
        free_levels[b] = np.arange(capacity, dtype=np.int32)[::-1] + b * capacity
    book_i64[:, BK_FREE_ORDERS] = capacity
    book_i64[:, BK_FREE_LEVELS] = capacity
    return {"orders": orders, "levels": levels, "ladder": ladder, "book_i64": book_i64,
            "free_orders": free_orders, "free_levels": free_levels}


@njit(cache=True, _nrt=False, inline="always")
def side_key(side, price_ticks):
    # ascending key = worse to better: bids ascend by price, asks descend
    return price_ticks if side == 0 else -price_ticks


@njit(cache=True, _nrt=False, inline="always")
def find_level_pos(ladder, levels, book_i64, b, side, price_ticks):
    """(position in the side's sorted array, found): where the level is or would be inserted."""
    n = book_i64[b, BK_LEVELS + side]
    key = side_key(side, price_ticks)
    # most activity is within a few levels of the top: walk down from the best before bisecting
    k = n - 1
    stop = max(n - 8, 0)
    while k >= stop:
        level_key = side_key(side, levels[ladder[b, side, k], LV_PRICE])
        if key == level_key:
            return k, True
        if key > level_key:
            return k + 1, False
        k -= 1
    if stop == 0:
        return 0, False
    lo = 0
    hi = stop
    while lo < hi:
        mid = (lo + hi) >> 1
        if side_key(side, levels[ladder[b, side, mid], LV_PRICE]) < key:
            lo = mid + 1
        else:
            hi = mid
    found = lo < n and levels[ladder[b, side, lo], LV_PRICE] == price_ticks
    return lo, found


@njit(cache=True, _nrt=False, inline="always")
def best_level(ladder, book_i64, b, side):
    """Index of the best level of a side, or -1 when the side is empty."""
    n = book_i64[b, BK_LEVELS + side]
    if n == 0:
        return -1
    return np.int64(ladder[b, side, n - 1])


@njit(cache=True, _nrt=False, inline="always")
def level_at_rank(ladder, book_i64, b, side, rank):
    """The level ``rank`` places behind the best (0 = best), or -1."""
    n = book_i64[b, BK_LEVELS + side]
    if rank >= n:
        return -1
    return np.int64(ladder[b, side, n - 1 - rank])


@njit(cache=True, _nrt=False, inline="always")
def add_order(orders, levels, ladder, book_i64, free_levels, b, side, price_ticks, slot):
    """Append ``slot`` (fields already set) at the back of its price level, creating the level."""
    pos, found = find_level_pos(ladder, levels, book_i64, b, side, price_ticks)
    if found:
        lvl = np.int64(ladder[b, side, pos])
    else:
        top = book_i64[b, BK_FREE_LEVELS] - 1
        lvl = np.int64(free_levels[b, top])
        book_i64[b, BK_FREE_LEVELS] = top
        n = book_i64[b, BK_LEVELS + side]
        for k in range(n, pos, -1):
            ladder[b, side, k] = ladder[b, side, k - 1]
        ladder[b, side, pos] = lvl
        book_i64[b, BK_LEVELS + side] = n + 1
        levels[lvl, LV_PRICE] = price_ticks
        levels[lvl, LV_TOTAL] = 0
        levels[lvl, LV_HEAD] = -1
        levels[lvl, LV_TAIL] = -1
        levels[lvl, LV_COUNT] = 0
    tail = levels[lvl, LV_TAIL]
    orders[slot, OR_PREV] = tail
    orders[slot, OR_NEXT] = -1
    orders[slot, OR_LEVEL] = lvl
    orders[slot, OR_SIDE] = side
    orders[slot, OR_PRICE] = price_ticks
    if tail == -1:
        levels[lvl, LV_HEAD] = slot
    else:
        orders[tail, OR_NEXT] = slot
    levels[lvl, LV_TAIL] = slot
    levels[lvl, LV_TOTAL] += orders[slot, OR_LEAVES]
    levels[lvl, LV_COUNT] += 1
    book_i64[b, BK_ORDERS + side] += 1


@njit(cache=True, _nrt=False, inline="always")
def unlink_order(orders, levels, ladder, book_i64, free_levels, slot):
    """Take ``slot`` out of its level (removing the level when it empties); the slot stays allocated."""
    b = orders[slot, OR_BOOK]
    side = orders[slot, OR_SIDE]
    lvl = orders[slot, OR_LEVEL]
    prev = orders[slot, OR_PREV]
    nxt = orders[slot, OR_NEXT]
    if prev == -1:
        levels[lvl, LV_HEAD] = nxt
    else:
        orders[prev, OR_NEXT] = nxt
    if nxt == -1:
        levels[lvl, LV_TAIL] = prev
    else:
        orders[nxt, OR_PREV] = prev
    levels[lvl, LV_TOTAL] -= orders[slot, OR_LEAVES]
    levels[lvl, LV_COUNT] -= 1
    book_i64[b, BK_ORDERS + side] -= 1
    if levels[lvl, LV_COUNT] == 0:
        pos, found = find_level_pos(ladder, levels, book_i64, b, side, levels[lvl, LV_PRICE])
        n = book_i64[b, BK_LEVELS + side]
        for k in range(pos, n - 1):
            ladder[b, side, k] = ladder[b, side, k + 1]
        book_i64[b, BK_LEVELS + side] = n - 1
        top = book_i64[b, BK_FREE_LEVELS]
        free_levels[b, top] = lvl
        book_i64[b, BK_FREE_LEVELS] = top + 1


@njit(cache=True, _nrt=False, inline="always")
def alloc_order(book_i64, free_orders, b):
    """A free order slot of book ``b`` or -1 when the book is full."""
    top = book_i64[b, BK_FREE_ORDERS] - 1
    if top < 0:
        return -1
    book_i64[b, BK_FREE_ORDERS] = top
    return np.int64(free_orders[b, top])


@njit(cache=True, _nrt=False, inline="always")
def free_order(book_i64, free_orders, b, slot):
    top = book_i64[b, BK_FREE_ORDERS]
    free_orders[b, top] = slot
    book_i64[b, BK_FREE_ORDERS] = top + 1
