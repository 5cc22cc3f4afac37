"""Canonical tick CSV rows formatted from the lines the byte scanner (binance_nb.py) took.

Prices and quantities are copied as the exchange wrote them; stamps and ids are written as decimal
integers; the symbol is upper-cased as ``str.upper`` does for ASCII. Rows are exactly those the JSON
path (binance.py) writes for the same messages.
"""

from __future__ import annotations

from numba import njit

from hftshm.feed.binance_nb import (BBO, C_EXCH, C_F0E, C_F0S, C_F1E, C_F1S, C_F2E, C_F2S, C_F3E, C_F3S, C_BOUND,
                                    C_KIND, C_LOCAL, C_SIDE_SELL, C_SYM_E, C_SYM_S, C_TRADE_ID, C_UID, DEPTH, TRADE,
                                    next_level)


@njit(cache=True, inline="always")
def _put_int(out, pos, value):
    if value == 0:
        out[pos] = 48
        return pos + 1
    digits = 0
    v = value
    while v > 0:
        v //= 10
        digits += 1
    k = pos + digits - 1
    while value > 0:
        out[k] = 48 + value % 10
        value //= 10
        k -= 1
    return pos + digits


@njit(cache=True, inline="always")
def _put(out, pos, buf, s, e):
    for k in range(s, e):
        out[pos] = buf[k]
        pos += 1
    return pos


@njit(cache=True, inline="always")
def _put_text(out, pos, text):
    for k in range(len(text)):
        out[pos] = text[k]
        pos += 1
    return pos


@njit(cache=True)
def _put_head(out, pos, buf, row, local, kind_text, side_text):
    """'<exch>,<local>,<SYMBOL>,<kind>,<side>,' (the symbol upper-cased, as str.upper does for ASCII)."""
    pos = _put_int(out, pos, row[C_EXCH])
    out[pos] = 44
    pos = _put_int(out, pos + 1, local)
    out[pos] = 44
    pos += 1
    for k in range(row[C_SYM_S], row[C_SYM_E]):
        c = buf[k]
        out[pos] = c - 32 if 97 <= c <= 122 else c
        pos += 1
    out[pos] = 44
    pos = _put_text(out, pos + 1, kind_text)
    out[pos] = 44
    pos = _put_text(out, pos + 1, side_text)
    out[pos] = 44
    return pos + 1


@njit(cache=True, inline="always")
def _copy_within(out, pos, s, e):
    for k in range(s, e):
        out[pos] = out[k]
        pos += 1
    return pos


@njit(cache=True)
def _put_levels(out, pos, buf, row, local, s, e, side_text):
    """One depth row per [price, qty] pair of the (validated, escape-free) array buf[s:e]. The rows of
    a message share their head (stamps, symbol, kind, side) and tail (update id): formatted once, copied."""
    head_s = head_e = tail_s = tail_e = -1
    k = s
    while True:
        ps, pe, qs, qe, k = next_level(buf, k, e)
        if ps < 0:
            return pos
        if head_s < 0:
            head_s = pos
            pos = _put_head(out, pos, buf, row, local, b"depth", side_text)
            head_e = pos
        else:
            pos = _copy_within(out, pos, head_s, head_e)
        pos = _put(out, pos, buf, ps, pe)
        out[pos] = 44
        pos = _put(out, pos + 1, buf, qs, qe)
        if tail_s < 0:
            tail_s = pos
            out[pos] = 44
            pos = _put_int(out, pos + 1, row[C_UID])
            out[pos] = 10
            pos += 1
            tail_e = pos
        else:
            pos = _copy_within(out, pos, tail_s, tail_e)


@njit(cache=True)
def _put_line(out, pos, buf, row, local):
    kind = row[C_KIND]
    if kind == BBO:
        for side in range(2):
            side_text = b"buy" if side == 0 else b"sell"
            pos = _put_head(out, pos, buf, row, local, b"bbo", side_text)
            ps, pe = (row[C_F0S], row[C_F0E]) if side == 0 else (row[C_F2S], row[C_F2E])
            qs, qe = (row[C_F1S], row[C_F1E]) if side == 0 else (row[C_F3S], row[C_F3E])
            pos = _put(out, pos, buf, ps, pe)
            out[pos] = 44
            pos = _put(out, pos + 1, buf, qs, qe)
            out[pos] = 44
            pos = _put_int(out, pos + 1, row[C_UID])
            out[pos] = 10
            pos += 1
    elif kind == TRADE:
        pos = _put_head(out, pos, buf, row, local, b"trade", b"sell" if row[C_SIDE_SELL] else b"buy")
        pos = _put(out, pos, buf, row[C_F0S], row[C_F0E])
        out[pos] = 44
        pos = _put(out, pos + 1, buf, row[C_F1S], row[C_F1E])
        out[pos] = 44
        pos = _put_int(out, pos + 1, row[C_TRADE_ID])
        out[pos] = 10
        pos += 1
    elif kind == DEPTH:
        pos = _put_levels(out, pos, buf, row, local, row[C_F0S], row[C_F0E], b"buy")
        pos = _put_levels(out, pos, buf, row, local, row[C_F1S], row[C_F1E], b"sell")
    return pos


@njit(cache=True, nogil=True)
def format_plan(buf, table, plan, texts, text_offsets, entry, line, out):
    """Rows of plan entries from (entry, line) on into out, stopping before one would not fit.

    A plan entry is (first line, end line, local ns): the rows of those lines (bbo/trade lines and blank
    ones; a local ns >= 0 overrides the lines' own, for buffered depth diffs), or, with first line -1,
    (-1, text index, 0): a piece of text the Python path formatted. ``line`` is -1, or where to resume
    inside entry ``entry``. Returns (entry, line, bytes written).
    """
    pos = 0
    cap = len(out)
    n_entries = len(plan)
    while entry < n_entries:
        first, stop, local = plan[entry, 0], plan[entry, 1], plan[entry, 2]
        if first < 0:
            ts, te = text_offsets[stop], text_offsets[stop + 1]
            if pos > 0 and pos + (te - ts) > cap:
                return entry, line, pos
            pos = _put(out, pos, texts, ts, te)
            entry += 1
            continue
        if line < 0:  # a fresh entry (not one resumed in the middle)
            line = first
        while line < stop:
            row = table[line]
            if row[C_KIND] >= BBO:
                if pos > 0 and pos + row[C_BOUND] > cap:
                    return entry, line, pos
                pos = _put_line(out, pos, buf, row, local if local >= 0 else row[C_LOCAL])
            line += 1
        entry += 1
        line = -1
    return entry, line, pos
