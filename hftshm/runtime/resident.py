"""Make a worker's preallocated tables resident before its hot path touches them.

``np.zeros`` of a large array maps its pages lazily: the first write to each 4 KiB page takes a
minor page fault (a trap into the kernel, a zeroed page, a page-table update: a few microseconds).
Tables written at random slots (hash indexes, order tables) or wherever the market moves (the fill
model's price window) would take those faults between a tick and its order, for the first hundreds
or thousands of orders after every start or restart. A worker writes each page once at start
instead (each byte to itself, so the contents are unchanged); a backtest need not. Shared rings are
mapped (``map_shared``), not written: another process may be writing them.
"""

from __future__ import annotations

import ctypes
import functools
import mmap

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


MADV_POPULATE_WRITE = 23  # Linux >= 5.14: fault pages in writable without touching their contents


def map_shared(array: np.ndarray) -> bool:
    """Map every page of ``array``, memory shared with other processes (a ring's records), into this
    process's page table now, writable (``madvise(MADV_POPULATE_WRITE)``). The contents are not
    read or written, so a ring another process is writing meanwhile is safe to map. Each process
    takes its own minor fault on the first access to each page of a shared segment; a ring's first
    lap would otherwise pay them on the hot path (a 448-byte book snapshot ring: a fault every 9 books
    written in the feed; a reader's fault maps 16 pages). False when the kernel lacks the call: the
    pages then fault in as before."""
    if array.size == 0:
        return True
    page = mmap.PAGESIZE
    start = array.ctypes.data & ~(page - 1)
    length = array.ctypes.data + array.nbytes - start
    return _libc().madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), MADV_POPULATE_WRITE) == 0


@functools.lru_cache(maxsize=1)
def _libc():
    return ctypes.CDLL(None, use_errno=True)
