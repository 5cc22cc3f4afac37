"""Binance depth synchronisation state in arrays, and the rule a live book's next diff must follow.

``BinanceImporter`` (binance.py) keeps each symbol's synchronisation state in one row of an int64
table instead of Python attributes, and decides whether a diff continues a live book with
``continues`` below. The live feed's one kernel call (``live_publish_nb.step_lines``) reads the same
rows and calls the same function, so the rule is written once and both see one state::

    sync_words[row]   W_STATE  W_PREV_U  W_LAST_UPDATE_ID  W_SPOT
                      0 no snapshot, 1 awaiting the first diff, 2 live
    sync_names[row]   the symbol, upper-case ASCII bytes (``sync_name_lens[row]`` of them)

The kernel takes only the steady state: a symbol already live whose diff continues its book (the
overwhelming majority of diffs). Everything else - buffering before a snapshot, the first diff's
straddle, gaps, duplicates, a symbol it has no row for - is left to the importer's Python, which
reports it as it always has.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NO_SNAPSHOT, AWAIT_FIRST, LIVE = 0, 1, 2  # W_STATE's values
W_STATE, W_PREV_U, W_LAST_UPDATE_ID, W_SPOT = range(4)
N_SYNC_WORDS = 4
MAX_SYNC_SYMBOLS = 1024  # rows of a table; a symbol past them keeps a private row the kernel never sees
MAX_SYMBOL_BYTES = 32

# continues' verdicts
EMIT, DUPLICATE, GAP = 0, 1, 2


@njit(cache=True)
def continues(spot, prev_u, first_id, last_id, prev_id):
    """A diff (U = ``first_id``, u = ``last_id``, pu = ``prev_id``) on a live book whose last applied u
    is ``prev_u``: EMIT if it continues it (futures: pu == previous u; spot: U == previous u + 1),
    DUPLICATE if everything in it was applied already, GAP otherwise."""
    if spot:
        continued = first_id == prev_u + 1
    else:
        continued = prev_id == prev_u
    if continued:
        return EMIT
    if last_id <= prev_u:
        return DUPLICATE
    return GAP


def new_tables(n_tables: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_tables`` tables of (words, names, name lengths): one per importer (the live decoder stacks
    one per market so its kernel call finds any market's rows)."""
    return (np.zeros((n_tables, MAX_SYNC_SYMBOLS, N_SYNC_WORDS), np.int64),
            np.zeros((n_tables, MAX_SYNC_SYMBOLS, MAX_SYMBOL_BYTES), np.uint8),
            np.zeros((n_tables, MAX_SYNC_SYMBOLS), np.int64))


@njit(cache=True)
def find_row(names, lens, buf, start, end):
    """The row whose name is ``buf[start:end]`` upper-cased (ASCII, as ``str.upper``), or -1. Rows are
    taken in order: the first with length 0 ends the search."""
    n = end - start
    if n > names.shape[1] or n == 0:
        return -1
    for row in range(len(lens)):
        if lens[row] == 0:
            return -1
        if lens[row] != n:
            continue
        same = True
        for k in range(n):
            c = buf[start + k]
            if 97 <= c <= 122:
                c -= 32
            if names[row, k] != c:
                same = False
                break
        if same:
            return row
    return -1
