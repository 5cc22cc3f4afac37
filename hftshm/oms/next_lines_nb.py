"""The cache lines the OMS's next orders will touch, prefetched while it is idle (numba kernels).

Why: a new order touches a few lines of multi-megabyte tables (at the shipped 65,536 slots the
order table is 7.5 MB and each hash index 2.5 MB), and which lines depends on the order's ids. A
sequential id hashes to a line nobody touched for thousands of orders, so each of those loads
misses every cache, and an idle prefetch of "the small arrays" (``runtime.keep_warm``) cannot know
them. The OMS can: it numbers the orders itself, it pops slots off its own free stack, and a
strategy's client order ids count up one by one. Measured on 2 new orders from cold caches
(65,536 slots): 4.9 us with nothing prefetched, 2.3 us with these lines prefetched (1.6 us warm).

What one pull asks for (``prefetch_next``)::

    next AHEAD order ids      -> their order-id index entry (keys a, b, value: three arrays)
    next AHEAD free slots     -> their rows (120 bytes: two lines); with the free stack empty,
                                 the retired rows to be reused and the index entries they leave
    each strategy seen lately -> the client-id index entries of its next AHEAD client ids
    the RECENT slots touched  -> row and both index entries of each still-open order (the
                                 cancel or replace of a quote, the exchange's ack and fill of it)

The hints live in the OMS's ``words`` (``note_client``, ``note_slot``, called by the kernels that
create and amend orders): a strategy's last client id in one of ``CLIENTS`` pairs picked by its id,
the last ``RECENT`` slots in a small ring. A wrong hint costs a useless prefetch, never a wrong
result: nothing here writes the tables.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.oms.emit_nb import (HINT_CLIENTS as CLIENTS, HINT_RECENT as RECENT, ID_SHIFT, O_CLIENTS, O_EPOCH,
                                O_NEXT_ORDER, O_RECENT, O_RECENT_NEXT)
from hftshm.oms.order_table_nb import S_FREE_TOP, S_RETIRED_HEAD, S_RETIRED_TAIL, _hash
from hftshm.runtime.keep_warm_nb import LINE, WRITE, prefetch

AHEAD = 2  # orders and client ids looked ahead: a quote is a bid and an ask


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def note_client(words, strategy_id, client_order_id):
    """A strategy used ``client_order_id``: its next ones are the ones after it."""
    k = O_CLIENTS + 2 * (np.int64(strategy_id) % CLIENTS)
    words[k] = np.int64(strategy_id)
    words[k + 1] = client_order_id


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def note_slot(words, slot):
    """An order's slot was written: its order is likely to be amended or reported on next."""
    words[O_RECENT + words[O_RECENT_NEXT] % RECENT] = np.int64(slot) + 1  # 0: empty
    words[O_RECENT_NEXT] += 1


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _entry(keys_a, keys_b, values, a, b):
    """Prefetch the index entry (a, b) hashes to (its first probe): 3 lines."""
    i = np.int64(_hash(a, b) & np.uint64(values.shape[0] - 1))
    prefetch(keys_a.ctypes.data + 8 * i, WRITE)
    prefetch(keys_b.ctypes.data + 8 * i, WRITE)
    prefetch(values.ctypes.data + 4 * i, WRITE)
    return 3


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _row(orders, slot):
    start = orders.ctypes.data + slot * orders.itemsize
    n = 0
    for address in range(start & ~(LINE - 1), start + orders.itemsize, LINE):
        prefetch(address, WRITE)
        n += 1
    return n


@njit(cache=True, nogil=True, _nrt=False)
def prefetch_next(book, ctl):
    """One pull of what the next orders will touch (see the module); returns the lines asked for."""
    orders, free, retired, slot_words, oid_a, oid_b, oid_v, cid_a, cid_b, cid_v = book
    words = ctl[1]
    terminal = ctl[4]
    lines = 0
    epoch = words[O_EPOCH] << ID_SHIFT
    for k in range(1, AHEAD + 1):
        lines += _entry(oid_a, oid_b, oid_v, epoch | (words[O_NEXT_ORDER] + k), 0)
    top = slot_words[S_FREE_TOP]
    head = slot_words[S_RETIRED_HEAD]
    for k in range(AHEAD):
        if top - 1 - k >= 0:
            lines += _row(orders, free[top - 1 - k])
        elif head + k < slot_words[S_RETIRED_TAIL]:
            # reused: forgotten from both indexes first (allocate_slot), then rewritten
            slot = retired[(head + k) % retired.shape[0]]
            lines += _row(orders, slot)
            lines += _entry(oid_a, oid_b, oid_v, orders[slot].order_id, 0)
            lines += _entry(cid_a, cid_b, cid_v, np.int64(orders[slot].strategy_id), orders[slot].client_order_id)
    for c in range(CLIENTS):
        last = words[O_CLIENTS + 2 * c + 1]
        if last != 0:
            strategy_id = words[O_CLIENTS + 2 * c]
            for k in range(1, AHEAD + 1):
                lines += _entry(cid_a, cid_b, cid_v, strategy_id, last + k)
    for r in range(RECENT):  # the rows first, so the reads below wait for them together, not in turn
        slot = words[O_RECENT + r] - 1
        if slot >= 0:
            lines += _row(orders, slot)
    for r in range(RECENT):
        slot = words[O_RECENT + r] - 1
        if slot >= 0:
            o = orders[slot]
            if o.state != 0 and not terminal[o.state]:
                lines += _entry(oid_a, oid_b, oid_v, o.order_id, 0)
                lines += _entry(cid_a, cid_b, cid_v, np.int64(o.strategy_id), o.client_order_id)
    return lines
