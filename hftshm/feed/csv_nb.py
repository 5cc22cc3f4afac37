"""numba kernel: canonical tick CSV bytes -> ``market_event`` records, rejects counted with line numbers.

One pass over a block of complete lines. Decimal strings become float64 as ``mantissa / 10**decimals``:
both are exact in float64 for up to 15 significant digits (mantissa < 2**53), and IEEE division
rounds correctly, so the result is bit-identical to ``float(text)`` (longer strings, up to 18 digits,
may differ in the last bit; exchange prices and sizes have far fewer digits). Row issues are
counted by reason and the first ones are recorded with their line numbers; a rejected row is
skipped, a warning row is kept.

Message framing: consecutive depth/snapshot rows with the same symbol, update id and timestamps are
one exchange message, a bbo message is its bid row then its ask row, every trade and clear row is a
message of its own. The last record of a message gets ``LAST_IN_MESSAGE``; a snapshot message is
preceded by a CLEAR record (the book is replaced); a ``clear`` row is CLEAR + ``BOOK_INVALID``.
The last record of a block is only final once the next block is seen: the caller carries it over.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.codes import EventFlag, EventKind, Side
from hftshm.feed.ticks import RowIssue

# state slots (int64 array shared with the Python wrapper)
ST_N_OUT = 0
ST_LINES = 1
ST_STOP_LINE = 2
ST_STOP_ISSUE = 3
ST_N_RECORDED = 4
ST_MIN_LOCAL_MINUS_EXCH = 5
ST_HAS_MIN = 6
ST_CARRY = 7  # 1 when out[0] on entry is the record carried over from the previous block
N_STATE = 8

# per-symbol statistics slots
SS_DEPTH, SS_TRADE, SS_BBO, SS_SNAPSHOT, SS_CLEAR = 0, 1, 2, 3, 4
SS_PRICE_GCD_E8 = 5  # gcd of all prices in units of 1e-8 (the finest tick the data supports)
SS_QTY_GCD_E8 = 6
SS_PRICE_DECIMALS = 7  # most decimals seen in a price string
SS_QTY_DECIMALS = 8
SS_FIRST_LOCAL, SS_LAST_LOCAL, SS_FIRST_EXCH, SS_LAST_EXCH = 9, 10, 11, 12
N_SYMBOL_STATS = 13

_INT64_MAX = np.int64(9223372036854775807)
_POW10 = np.array([10.0 ** i for i in range(19)])
_IPOW10 = np.array([10 ** i for i in range(19)], dtype=np.int64)

# IntFlag members are not numba constants; plain ints are
_LAST = int(EventFlag.LAST_IN_MESSAGE)
_INVALID = int(EventFlag.BOOK_INVALID)

_COMMA = 44
_NEWLINE = 10
_CR = 13


@njit(cache=True, forceinline=True)
def _parse_uint(buf, start, end):
    """(ok, value) for a non-empty run of digits that fits int64."""
    if end <= start or end - start > 19:
        return False, np.int64(0)
    value = np.int64(0)
    for i in range(start, end):
        digit = np.int64(buf[i]) - 48
        if digit < 0 or digit > 9:
            return False, np.int64(0)
        if value > (_INT64_MAX - digit) // 10:
            return False, np.int64(0)
        value = value * 10 + digit
    return True, value


@njit(cache=True)
def _is_nan_or_inf(buf, start, end):
    # nan, inf, infinity with optional sign, any case
    if end > start and (buf[start] == 43 or buf[start] == 45):
        start += 1
    n = end - start
    if n != 3 and n != 8:
        return False
    word = np.zeros(8, np.uint8)
    for i in range(n):
        c = buf[start + i]
        word[i] = c + 32 if 65 <= c <= 90 else c
    if n == 3:
        is_nan = word[0] == 110 and word[1] == 97 and word[2] == 110
        return is_nan or (word[0] == 105 and word[1] == 110 and word[2] == 102)
    return (word[0] == 105 and word[1] == 110 and word[2] == 102 and word[3] == 105 and word[4] == 110
            and word[5] == 105 and word[6] == 116 and word[7] == 121)


@njit(cache=True, forceinline=True)
def _parse_decimal(buf, start, end):
    """(status, mantissa, decimals): status 0 ok, 1 not a number, 2 NaN/inf. Up to 18 digits."""
    if end <= start:
        return 1, np.int64(0), 0
    negative = False
    i = start
    if buf[i] == 45 or buf[i] == 43:
        negative = buf[i] == 45
        i += 1
    mantissa = np.int64(0)
    digits = 0
    decimals = 0
    seen_point = False
    if i >= end:
        return 1, np.int64(0), 0
    while i < end:
        c = buf[i]
        if c == 46 and not seen_point:
            seen_point = True
        elif 48 <= c <= 57:
            digits += 1
            if digits > 18:
                return 1, np.int64(0), 0
            mantissa = mantissa * 10 + (c - 48)
            if seen_point:
                decimals += 1
        else:
            if _is_nan_or_inf(buf, start, end):
                return 2, np.int64(0), 0
            return 1, np.int64(0), 0
        i += 1
    if digits == 0:
        return 1, np.int64(0), 0
    return 0, -mantissa if negative else mantissa, decimals


@njit(cache=True, forceinline=True)
def _field_equals(buf, start, end, word):
    if end - start != len(word):
        return False
    for i in range(len(word)):
        if buf[start + i] != word[i]:
            return False
    return True


@njit(cache=True)
def _gcd(a, b):
    a = abs(a)
    b = abs(b)
    while b:
        a, b = b, a % b
    return a


@njit(cache=True, forceinline=True)
def _record_issue(issue, line_no, state, issue_counts, issue_lines, issue_codes):
    issue_counts[issue] += 1
    k = state[ST_N_RECORDED]
    if k < len(issue_lines):
        issue_lines[k] = line_no
        issue_codes[k] = issue
        state[ST_N_RECORDED] = k + 1


@njit(cache=True, forceinline=True)
def price_issue(status, mantissa):
    """The row issue of a price ``_parse_decimal`` returned (0: none)."""
    if status == 2:
        return RowIssue.NAN_OR_INF
    if status == 1:
        return RowIssue.NON_NUMERIC_PRICE
    if mantissa <= 0:
        return RowIssue.NON_POSITIVE_PRICE
    return 0


@njit(cache=True, forceinline=True)
def qty_issue(status, mantissa):
    """The row issue of a quantity ``_parse_decimal`` returned (0: none)."""
    if status == 2:
        return RowIssue.NAN_OR_INF
    if status == 1:
        return RowIssue.NON_NUMERIC_QTY
    if mantissa < 0:
        return RowIssue.NEGATIVE_QTY
    return 0


@njit(cache=True, forceinline=True)
def symbol_index(buf, start, end, sym_names, sym_lens, n_sym, last_sym, upper):
    """The index of the symbol ``buf[start:end]`` (ASCII-upper-cased first if ``upper``) among the
    table's first ``n_sym``, trying ``last_sym`` first (files are mostly one symbol); -1 if absent."""
    for probe in range(n_sym + 1):
        s = last_sym if probe == 0 else probe - 1
        if s >= n_sym:
            continue
        length = sym_lens[s]
        if end - start == length:
            same = True
            for j in range(length):
                c = buf[start + j]
                if upper and 97 <= c <= 122:
                    c -= 32
                if c != sym_names[s, j]:
                    same = False
                    break
            if same:
                return s
    return -1


@njit(cache=True, forceinline=True)
def put_record(out, n_out, line_no, exch_ts, local_ts, sym, symbol_id, kind, side, price_m, price_d, qty_m, qty_d,
               update_id, state, issue_counts, issue_lines, issue_codes, last_local, last_exch, sym_stats):
    """A row whose fields passed their checks, as ``out[n_out:]`` records: the warnings, the symbol's
    statistics, the message framing (see the module's docstring). Returns the new ``n_out``. The CSV
    parser below and the live feed's scanner path (``binance_records_nb``) both end here."""
    price = price_m / _POW10[price_d]
    qty = qty_m / _POW10[qty_d]
    # kept: warnings
    if local_ts < last_local[sym]:
        _record_issue(RowIssue.LOCAL_TS_BACKWARDS, line_no, state, issue_counts, issue_lines, issue_codes)
    last_local[sym] = local_ts
    if exch_ts < last_exch[sym, kind]:
        _record_issue(RowIssue.EXCH_TS_BACKWARDS, line_no, state, issue_counts, issue_lines, issue_codes)
    last_exch[sym, kind] = exch_ts
    # statistics
    stats = sym_stats[sym]
    stats[kind - 1] += 1
    if stats[SS_FIRST_LOCAL] == 0:
        stats[SS_FIRST_LOCAL] = local_ts
        stats[SS_FIRST_EXCH] = exch_ts
    stats[SS_LAST_LOCAL] = local_ts
    stats[SS_LAST_EXCH] = exch_ts
    if kind != EventKind.CLEAR:
        if price_d <= 8:
            stats[SS_PRICE_GCD_E8] = _gcd(stats[SS_PRICE_GCD_E8], price_m * _IPOW10[8 - price_d])
        if qty_d <= 8 and qty_m > 0:
            stats[SS_QTY_GCD_E8] = _gcd(stats[SS_QTY_GCD_E8], qty_m * _IPOW10[8 - qty_d])
        if price_d > stats[SS_PRICE_DECIMALS]:
            stats[SS_PRICE_DECIMALS] = price_d
        if qty_d > stats[SS_QTY_DECIMALS]:
            stats[SS_QTY_DECIMALS] = qty_d
    if kind == EventKind.DEPTH or kind == EventKind.TRADE:
        offset = local_ts - exch_ts
        if state[ST_HAS_MIN] == 0 or offset < state[ST_MIN_LOCAL_MINUS_EXCH]:
            state[ST_MIN_LOCAL_MINUS_EXCH] = offset
            state[ST_HAS_MIN] = 1
    # message framing
    new_message = True
    if n_out > 0:
        prev = out[n_out - 1]
        if (prev["symbol_id"] == symbol_id and prev["update_id"] == update_id and prev["exch_ts_ns"] == exch_ts
                and prev["local_ts_ns"] == local_ts and prev["kind"] == kind):
            if kind == EventKind.DEPTH or kind == EventKind.SNAPSHOT:
                new_message = False
            elif kind == EventKind.BBO and prev["side"] == Side.BUY and side == Side.SELL:
                new_message = False
        if new_message:
            out[n_out - 1]["flags"] |= _LAST
    if new_message and kind == EventKind.SNAPSHOT:
        rec = out[n_out]
        rec["seq"] = 0
        rec["exch_ts_ns"] = exch_ts
        rec["local_ts_ns"] = local_ts
        rec["publish_ts_ns"] = 0
        rec["price"] = 0.0
        rec["qty"] = 0.0
        rec["update_id"] = update_id
        rec["symbol_id"] = symbol_id
        rec["kind"] = EventKind.CLEAR
        rec["side"] = Side.NONE
        rec["flags"] = 0
        n_out += 1
    rec = out[n_out]
    rec["seq"] = 0
    rec["exch_ts_ns"] = exch_ts
    rec["local_ts_ns"] = local_ts
    rec["publish_ts_ns"] = 0
    rec["price"] = price
    rec["qty"] = qty
    rec["update_id"] = update_id
    rec["symbol_id"] = symbol_id
    rec["kind"] = kind
    rec["side"] = side
    rec["flags"] = _INVALID if kind == EventKind.CLEAR else 0
    n_out += 1
    return n_out


_W_DEPTH = np.frombuffer(b"depth", np.uint8)
_W_TRADE = np.frombuffer(b"trade", np.uint8)
_W_BBO = np.frombuffer(b"bbo", np.uint8)
_W_SNAPSHOT = np.frombuffer(b"snapshot", np.uint8)
_W_CLEAR = np.frombuffer(b"clear", np.uint8)
_W_BUY = np.frombuffer(b"buy", np.uint8)
_W_SELL = np.frombuffer(b"sell", np.uint8)


@njit(cache=True)
def parse_block(buf, first_line_no, strict, sym_names, sym_lens, sym_ids, out, state,
                issue_counts, issue_lines, issue_codes, last_local, last_exch, sym_stats):
    """Parse the complete lines in ``buf`` (uint8) into ``out`` (market_event records).

    ``out`` needs room for 2 records per line plus 1. If ``state[ST_CARRY]``, ``out[0]`` holds the
    previous block's last record (not yet known to be last in its message). Returns the number of
    records written; the last one is not final. ``sym_*``: symbol names (uint8 rows, lengths, ids);
    ``last_local``/``last_exch`` (per symbol, per symbol x kind) carry between blocks.
    """
    n_out = 1 if state[ST_CARRY] else 0
    n = len(buf)
    pos = 0
    line_no = first_line_no - 1
    starts = np.zeros(9, np.int64)
    ends = np.zeros(9, np.int64)
    last_sym = 0
    while pos < n:
        line_no += 1
        line_start = pos
        while pos < n and buf[pos] != _NEWLINE:
            pos += 1
        line_end = pos
        pos += 1
        if line_end > line_start and buf[line_end - 1] == _CR:
            line_end -= 1
        if line_end == line_start:
            continue  # blank line: nothing lost
        # split into fields
        n_fields = 0
        field_start = line_start
        for i in range(line_start, line_end + 1):
            if i == line_end or buf[i] == _COMMA:
                if n_fields < 9:
                    starts[n_fields] = field_start
                    ends[n_fields] = i
                n_fields += 1
                field_start = i + 1
        issue = 0
        if n_fields != 8:
            issue = RowIssue.WRONG_COLUMN_COUNT
        exch_ts = np.int64(0)
        local_ts = np.int64(0)
        sym = -1
        kind = 0
        side = 0
        update_id = np.int64(0)
        price_m = np.int64(0)
        price_d = 0
        qty_m = np.int64(0)
        qty_d = 0
        if issue == 0:
            ok1, exch_ts = _parse_uint(buf, starts[0], ends[0])
            ok2, local_ts = _parse_uint(buf, starts[1], ends[1])
            if not (ok1 and ok2):
                issue = RowIssue.BAD_TIMESTAMP
        if issue == 0:
            sym = symbol_index(buf, starts[2], ends[2], sym_names, sym_lens, len(sym_ids), last_sym, False)
            if sym < 0:
                issue = RowIssue.UNKNOWN_SYMBOL
            else:
                last_sym = sym
        if issue == 0:
            if _field_equals(buf, starts[3], ends[3], _W_DEPTH):
                kind = EventKind.DEPTH
            elif _field_equals(buf, starts[3], ends[3], _W_BBO):
                kind = EventKind.BBO
            elif _field_equals(buf, starts[3], ends[3], _W_TRADE):
                kind = EventKind.TRADE
            elif _field_equals(buf, starts[3], ends[3], _W_SNAPSHOT):
                kind = EventKind.SNAPSHOT
            elif _field_equals(buf, starts[3], ends[3], _W_CLEAR):
                kind = EventKind.CLEAR
            else:
                issue = RowIssue.UNKNOWN_KIND
        if issue == 0 and kind != EventKind.CLEAR:
            if _field_equals(buf, starts[4], ends[4], _W_BUY):
                side = Side.BUY
            elif _field_equals(buf, starts[4], ends[4], _W_SELL):
                side = Side.SELL
            else:
                issue = RowIssue.BAD_SIDE
            if issue == 0:
                status, price_m, price_d = _parse_decimal(buf, starts[5], ends[5])
                issue = price_issue(status, price_m)
            if issue == 0:
                status, qty_m, qty_d = _parse_decimal(buf, starts[6], ends[6])
                issue = qty_issue(status, qty_m)
        if issue == 0:
            ok, update_id = _parse_uint(buf, starts[7], ends[7])
            if not ok:
                issue = RowIssue.BAD_UPDATE_ID
        if issue != 0:
            _record_issue(issue, line_no, state, issue_counts, issue_lines, issue_codes)
            if strict:
                state[ST_STOP_LINE] = line_no
                state[ST_STOP_ISSUE] = issue
                break
            continue
        n_out = put_record(out, n_out, line_no, exch_ts, local_ts, sym, sym_ids[sym], kind, side, price_m, price_d,
                           qty_m, qty_d, update_id, state, issue_counts, issue_lines, issue_codes, last_local,
                           last_exch, sym_stats)
    state[ST_LINES] = line_no - first_line_no + 1
    state[ST_N_OUT] = n_out
    return n_out
