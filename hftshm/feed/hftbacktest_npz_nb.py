"""Kernel for hftbacktest event files: which rows the exchange and the local processor each see, in order.

hftbacktest replays one array twice: its exchange side takes the rows flagged EXCH in exchange-time
order, its local side the rows flagged LOCAL in local-time order. Merging the two orders of one set
of events gives such an array: where both orders are at the same event it is written once with both
flags, otherwise the earlier of the two heads is written with its one flag (the same event appears
again later for the other side).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def merge_orders(exch_ts, local_ts, by_exch, by_local, exch_flag, local_flag):
    """(event index per output row, flag bits per output row): each event once per side, each side's
    rows non-decreasing in that side's time."""
    n = len(by_local)
    index = np.empty(2 * n, np.int64)
    flags = np.empty(2 * n, np.uint64)
    i = 0  # next in local order
    j = 0  # next in exchange order
    k = 0
    while i < n or j < n:
        if i < n and j < n and by_local[i] == by_exch[j]:
            index[k] = by_local[i]
            flags[k] = exch_flag | local_flag
            i += 1
            j += 1
        elif j < n and (i >= n or exch_ts[by_exch[j]] <= local_ts[by_local[i]]):
            index[k] = by_exch[j]
            flags[k] = exch_flag
            j += 1
        else:
            index[k] = by_local[i]
            flags[k] = local_flag
            i += 1
        k += 1
    return index[:k], flags[:k]
