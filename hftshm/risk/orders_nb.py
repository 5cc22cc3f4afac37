"""Risk's open-order table: an open-addressing hash table keyed by (strategy_id, client_order_id).

Why risk keeps its own: the position check must count exposure of orders that are approved but not
yet filled, from the moment of approval (two orders in one batch cannot jointly breach), and the
kill switch must name every open order to cancel. The table is a structured numpy array (capacity a
power of two) with linear probing and backward-shift deletion, so there are no tombstones and a
long run never degrades. All functions are njit, never allocate, and return slot indexes or -1.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.runtime.resident import touch_pages

OPEN_ORDER_DTYPE = np.dtype(
    {
        "names": ["client_order_id", "order_id", "leaves", "confirmed_leaves", "price",
                  "strategy_id", "symbol_id", "used", "side", "acked", "cancel_sent"],
        "formats": ["i8", "i8", "f8", "f8", "f8", "u2", "u2", "u1", "u1", "u1", "u1"],
        "offsets": [0, 8, 16, 24, 32, 40, 42, 44, 45, 46, 47],
        "itemsize": 48,
    }
)
# leaves: open quantity risk reserves as exposure on the order's side (includes the increase of an
#         approved replace not yet confirmed)
# confirmed_leaves: open quantity as last reported by the OMS (ack, fill, replace)
# cancel_sent: a cancel for it went to the OMS (the kill switch does not send another)

_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)
_SHIFT = np.uint64(29)


def new_table(capacity: int) -> np.ndarray:
    """A zeroed table with at least ``capacity`` slots (rounded up to a power of two), every page
    made resident now (``runtime.resident``): ``np.zeros`` maps a large array's pages only at their
    first write, and orders land at random slots, so the first few hundred intents would take those page faults (~0.2 per
    intent at 8,192 slots) between the intent and its order."""
    size = 16
    while size < capacity:
        size *= 2
    table = np.zeros(size, dtype=OPEN_ORDER_DTYPE)
    touch_pages(table)
    return table


@njit(cache=True, inline="always")
def _home(table, strategy_id, client_order_id):
    x = np.uint64(client_order_id) * _K1 + np.uint64(strategy_id) * _K2
    x ^= x >> _SHIFT
    return np.int64(x & np.uint64(len(table) - 1))


@njit(cache=True)
def find(table, strategy_id, client_order_id):
    """Slot of the order, or -1."""
    mask = len(table) - 1
    i = _home(table, strategy_id, client_order_id)
    for _ in range(len(table)):
        slot = table[i]
        if slot.used == 0:
            return -1
        if slot.client_order_id == client_order_id and slot.strategy_id == strategy_id:
            return i
        i = (i + 1) & mask
    return -1


@njit(cache=True)
def insert(table, strategy_id, client_order_id, count):
    """Slot for a new key (marked used, other fields zeroed), or -1 if the key exists or the table is full.

    ``count`` is the current number of used slots: the table refuses to go past 7/8 full, where
    linear probing gets slow, and says so by returning -1 (the caller rejects with MAX_OPEN_ORDERS).
    """
    if count * 8 >= len(table) * 7:
        return -1
    mask = len(table) - 1
    i = _home(table, strategy_id, client_order_id)
    for _ in range(len(table)):
        slot = table[i]
        if slot.used == 0:
            slot.used = 1
            slot.strategy_id = strategy_id
            slot.client_order_id = client_order_id
            slot.order_id = 0
            slot.leaves = 0.0
            slot.confirmed_leaves = 0.0
            slot.price = 0.0
            slot.symbol_id = 0
            slot.side = 0
            slot.acked = 0
            slot.cancel_sent = 0
            return i
        if slot.client_order_id == client_order_id and slot.strategy_id == strategy_id:
            return -1
        i = (i + 1) & mask
    return -1


@njit(cache=True)
def remove(table, i):
    """Free slot ``i`` and shift later members of its probe run back, so lookups never need tombstones."""
    mask = len(table) - 1
    j = i
    while True:
        table[i].used = 0
        while True:
            j = (j + 1) & mask
            if table[j].used == 0:
                return
            home = _home(table, table[j].strategy_id, table[j].client_order_id)
            # j's entry may move into the hole at i only if its home is not cyclically in (i, j]
            if i <= j:
                movable = home <= i or home > j
            else:
                movable = home <= i and home > j
            if movable:
                break
        table[i] = table[j]
        i = j
