"""Byte-level scanner for Binance recordings (the fast path of binance.py's import; rows: binance_rows_nb.py).

The scanner recognises the fixed message shapes Binance sends (depthUpdate, trade, aggTrade,
bookTicker, combined-stream wrapper or bare) in ``<local ns> <JSON>`` lines and extracts the fields the
import needs. It only accepts what it fully understands: valid JSON with no escapes, no non-ASCII
bytes, no control characters, plain integers (at most 18 digits), no duplicate keys, the expected
value types. Anything else -- snapshots, unknown events, malformed or merely unusual lines -- is
marked FALLBACK and goes through the Python JSON path, which counts and reports it exactly as before.
A line the scanner accepts yields the same rows as the Python path would.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# line kinds
BLANK, FALLBACK, BBO, TRADE, DEPTH = 0, 1, 2, 3, 4

# columns of the per-line integer table
C_START, C_END, C_KIND, C_LOCAL, C_EXCH, C_UID, C_FIRST, C_PREV, C_TRADE_ID, C_SIDE_SELL, C_HAS_EXCH_KEY, \
    C_NBIDS, C_NASKS, C_SYM_S, C_SYM_E, C_F0S, C_F0E, C_F1S, C_F1E, C_F2S, C_F2E, C_F3S, C_F3E, C_BOUND = range(24)
N_COLS = 24

# field ids (keys the import reads) and value types
K_e, K_E, K_T, K_s, K_U, K_u, K_pu, K_b, K_a, K_B, K_A, K_t, K_p, K_q, K_m, K_X, K_LAST, K_STREAM, K_DATA = range(19)
N_KEYS = 19
T_NONE, T_STR, T_INT, T_TRUE, T_FALSE, T_LEVELS, T_OBJ, T_OTHER = range(8)

MAX_DEPTH = 64
ROW_OVERHEAD = 100  # bytes of a row besides its symbol, price and qty: two 20-digit stamps, kind, side, id, commas


@njit(cache=True, inline="always")
def _ws(buf, i, end):
    while i < end:
        c = buf[i]
        if c != 32 and c != 9 and c != 10 and c != 13:
            break
        i += 1
    return i


@njit(cache=True)
def _string_end(buf, i, end):
    """buf[i] is '"': index after the closing quote, or -1 (escape, control or non-ASCII byte: fallback)."""
    i += 1
    while i < end:
        c = buf[i]
        if c == 34:
            return i + 1
        if c < 32 or c == 92 or c >= 128:
            return -1
        i += 1
    return -1


@njit(cache=True)
def _number_end(buf, i, end):
    """A JSON number starting at i: index after it, or -1."""
    if i < end and buf[i] == 45:
        i += 1
    if i >= end:
        return -1
    if buf[i] == 48:
        i += 1
    elif 49 <= buf[i] <= 57:
        while i < end and 48 <= buf[i] <= 57:
            i += 1
    else:
        return -1
    if i < end and buf[i] == 46:
        i = _digits_end(buf, i + 1, end)
        if i < 0:
            return -1
    if i < end and (buf[i] == 101 or buf[i] == 69):
        i += 1
        if i < end and (buf[i] == 43 or buf[i] == 45):
            i += 1
        i = _digits_end(buf, i, end)
    return i


@njit(cache=True, inline="always")
def _digits_end(buf, i, end):
    """Index after one or more ASCII digits at i; -1 if there is none."""
    start = i
    while i < end and 48 <= buf[i] <= 57:
        i += 1
    return i if i > start else -1


@njit(cache=True)
def _literal_end(buf, i, end):
    c = buf[i]
    if c == 116 and i + 4 <= end and buf[i + 1] == 114 and buf[i + 2] == 117 and buf[i + 3] == 101:
        return i + 4
    if c == 110 and i + 4 <= end and buf[i + 1] == 117 and buf[i + 2] == 108 and buf[i + 3] == 108:
        return i + 4
    if (c == 102 and i + 5 <= end and buf[i + 1] == 97 and buf[i + 2] == 108 and buf[i + 3] == 115
            and buf[i + 4] == 101):
        return i + 5
    return -1


@njit(cache=True)
def _scalar_end(buf, i, end):
    c = buf[i]
    if c == 34:
        return _string_end(buf, i, end)
    if c == 45 or 48 <= c <= 57:
        return _number_end(buf, i, end)
    return _literal_end(buf, i, end)


@njit(cache=True)
def _skip_value(buf, i, end, stack):
    """Validate and skip any JSON value starting at i (no whitespace before it): index after it, or -1."""
    c = buf[i]
    if c != 91 and c != 123:
        return _scalar_end(buf, i, end)
    stack[0] = c
    depth = 1
    i += 1
    first = True
    after = False
    while True:
        i = _ws(buf, i, end)
        if i >= end:
            return -1
        top = stack[depth - 1]
        close = 93 if top == 91 else 125
        c = buf[i]
        if after:
            if c == 44:
                i += 1
                after = False
                first = False
                continue
            if c != close:
                return -1
            depth -= 1
            i += 1
            if depth == 0:
                return i
            continue
        if first and c == close:
            depth -= 1
            i += 1
            if depth == 0:
                return i
            after = True
            continue
        if top == 123:  # a key and a colon before the value
            if c != 34:
                return -1
            i = _string_end(buf, i, end)
            if i < 0:
                return -1
            i = _ws(buf, i, end)
            if i >= end or buf[i] != 58:
                return -1
            i = _ws(buf, i + 1, end)
            if i >= end:
                return -1
            c = buf[i]
        if c == 91 or c == 123:
            if depth == MAX_DEPTH:
                return -1
            stack[depth] = c
            depth += 1
            i += 1
            first = True
            continue
        i = _scalar_end(buf, i, end)
        if i < 0:
            return -1
        after = True


@njit(cache=True)
def _string_then_ws(buf, i, end):
    """A JSON string at ``i``: the index after it and the whitespace that follows; -1 if none is there."""
    if i >= end or buf[i] != 34:
        return -1
    i = _string_end(buf, i, end)
    if i < 0:
        return -1
    return _ws(buf, i, end)


@njit(cache=True)
def _levels_end(buf, i, end):
    """An array of [string, string] pairs at i: (index after it, pair count), or (-1, 0) if it is not one."""
    i = _ws(buf, i + 1, end)
    count = 0
    if i < end and buf[i] == 93:
        return i + 1, 0
    while True:
        if i >= end or buf[i] != 91:
            return -1, 0
        i = _string_then_ws(buf, _ws(buf, i + 1, end), end)
        if i < 0 or i >= end or buf[i] != 44:
            return -1, 0
        i = _string_then_ws(buf, _ws(buf, i + 1, end), end)
        if i < 0 or i >= end or buf[i] != 93:
            return -1, 0
        count += 1
        i = _ws(buf, i + 1, end)
        if i >= end:
            return -1, 0
        if buf[i] == 93:
            return i + 1, count
        if buf[i] != 44:
            return -1, 0
        i = _ws(buf, i + 1, end)


@njit(cache=True)
def _eq(buf, s, e, text):
    if e - s != len(text):
        return False
    for k in range(e - s):
        if buf[s + k] != text[k]:
            return False
    return True


@njit(cache=True)
def _key_id(buf, s, e):
    n = e - s
    if n == 1:
        c = buf[s]
        for k, ch in ((K_e, 101), (K_E, 69), (K_T, 84), (K_s, 115), (K_U, 85), (K_u, 117), (K_b, 98), (K_a, 97),
                      (K_B, 66), (K_A, 65), (K_t, 116), (K_p, 112), (K_q, 113), (K_m, 109), (K_X, 88)):
            if c == ch:
                return k
        return -1
    if n == 2 and buf[s] == 112 and buf[s + 1] == 117:
        return K_pu
    if n == 4 and _eq(buf, s, e, b"data"):
        return K_DATA
    if n == 6 and _eq(buf, s, e, b"stream"):
        return K_STREAM
    if n == 12 and _eq(buf, s, e, b"lastUpdateId"):
        return K_LAST
    return -1


@njit(cache=True)
def _parse_fields(buf, i, end, fields, stack):
    """The object at i: records [type, start, end, int value or pair count] of the known keys in
    fields[0], and those of an object under "data" in fields[1] (parsed in the same pass, not skipped
    and parsed again); returns the index after the object, or -1 (fallback)."""
    for k in range(N_KEYS):
        fields[0, k, 0] = T_NONE
        fields[1, k, 0] = T_NONE
    row = 0
    i = _ws(buf, i + 1, end)
    if i < end and buf[i] == 125:
        return i + 1
    while True:
        if i >= end or buf[i] != 34:
            return -1
        ks = i + 1
        i = _string_end(buf, i, end)
        if i < 0:
            return -1
        key = _key_id(buf, ks, i - 1)
        i = _ws(buf, i, end)
        if i >= end or buf[i] != 58:
            return -1
        i = _ws(buf, i + 1, end)
        if i >= end:
            return -1
        vs = i
        c = buf[i]
        kind = T_OTHER
        value = 0
        if key >= 0 and fields[row, key, 0] != T_NONE:
            return -1  # duplicate key: the decoder keeps the last one; not worth copying
        if c == 123 and key == K_DATA and row == 0:  # into the wrapped event
            fields[0, K_DATA, 0] = T_OBJ
            fields[0, K_DATA, 1] = vs
            row = 1
            i = _ws(buf, i + 1, end)
            if i >= end:
                return -1
            if buf[i] != 125:
                continue
            key = -1  # an empty event: closed below like any other one
        elif c == 34:
            i = _string_end(buf, i, end)
            kind = T_STR
        elif 48 <= c <= 57:
            i = _number_end(buf, i, end)
            if i > 0 and i - vs <= 18:
                kind = T_INT
                for k in range(vs, i):
                    ch = buf[k]
                    if ch < 48 or ch > 57:
                        kind = T_OTHER
                        break
                    value = value * 10 + (ch - 48)
        elif c == 91 and (key == K_b or key == K_a):
            i, value = _levels_end(buf, i, end)
            if i >= 0:
                kind = T_LEVELS
            else:
                i = _skip_value(buf, vs, end, stack)
        else:
            i = _skip_value(buf, i, end, stack)
            if c == 116:
                kind = T_TRUE
            elif c == 102:
                kind = T_FALSE
            elif c == 123:
                kind = T_OBJ
        if i < 0:
            return -1
        if key >= 0:
            fields[row, key, 0] = kind
            fields[row, key, 1] = vs
            fields[row, key, 2] = i
            fields[row, key, 3] = value
        while True:
            i = _ws(buf, i, end)
            if i >= end:
                return -1
            if buf[i] != 125:
                break
            i += 1
            if row == 0:
                return i
            row = 0  # the wrapped event ends: back in the outer object
            fields[0, K_DATA, 2] = i
        if buf[i] != 44:
            return -1
        i = _ws(buf, i + 1, end)


@njit(cache=True)
def _classify(buf, s, e, fields, stack, out):
    """Fill out[] (one row of the line table) for the line buf[s:e]; returns its kind."""
    # "<digits> " then the JSON
    i = s
    ts = 0
    while i < e and 48 <= buf[i] <= 57 and i - s < 19:
        ts = ts * 10 + (buf[i] - 48)
        i += 1
    if i == s or i >= e or buf[i] != 32 or (i - s == 19 and buf[s] > 56):
        return FALLBACK  # 19 digits starting with 9 could overflow int64
    out[C_LOCAL] = ts
    i = _ws(buf, i + 1, e)
    if i >= e or buf[i] != 123:
        return FALLBACK
    i = _parse_fields(buf, i, e, fields, stack)
    if i < 0 or _ws(buf, i, e) != e:
        return FALLBACK
    row = 0
    if fields[0, K_STREAM, 0] != T_NONE:
        if fields[0, K_DATA, 0] != T_OBJ:
            return FALLBACK
        row = 1
    f = fields[row]
    if f[K_LAST, 0] != T_NONE:
        return FALLBACK  # snapshots are rare and large: the Python path handles them
    if f[K_s, 0] != T_STR:
        return FALLBACK
    for k in (K_E, K_T):
        if f[k, 0] != T_NONE and f[k, 0] != T_INT:
            return FALLBACK
    # exchange time: E, else T (a 0 counts as absent), else the local time
    stamp = 0
    if f[K_E, 0] == T_INT:
        stamp = f[K_E, 3]
    if stamp == 0 and f[K_T, 0] == T_INT:
        stamp = f[K_T, 3]
    if stamp >= 9_000_000_000_000:
        return FALLBACK
    out[C_EXCH] = stamp * 1_000_000 if stamp != 0 else ts
    out[C_HAS_EXCH_KEY] = 1 if (f[K_E, 0] != T_NONE or f[K_T, 0] != T_NONE) else 0
    out[C_SYM_S] = f[K_s, 1] + 1
    out[C_SYM_E] = f[K_s, 2] - 1
    symlen = out[C_SYM_E] - out[C_SYM_S]
    kind = FALLBACK
    if f[K_e, 0] == T_NONE:
        if f[K_B, 0] != T_NONE and f[K_A, 0] != T_NONE and f[K_u, 0] != T_NONE:
            kind = BBO
    elif f[K_e, 0] == T_STR:
        es, ee = f[K_e, 1] + 1, f[K_e, 2] - 1
        if _eq(buf, es, ee, b"depthUpdate"):
            kind = DEPTH
        elif _eq(buf, es, ee, b"bookTicker"):
            kind = BBO
        elif _eq(buf, es, ee, b"trade"):
            kind = TRADE
            if f[K_t, 0] != T_INT:
                return FALLBACK
            out[C_TRADE_ID] = f[K_t, 3]
        elif _eq(buf, es, ee, b"aggTrade"):
            kind = TRADE
            if f[K_a, 0] != T_INT:
                return FALLBACK
            out[C_TRADE_ID] = f[K_a, 3]
    if kind == BBO:
        if f[K_u, 0] != T_INT:
            return FALLBACK
        for k in (K_b, K_B, K_a, K_A):
            if f[k, 0] != T_STR:
                return FALLBACK
        out[C_UID] = f[K_u, 3]
        out[C_F0S], out[C_F0E] = f[K_b, 1] + 1, f[K_b, 2] - 1
        out[C_F1S], out[C_F1E] = f[K_B, 1] + 1, f[K_B, 2] - 1
        out[C_F2S], out[C_F2E] = f[K_a, 1] + 1, f[K_a, 2] - 1
        out[C_F3S], out[C_F3E] = f[K_A, 1] + 1, f[K_A, 2] - 1
        out[C_BOUND] = 2 * (ROW_OVERHEAD + symlen) + (e - s)
    elif kind == TRADE:
        if f[K_X, 0] != T_NONE and not (f[K_X, 0] == T_STR and _eq(buf, f[K_X, 1] + 1, f[K_X, 2] - 1, b"MARKET")):
            return FALLBACK  # not a book trade (dropped and counted by the Python path), or malformed
        if f[K_m, 0] == T_TRUE:
            out[C_SIDE_SELL] = 1
        elif f[K_m, 0] == T_FALSE:
            out[C_SIDE_SELL] = 0
        else:
            return FALLBACK
        if f[K_p, 0] != T_STR or f[K_q, 0] != T_STR:
            return FALLBACK
        out[C_F0S], out[C_F0E] = f[K_p, 1] + 1, f[K_p, 2] - 1
        out[C_F1S], out[C_F1E] = f[K_q, 1] + 1, f[K_q, 2] - 1
        out[C_BOUND] = ROW_OVERHEAD + symlen + (e - s)
    elif kind == DEPTH:
        if f[K_U, 0] != T_INT or f[K_u, 0] != T_INT or f[K_b, 0] != T_LEVELS or f[K_a, 0] != T_LEVELS:
            return FALLBACK
        if f[K_pu, 0] == T_INT:
            out[C_PREV] = f[K_pu, 3]
        elif f[K_pu, 0] == T_NONE:
            out[C_PREV] = -1
        else:
            return FALLBACK
        out[C_FIRST] = f[K_U, 3]
        out[C_UID] = f[K_u, 3]
        out[C_NBIDS] = f[K_b, 3]
        out[C_NASKS] = f[K_a, 3]
        out[C_F0S], out[C_F0E] = f[K_b, 1], f[K_b, 2]
        out[C_F1S], out[C_F1E] = f[K_a, 1], f[K_a, 2]
        out[C_BOUND] = (f[K_b, 3] + f[K_a, 3]) * (ROW_OVERHEAD + symlen) + (e - s)
    return kind


@njit(cache=True, inline="always")
def next_level(buf, i, end):
    """The next [price, qty] pair at or after ``i`` in a levels array the scanner accepted (strings
    without escapes) ending before ``end``: (price start, price end, qty start, qty end, the index
    after the pair); price start -1 when no pair is left. The row formatter and the records path
    walk a diff's levels with it."""
    while i < end and buf[i] != 34:
        i += 1
    if i >= end:
        return -1, -1, -1, -1, end
    ps = i + 1
    pe = ps
    while buf[pe] != 34:
        pe += 1
    qs = pe + 1
    while buf[qs] != 34:
        qs += 1
    qs += 1
    qe = qs
    while buf[qe] != 34:
        qe += 1
    return ps, pe, qs, qe, qe + 1


@njit(cache=True, nogil=True)
def scan_lines(buf, n_lines):
    """The line table (n_lines x N_COLS) of buf, whose lines end in b'\\n' (the last may not)."""
    table = np.zeros((n_lines, N_COLS), np.int64)
    scan_lines_into(buf, n_lines, table, (np.zeros((2, N_KEYS, 4), np.int64), np.zeros(MAX_DEPTH, np.uint8)))
    return table


def new_scratch() -> tuple:
    """The scanner's working arrays (the fields of the object being parsed, the nesting stack)."""
    return np.zeros((2, N_KEYS, 4), np.int64), np.zeros(MAX_DEPTH, np.uint8)


@njit(cache=True, nogil=True)
def scan_lines_into(buf, n_lines, table, scratch):
    """``scan_lines`` into ``table`` (at least n_lines rows; each row it fills is zeroed first) with
    the working arrays of ``new_scratch``: nothing allocated (the live feed's one call, per read)."""
    fields, stack = scratch
    n = len(buf)
    s = 0
    for k in range(n_lines):
        e = s
        while e < n and buf[e] != 10:
            e += 1
        row = table[k]
        row[:] = 0
        row[C_START] = s
        row[C_END] = e
        if e == s:
            row[C_KIND] = BLANK
        else:
            kind = _classify(buf, s, e, fields, stack, row)
            row[C_KIND] = kind
        s = e + 1


@njit(cache=True)
def symbol_changes(buf, starts, ends):
    """Indices k where the symbol buf[starts[k]:ends[k]] differs from the one at k - 1 (0 included)."""
    n = len(starts)
    out = np.empty(n, np.int64)
    count = 0
    for k in range(n):
        same = k > 0 and ends[k] - starts[k] == ends[k - 1] - starts[k - 1]
        if same:
            for j in range(ends[k] - starts[k]):
                if buf[starts[k] + j] != buf[starts[k - 1] + j]:
                    same = False
                    break
        if not same:
            out[count] = k
            count += 1
    return out[:count]
