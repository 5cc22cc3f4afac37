"""Tick CSV -> market_event records: exact numbers, framing, malformed rows with line numbers."""

from __future__ import annotations

import numpy as np
import pytest

from hftshm.codes import EventFlag, EventKind, Side
from hftshm.feed.testing import write_tick_csv
from hftshm.feed.ticks import RowIssue
from hftshm.feed.tickcsv import RowReport, TickCsvError, iter_records
from hftshm.symbols import DEFAULT_SYMBOLS

LAST = EventFlag.LAST_IN_MESSAGE
T = 1_723_161_256_000_000_000


def _read(path, **kw):
    report = RowReport(str(path))
    blocks = [b.copy() for b in iter_records(path, DEFAULT_SYMBOLS, report=report, **kw)]
    events = np.concatenate(blocks) if blocks else np.zeros(0)
    return events, report


def _row(i, kind="depth", side="buy", price="100.0", qty="1.000", uid=None, sym="BTCUSDT", exch=None, local=None):
    return (T + i if exch is None else exch, T - 1_270_000_000 + i if local is None else local, sym, kind, side,
            price, qty, i if uid is None else uid)


@pytest.mark.parametrize("text", ["61800.20", "0.1", "58710.20", "0.000001", "123456789.123456", "7", "1e0"[:1],
                                  "9999999.99999999", "0.30000000000000004"[:18]])
def test_decimal_strings_become_the_same_double_as_float(tmp_path, text):
    path = write_tick_csv(tmp_path / "t.csv", [_row(1, price=text, qty=text)])
    events, report = _read(path)
    assert report.rejected == 0
    assert events[0]["price"] == float(text) and events[0]["qty"] == float(text)


def test_framing_last_in_message_snapshot_clear_and_bbo_pairs(tmp_path):
    rows = [
        _row(1, "snapshot", "buy", "100.0", uid=9), _row(1, "snapshot", "sell", "101.0", uid=9),
        _row(2, "depth", "buy", "100.1", uid=10), _row(2, "depth", "sell", "101.1", uid=10),
        _row(3, "bbo", "buy", "100.1", uid=11), _row(3, "bbo", "sell", "101.0", uid=11),
        _row(4, "trade", "sell", "100.1", uid=12), _row(4, "trade", "sell", "100.1", uid=12),
        (T + 5, T + 5, "BTCUSDT", "clear", "", "", "", 10),
    ]
    events, _ = _read(write_tick_csv(tmp_path / "t.csv", rows))
    kinds = list(events["kind"])
    assert kinds == [EventKind.CLEAR, EventKind.SNAPSHOT, EventKind.SNAPSHOT, EventKind.DEPTH, EventKind.DEPTH,
                     EventKind.BBO, EventKind.BBO, EventKind.TRADE, EventKind.TRADE, EventKind.CLEAR]
    last = [bool(f & LAST) for f in events["flags"]]
    # snapshot = CLEAR + levels (one message); a trade row is a message of its own, even with equal ids
    assert last == [False, False, True, False, True, False, True, True, True, True]
    assert events[0]["flags"] & EventFlag.BOOK_INVALID == 0  # the snapshot's clear is no gap
    assert events[-1]["flags"] & EventFlag.BOOK_INVALID
    assert list(events["side"][5:7]) == [Side.BUY, Side.SELL]


@pytest.mark.parametrize("row, issue", [
    ("1,2,BTCUSDT,depth,buy,100.0,1.0", RowIssue.WRONG_COLUMN_COUNT),
    ("1,2,BTCUSDT,depth,buy,100.0,1.0,5,extra", RowIssue.WRONG_COLUMN_COUNT),
    ("x1,2,BTCUSDT,depth,buy,100.0,1.0,5", RowIssue.BAD_TIMESTAMP),
    ("1,-2,BTCUSDT,depth,buy,100.0,1.0,5", RowIssue.BAD_TIMESTAMP),
    ("1,2,DOGEUSDT,depth,buy,100.0,1.0,5", RowIssue.UNKNOWN_SYMBOL),
    ("1,2,BTCUSDT,quote,buy,100.0,1.0,5", RowIssue.UNKNOWN_KIND),
    ("1,2,BTCUSDT,depth,bid,100.0,1.0,5", RowIssue.BAD_SIDE),
    ("1,2,BTCUSDT,depth,buy,abc,1.0,5", RowIssue.NON_NUMERIC_PRICE),
    ("1,2,BTCUSDT,depth,buy,1.2.3,1.0,5", RowIssue.NON_NUMERIC_PRICE),
    ("1,2,BTCUSDT,depth,buy,,1.0,5", RowIssue.NON_NUMERIC_PRICE),
    ("1,2,BTCUSDT,depth,buy,100.0,x,5", RowIssue.NON_NUMERIC_QTY),
    ("1,2,BTCUSDT,depth,buy,NaN,1.0,5", RowIssue.NAN_OR_INF),
    ("1,2,BTCUSDT,depth,buy,100.0,-inf,5", RowIssue.NAN_OR_INF),
    ("1,2,BTCUSDT,trade,buy,Infinity,1.0,5", RowIssue.NAN_OR_INF),
    ("1,2,BTCUSDT,depth,buy,100.0,-1.0,5", RowIssue.NEGATIVE_QTY),
    ("1,2,BTCUSDT,depth,buy,0.0,1.0,5", RowIssue.NON_POSITIVE_PRICE),
    ("1,2,BTCUSDT,depth,buy,-5,1.0,5", RowIssue.NON_POSITIVE_PRICE),
    ("1,2,BTCUSDT,depth,buy,100.0,1.0,", RowIssue.BAD_UPDATE_ID),
    ("1,2,BTCUSDT,depth,buy,1234567890123456789012,1.0,5", RowIssue.NON_NUMERIC_PRICE),
])
def test_malformed_rows_are_skipped_and_counted_with_line_numbers(tmp_path, row, issue):
    path = write_tick_csv(tmp_path / "t.csv", [_row(1), row, _row(3)])
    events, report = _read(path)
    assert len(events) == 2  # the good rows survive
    assert report.issue_counts == {issue: 1}
    assert report.issue_lines == [(3, issue)]  # line 1 is the header
    assert report.rejected == 1
    with pytest.raises(TickCsvError, match=r"t\.csv:3: .*--strict"):
        _read(path, strict=True)


def test_problem_lines_name_counts_and_lines(tmp_path):
    rows = [_row(1, price="nan"), _row(2), _row(3, price="NaN"), _row(4, sym="XYZ")]
    _, report = _read(write_tick_csv(tmp_path / "t.csv", rows))
    text = "\n".join(report.problem_lines())
    assert "nan_or_inf: 2 row(s)" in text and "lines 2, 4" in text
    assert "unknown_symbol: 1 row(s)" in text and "lines 5" in text


def test_timestamps_backwards_are_warned_and_kept(tmp_path):
    rows = [_row(1, local=T + 100, exch=T + 100), _row(2, local=T + 50, exch=T + 200),
            _row(3, exch=T + 10, local=T + 300)]
    events, report = _read(write_tick_csv(tmp_path / "t.csv", rows))
    assert len(events) == 3 and report.rejected == 0
    assert report.issue_lines == [(3, RowIssue.LOCAL_TS_BACKWARDS), (4, RowIssue.EXCH_TS_BACKWARDS)]
    assert report.warnings == 2


def test_blocks_carry_messages_across_boundaries(tmp_path):
    rows = []
    for m in range(300):  # messages of 1..7 levels
        for k in range(m % 7 + 1):
            rows.append(_row(m, price=f"{100 + k}.{m % 10}", uid=m))
    path = write_tick_csv(tmp_path / "t.csv.gz", rows)
    whole, _ = _read(path)
    small, report = _read(path, block_bytes=97)  # many blocks, lines split mid-way
    assert report.lines == len(rows) + 1
    assert np.array_equal(whole, small)
    assert int(np.count_nonzero(whole["flags"] & LAST)) == 300


def test_header_must_be_the_canonical_one(tmp_path):
    path = write_tick_csv(tmp_path / "t.csv", [_row(1)], header="ts,symbol,price")
    with pytest.raises(TickCsvError, match="t.csv:1: not a canonical tick CSV header"):
        _read(path)


@pytest.mark.parametrize("first_line, hint", [
    ('1723161254024619568 {"stream":"ethusdt@bookTicker","data":{}}', "'hftshm data import "),
    ("exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount", "'hftshm data import --format tardis "),
])
def test_a_raw_recording_given_as_a_tick_csv_says_to_import_it(tmp_path, first_line, hint):
    path = tmp_path / "recording.csv"
    path.write_text(first_line + "\n")
    with pytest.raises(TickCsvError, match="not a canonical tick CSV header") as caught:
        _read(path)
    assert hint + str(path) in str(caught.value) and "-o OUT.csv.gz" in str(caught.value)
    other = write_tick_csv(tmp_path / "t.csv", [_row(1)], header="ts,symbol,price")
    with pytest.raises(TickCsvError) as caught:
        _read(other)
    assert "data import" not in str(caught.value)  # no hint for a file that is no recording either


def test_statistics_infer_tick_and_lot_and_clock_offset(tmp_path):
    rows = [_row(1, price="61800.20", qty="0.013"), _row(2, price="61800.30", qty="2.500", exch=T + 2,
                                                         local=T - 1_300_000_000)]
    _, report = _read(write_tick_csv(tmp_path / "t.csv", rows))
    stats = report.symbol_stats["BTCUSDT"]
    assert stats["inferred_tick_size"] == 0.1 and stats["inferred_lot_size"] == 0.001
    assert stats["price_decimals"] == 2 and stats["rows"]["depth"] == 2
    assert report.min_local_minus_exch_ns == -1_300_000_002


def test_blank_lines_and_crlf_are_accepted(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"exch_ts_ns,local_ts_ns,symbol,kind,side,price,qty,update_id\r\n"
                     b"1,2,BTCUSDT,trade,buy,100.5,1.0,5\r\n\r\n3,4,BTCUSDT,trade,sell,100.4,2.0,6")
    events, report = _read(path)
    assert list(events["price"]) == [100.5, 100.4] and report.rejected == 0
    assert events[-1]["flags"] & LAST
