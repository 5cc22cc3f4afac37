"""Make a worker's preallocated tables resident before its hot path touches them.

``np.zeros`` of a large array maps its pages lazily: the first write to each 4 KiB page takes a
minor page fault (a trap into the kernel, a zeroed page, a page-table update: a few microseconds).
Tables written at random slots (hash indexes, order tables) or wherever the market moves (the fill
model's price window) would take those faults between a tick and its order, for the first hundreds
or thousands of orders after every start or restart. A worker writes each page once at start
instead (each byte to itself, so the contents are unchanged); a backtest need not.
"""

from __future__ import annotations

import numpy as np

PAGE_BYTES = 4096


def touch_pages(*arrays: np.ndarray) -> int:
    """Write one byte of every page of each array (its own value), so every page is mapped now.
    Read-only arrays (a memory-mapped input) are left alone. Returns the bytes made resident."""
    total = 0
    for array in arrays:
        if array.size == 0 or not array.flags.writeable:
            continue
        flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        if not np.shares_memory(flat, array):  # a copy would touch the copy, not the table
            raise ValueError("touch_pages needs contiguous arrays (their own memory, written in place)")
        flat[::PAGE_BYTES] = flat[::PAGE_BYTES].copy()  # a copy: numpy skips assigning a view to itself
        total += flat.nbytes
    return total
