"""The OMS's in-memory order table: preallocated slots and two hash indexes (numba kernels).

- ``ORDER_SLOT_DTYPE`` rows, one per order, addressed by slot number; never reallocated.
- an index ``order_id -> slot`` (reports name orders by platform id) and an index
  ``(strategy_id, client_order_id) -> slot`` (intents name orders by the strategy's id, and a
  second intent with a known pair is a duplicate, not a second order).
- slots come from a free stack; an order that reaches a terminal state is *retired*, not freed: it
  stays findable (a late fill is refused as an illegal transition, a resent intent is still a
  duplicate) until its slot is needed, oldest retired first.

Indexes are open addressing with linear probing over power-of-two arrays at most half full, and
backward-shift deletion, so there are no tombstones and a probe never runs long. A key is two
int64s (``a``, ``b``); the order-id index uses ``b = 0``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.runtime.warm_types import int64_scalars

# what a slot's order is waiting for the exchange to confirm (ack timeouts and resends apply)
PENDING_NONE = 0
PENDING_NEW = 1  # the order itself
PENDING_CANCEL = 2
PENDING_REPLACE = 3  # a price/qty change (``pending_price``/``pending_qty``)

#: bit of ``flags``: the exchange has seen the order (acked or filled it)
FLAG_ACKED = 1

ORDER_SLOT_DTYPE = np.dtype([
    ("order_id", "i8"),
    ("client_order_id", "i8"),
    ("created_ts_ns", "i8"),  # wall clock
    ("origin_ts_ns", "i8"),  # carried on resends for tick-to-trade tracing
    ("market_ts_ns", "i8"),
    ("deadline_ns", "i8"),  # monotonic: when the pending request times out
    ("request_client_order_id", "i8"),  # the pending cancel/replace's own client id (resends reuse it)
    ("pending_price", "f8"),  # the pending replace's new price and quantity
    ("pending_qty", "f8"),
    ("price", "f8"),
    ("qty", "f8"),
    ("cum_qty", "f8"),
    ("leaves_qty", "f8"),
    ("strategy_id", "u2"),
    ("symbol_id", "u2"),
    ("owner", "u2"),
    ("attempt", "u2"),
    ("side", "u1"),
    ("order_type", "u1"),
    ("tif", "u1"),
    ("state", "u1"),  # hftshm.codes.OrderState; 0 = slot unused
    ("pending", "u1"),  # PENDING_*
    ("in_timers", "u1"),  # 1 while the slot is in the timer list
    ("flags", "u2"),  # FLAG_*
], align=True)

EMPTY = np.int32(-1)

# words of the ``slots`` int64 bookkeeping array
S_FREE_TOP = 0  # number of entries on the free stack
S_RETIRED_HEAD = 1  # next retired slot to reuse (monotonic counter; index = counter % capacity)
S_RETIRED_TAIL = 2
S_OPEN = 3  # orders in a non-terminal state
S_WORDS = 8


def index_capacity(max_orders: int) -> int:
    """Index size for ``max_orders`` keys: a power of two, at most half full."""
    capacity = 16
    while capacity < 2 * max_orders:
        capacity *= 2
    return capacity


def new_index(max_orders: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    capacity = index_capacity(max_orders)
    return (np.zeros(capacity, np.int64), np.zeros(capacity, np.int64), np.full(capacity, EMPTY, np.int32))


@njit(cache=True, inline="always")
def _hash(a, b):
    # splitmix64 finaliser over both key words: good spread for sequential ids
    x = np.uint64(a) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(b)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True)
def index_find(keys_a, keys_b, values, a, b):
    """Slot stored under (a, b), or -1."""
    mask = np.uint64(values.shape[0] - 1)
    i = np.int64(_hash(a, b) & mask)
    while True:
        v = values[i]
        if v == EMPTY:
            return np.int32(-1)
        if keys_a[i] == a and keys_b[i] == b:
            return v
        i = (i + 1) & np.int64(mask)


@njit(cache=True)
def index_insert(keys_a, keys_b, values, a, b, value):
    """1 inserted, 0 the key is already present (nothing changed)."""
    mask = np.uint64(values.shape[0] - 1)
    i = np.int64(_hash(a, b) & mask)
    while True:
        if values[i] == EMPTY:
            keys_a[i] = a
            keys_b[i] = b
            values[i] = value
            return 1
        if keys_a[i] == a and keys_b[i] == b:
            return 0
        i = (i + 1) & np.int64(mask)


@njit(cache=True)
def index_delete(keys_a, keys_b, values, a, b):
    """1 deleted, 0 absent. Backward-shift deletion keeps every probe chain unbroken."""
    mask = np.int64(values.shape[0] - 1)
    i = np.int64(_hash(a, b) & np.uint64(mask))
    while True:
        if values[i] == EMPTY:
            return 0
        if keys_a[i] == a and keys_b[i] == b:
            break
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        if values[j] == EMPTY:
            break
        home = np.int64(_hash(keys_a[j], keys_b[j]) & np.uint64(mask))
        # move j back into the hole at i unless its home lies cyclically in (i, j]
        if (j > i and (home <= i or home > j)) or (j < i and (home <= i and home > j)):
            keys_a[i] = keys_a[j]
            keys_b[i] = keys_b[j]
            values[i] = values[j]
            i = j
    values[i] = EMPTY
    keys_a[i] = 0
    keys_b[i] = 0
    return 1


def new_slots(max_orders: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(orders table, free stack, retired FIFO, bookkeeping words); every slot starts free."""
    orders = np.zeros(max_orders, dtype=ORDER_SLOT_DTYPE)
    free = np.arange(max_orders - 1, -1, -1, dtype=np.int32)  # pop order: slot 0 first
    retired = np.full(max_orders, EMPTY, dtype=np.int32)
    words = np.zeros(S_WORDS, dtype=np.int64)
    words[S_FREE_TOP] = max_orders
    return orders, free, retired, words


@njit(cache=True)
def allocate_slot(orders, free, retired, words, oid_a, oid_b, oid_v, cid_a, cid_b, cid_v):
    """A slot for a new order, or -1 when every slot holds an open order.

    A free slot if any; otherwise the oldest retired order is forgotten (removed from both
    indexes) and its slot reused.
    """
    top = words[S_FREE_TOP]
    if top > 0:
        words[S_FREE_TOP] = top - 1
        return free[top - 1]
    capacity = retired.shape[0]
    if words[S_RETIRED_HEAD] == words[S_RETIRED_TAIL]:
        return np.int32(-1)
    slot = retired[words[S_RETIRED_HEAD] % capacity]
    words[S_RETIRED_HEAD] += 1
    index_delete(oid_a, oid_b, oid_v, orders[slot].order_id, 0)
    index_delete(cid_a, cid_b, cid_v, np.int64(orders[slot].strategy_id), orders[slot].client_order_id)
    orders[slot].state = 0
    return slot


@int64_scalars
@njit(cache=True)
def retire_slot(retired, words, slot):
    """An order reached a terminal state: keep it findable until its slot is needed."""
    capacity = retired.shape[0]
    retired[words[S_RETIRED_TAIL] % capacity] = slot
    words[S_RETIRED_TAIL] += 1
    words[S_OPEN] -= 1


@njit(cache=True)
def free_unused_slot(free, words, slot):
    """Give back a slot that was allocated but never held an order."""
    free[words[S_FREE_TOP]] = slot
    words[S_FREE_TOP] += 1
