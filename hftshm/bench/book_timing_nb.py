"""numba kernel for ``hftshm bench book``: the book's cost per depth message, timed inside numba."""

from __future__ import annotations

from numba import njit

from hftshm.book import l2_apply_nb
from hftshm.codes import EventFlag, EventKind
from hftshm.transport.clock_nb import monotonic_ns

_LAST = int(EventFlag.LAST_IN_MESSAGE)


@njit(cache=True)
def time_depth_messages(books, events, levels, scratch_px, scratch_qty, out_ns):
    """Apply every message (top ``levels`` extracted at each consistent point); the time of each
    depth message goes to ``out_ns`` (one clock read per message, ~25 ns, included).
    Returns the number of depth messages timed."""
    state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of = books
    n = len(events)
    i = 0
    timed = 0
    while i < n:
        end = i
        while end < n and not (events[end].flags & _LAST):
            end += 1
        end = min(end + 1, n)
        depth = events[i].kind == EventKind.DEPTH
        t0 = monotonic_ns()
        l2_apply_nb._run(state, params, bid_win, ask_win, fbp, fbq, fap, faq, issues, book_of, events, i, end, levels,
                     None, scratch_px, scratch_qty, None, end - i + 1)
        if depth and timed < len(out_ns):
            out_ns[timed] = monotonic_ns() - t0
            timed += 1
        i = end
    return timed
