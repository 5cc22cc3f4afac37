"""numba kernel: ``market_event`` records straight from the byte scanner's table (binance_nb.py).

The import writes canonical CSV rows for scanned lines (``binance_rows_nb._put_line``) and the tick
parser turns rows into records (``csv_nb.parse_block``). The live feed needs only the records, and
the text round trip was most of a depth diff's cost (a 153-level diff, warm: scan 10.6 us, rows
14.5 us, parse 39.8 us). This kernel gives ``parse_block``'s records for the rows ``_put_line``
would write, without the text: the same fields, taken where ``_put_line`` copies them from (prices
and quantities as the exchange wrote them, parsed by the parser's own ``_parse_decimal``), checked
in the parser's order, and ending in the parser's own ``put_record`` (warnings, statistics, message
framing), with the canonical rows' line numbers in any issue. One row handling, two front ends::

    scanned line ──> _put_line ──> "exch,local,SYMBOL,kind,side,price,qty,id" ──> parse_block ─┐
                 └──> records_of_lines (the same fields, no text) ────────────────────────────┴─> put_record

What a row's text would have broken (a comma inside a field splits it into more columns) is
reported as the parser would: ``WRONG_COLUMN_COUNT``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.codes import EventKind, Side
from hftshm.feed import csv_nb
from hftshm.feed.binance_nb import (BBO, C_EXCH, C_F0E, C_F0S, C_F1E, C_F1S, C_F2E, C_F2S, C_F3E, C_F3S, C_KIND,
                                    C_LOCAL, C_SIDE_SELL, C_SYM_E, C_SYM_S, C_TRADE_ID, C_UID, DEPTH, TRADE,
                                    next_level)
from hftshm.feed.ticks import RowIssue


@njit(cache=True, forceinline=True)
def _has_comma(buf, start, end):
    for i in range(start, end):
        if buf[i] == 44:
            return True
    return False


@njit(cache=True, forceinline=True)
def _line_issue(buf, row, sym_names, sym_lens, n_sym, last_sym):
    """What a line's rows share: (issue of its symbol or stamps, symbol index or -1), checked in the
    parser's order; a comma in a row's own price or quantity comes first (``_row``)."""
    s0, s1 = row[C_SYM_S], row[C_SYM_E]
    if _has_comma(buf, s0, s1):
        return RowIssue.WRONG_COLUMN_COUNT, -1
    if row[C_EXCH] < 0 or row[C_LOCAL] < 0:  # (_put_int writes nothing for a negative stamp: an empty field)
        return RowIssue.BAD_TIMESTAMP, -1
    sym = csv_nb.symbol_index(buf, s0, s1, sym_names, sym_lens, n_sym, last_sym, True)
    if sym < 0:
        return RowIssue.UNKNOWN_SYMBOL, -1
    return 0, sym


@njit(cache=True, forceinline=True)
def _row(buf, row, kind, side, ps, pe, qs, qe, update_id, line_no, n_out, line_issue, sym, sym_ids, out, pstate,
         issue_counts, issue_lines, issue_codes, last_local, last_exch, sym_stats):
    """One canonical row's record(s), or its issue, as ``parse_block`` treats the row ``_put_line``
    writes (``line_issue``, ``sym``: its line's, from ``_line_issue``); returns n_out."""
    exch_ts = row[C_EXCH]
    local_ts = row[C_LOCAL]
    issue = line_issue
    if _has_comma(buf, ps, pe) or _has_comma(buf, qs, qe):
        issue = RowIssue.WRONG_COLUMN_COUNT
    price_m = np.int64(0)
    price_d = 0
    qty_m = np.int64(0)
    qty_d = 0
    if issue == 0:
        status, price_m, price_d = csv_nb._parse_decimal(buf, ps, pe)
        issue = csv_nb.price_issue(status, price_m)
    if issue == 0:
        status, qty_m, qty_d = csv_nb._parse_decimal(buf, qs, qe)
        issue = csv_nb.qty_issue(status, qty_m)
    if issue == 0 and update_id < 0:
        issue = RowIssue.BAD_UPDATE_ID
    if issue != 0:
        csv_nb._record_issue(issue, line_no, pstate, issue_counts, issue_lines, issue_codes)
        return n_out
    return csv_nb.put_record(out, n_out, line_no, exch_ts, local_ts, sym, sym_ids[sym], kind, side, price_m, price_d,
                             qty_m, qty_d, update_id, pstate, issue_counts, issue_lines, issue_codes, last_local,
                             last_exch, sym_stats)


@njit(cache=True)
def records_of_lines(buf, table, n_lines, first_line_no, sym_names, sym_lens, sym_ids, out, pstate, issue_counts,
                     issue_lines, issue_codes, last_local, last_exch, sym_stats):
    """The records of scanned lines ``table[:n_lines]`` (bbo, trade and depth lines of ``buf``) into
    ``out`` from index 0, as ``parse_block`` gives them for those lines' canonical rows numbered from
    ``first_line_no`` (same parser state, counts and statistics). Returns the records written; the
    parser state's line and record counts are set as ``parse_block`` sets them."""
    n_out = 0
    line_no = first_line_no - 1
    last_sym = 0
    n_sym = len(sym_ids)
    for k in range(n_lines):
        row = table[k]
        kind = row[C_KIND]
        if kind != BBO and kind != TRADE and kind != DEPTH:
            continue
        line_issue, sym = _line_issue(buf, row, sym_names, sym_lens, n_sym, last_sym)
        if sym >= 0:
            last_sym = sym
        if kind == BBO:
            line_no += 1
            n_out = _row(buf, row, EventKind.BBO, Side.BUY, row[C_F0S], row[C_F0E], row[C_F1S], row[C_F1E], row[C_UID],
                         line_no, n_out, line_issue, sym, sym_ids, out, pstate, issue_counts, issue_lines, issue_codes,
                         last_local, last_exch, sym_stats)
            line_no += 1
            n_out = _row(buf, row, EventKind.BBO, Side.SELL, row[C_F2S], row[C_F2E], row[C_F3S], row[C_F3E],
                         row[C_UID], line_no, n_out, line_issue, sym, sym_ids, out, pstate, issue_counts, issue_lines,
                         issue_codes, last_local, last_exch, sym_stats)
        elif kind == TRADE:
            line_no += 1
            side = Side.SELL if row[C_SIDE_SELL] else Side.BUY
            n_out = _row(buf, row, EventKind.TRADE, side, row[C_F0S], row[C_F0E], row[C_F1S], row[C_F1E],
                         row[C_TRADE_ID], line_no, n_out, line_issue, sym, sym_ids, out, pstate, issue_counts,
                         issue_lines, issue_codes, last_local, last_exch, sym_stats)
        else:
            for half in range(2):
                side = Side.BUY if half == 0 else Side.SELL
                s, e = (row[C_F0S], row[C_F0E]) if half == 0 else (row[C_F1S], row[C_F1E])
                i = s  # the [price, qty] pairs, as the row formatter walks them
                while True:
                    ps, pe, qs, qe, i = next_level(buf, i, e)
                    if ps < 0:
                        break
                    line_no += 1
                    n_out = _row(buf, row, EventKind.DEPTH, side, ps, pe, qs, qe, row[C_UID], line_no, n_out,
                                 line_issue, sym, sym_ids, out, pstate, issue_counts, issue_lines, issue_codes,
                                 last_local, last_exch, sym_stats)
    pstate[csv_nb.ST_LINES] = line_no - first_line_no + 1
    pstate[csv_nb.ST_N_OUT] = n_out
    return n_out
