"""The live feed's working set, pulled back into the caches while the network loop is idle.

The rehearsal (``live_rehearsal``) keeps the live path's code and branch history warm by running it
on a twin; the twin's data is not the live feed's. Between two frames the live feed's own arrays
leave the core's caches too, and the next read pays a miss per line it touches. So the idle hook
also pulls them back in, without writing anything:

    regions   (keep_warm_nb.prefetch_working_set)   the one call's small arrays (parser state,
              one prefetch per cache line           book state and parameters, counters,
                                                    histograms, the rings' headers and next
                                                    slots), the head of each staging buffer, and
                                                    the machine code of ``live_read_nb.step_read``
    books     (pull_books, real loads)              each valid book's window around its best
                                                    bid and ask: where the next diff's levels land

The table holds addresses: it is rebuilt whenever the feed rebuilds its one call's bundle (a bigger
buffer, the books' far levels grown), which is when an array behind it may have moved.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.book import levels_nb
from hftshm.runtime import keep_warm, keep_warm_nb

BUFFER_HEAD_BYTES = 8 << 10  # of a staging buffer (records, lines, scan table): what a read of a few
# dozen events touches
BOOK_SPAN_TICKS = 2048  # ticks of a book's window pulled in beyond its best bid or ask


def working_set(arrays, buffers, code_addresses) -> tuple[np.ndarray, np.ndarray]:
    """``keep_warm.working_set`` over ``arrays`` (the small ones and the rings' headers and next
    slots) and the code at ``code_addresses``, plus the first ``BUFFER_HEAD_BYTES`` of each of
    ``buffers``."""
    regions, rings = keep_warm.working_set(arrays, code_addresses)
    heads = [(b.ctypes.data, min(b.nbytes, BUFFER_HEAD_BYTES), keep_warm_nb.READ) for b in buffers if b.nbytes]
    if heads:
        regions = np.concatenate([regions, np.array(heads, np.int64).reshape(-1, 3)])
    return regions, rings


def working_set_of(feed) -> tuple[np.ndarray, np.ndarray]:
    """The table for ``feed`` (a ``LiveFeed`` whose one call's bundle is built): its bundle's arrays
    as they are now, and the code of ``live_read_nb.step_read``."""
    from hftshm.feed import live_read_nb

    decoder = feed.decoder
    parser = decoder.parse_args()[1:]
    big = [decoder.out, feed._staged, feed._snaps, feed._fast_table, feed._read_lines, feed._read_frames,
           *decoder.sync_tables, feed._sync_rows]
    small = [parser, feed.books.arrays, feed._scratch_px, feed._scratch_qty, feed.hist_exch_to_recv,
             feed.hist_recv_to_publish, feed._counts, feed._scan_scratch, [o.ring.ctrl for o in feed.outputs]]
    code = [keep_warm.entry_address(compiled) for compiled in live_read_nb.step_read.overloads.values()]
    return working_set(small, [b for b in big if b.flags.c_contiguous], code)


@njit(cache=True, nogil=True)
def pull_books(book_state, bid_win, ask_win, span):
    """Load every cache line of each valid book's window from ``span`` ticks below its best bid to
    its best bid, and from its best ask to ``span`` ticks above (the side's window array holds the
    level quantities by tick). Returns the sum of what it read (so the loads are not optimized
    away)."""
    total = 0
    width = bid_win.shape[1]
    for b in range(book_state.shape[0]):
        if book_state[b, levels_nb.BS_VALID] == 0:
            continue
        lo = book_state[b, levels_nb.BS_WIN_LO]
        best_bid = book_state[b, levels_nb.BS_BEST_BID]
        if best_bid != levels_nb.NO_BID:
            top = min(best_bid - lo, width - 1)
            for i in range(max(top - span, 0), top + 1, 8):
                total += bid_win[b, i]
        best_ask = book_state[b, levels_nb.BS_BEST_ASK]
        if best_ask != levels_nb.NO_ASK:
            bottom = max(best_ask - lo, 0)
            for i in range(bottom, min(bottom + span, width - 1) + 1, 8):
                total += ask_win[b, i]
    return total
