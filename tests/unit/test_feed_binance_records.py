"""Records straight from the byte scanner's table (binance_records_nb) against the text round trip
the import takes (binance_rows_nb rows, then the tick parser): the same records, issues, counts."""

from __future__ import annotations

import numpy as np

from hftshm.feed import binance_nb as scan_nb
from hftshm.feed import binance_records_nb, binance_rows_nb, csv_nb
from hftshm.feed.tickcsv import MAX_RECORDED_ISSUES, _symbol_arrays
from hftshm.feed.ticks import N_ISSUES, RowIssue
from hftshm.transport.layout import load as load_layout
from hftshm.symbols import DEFAULT_SYMBOLS

NS = 1_723_161_255_000_000_000


def _trade(k, price, qty, symbol="BTCUSDT", sell=False):
    return (f'{NS + k} {{"stream":"x@trade","data":{{"e":"trade","E":{1723161254000 + k},"T":1,"s":"{symbol}",'
            f'"t":{k},"p":"{price}","q":"{qty}","X":"MARKET","m":{"true" if sell else "false"}}}}}')


def _bbo(k, bid, ask, symbol="BTCUSDT"):
    return (f'{NS + k} {{"stream":"x@bookTicker","data":{{"e":"bookTicker","u":{k},"s":"{symbol}","b":"{bid[0]}",'
            f'"B":"{bid[1]}","a":"{ask[0]}","A":"{ask[1]}","T":1,"E":{1723161254000 + k}}}}}')


def _depth(k, bids, asks, symbol="BTCUSDT"):
    levels = lambda side: ",".join(f'["{p}","{q}"]' for p, q in side)  # noqa: E731
    return (f'{NS + k} {{"stream":"x@depth@0ms","data":{{"e":"depthUpdate","E":{1723161254000 + k},"T":1,'
            f'"s":"{symbol}","U":{k},"u":{k + 1},"pu":{k - 1},"b":[{levels(bids)}],"a":[{levels(asks)}]}}}}')


def _parser():
    _, names, lens, ids = _symbol_arrays(DEFAULT_SYMBOLS)
    n = len(ids)
    return [names, lens, ids, load_layout("market_event").zeros(4096), np.zeros(csv_nb.N_STATE, np.int64),
            np.zeros(N_ISSUES, np.int64), np.zeros(MAX_RECORDED_ISSUES, np.int64),
            np.zeros(MAX_RECORDED_ISSUES, np.int64), np.zeros(n, np.int64), np.zeros((n, 8), np.int64),
            np.zeros((n, csv_nb.N_SYMBOL_STATS), np.int64)]


def test_records_from_the_scanners_table_equal_the_parsed_rows_issues_included():
    lines = [
        _trade(1, "60000.10", "0.005"),
        _bbo(2, ("60000.10", "1.5"), ("60000.20", "0.25")),
        _depth(3, [("60000.10", "2.0"), ("59999.90", "0")], [("60000.20", "1.0")]),
        _trade(4, "NaN", "0.005"),  # a NaN price: rejected
        _trade(5, "60000.10", "-1", sell=True),  # a negative quantity: rejected
        _trade(6, "60000.10", "0.005", symbol="NOSUCHUSDT"),  # not in the symbol table: rejected
        _trade(7, "60000.10", "0.005", symbol="btcusdt"),  # lower case: upper-cased, as the import does
        _bbo(8, ("1,5", "1"), ("60000.20", "0.25")),  # a comma inside a price: the row splits
        _depth(9, [], [("", "1.0"), ("60000.30", "abc")]),  # an empty price, a word for a quantity
        _depth(10, [], []),  # no levels: no rows
        _trade(11, "60000.00", "0.001"),
    ]
    data = ("\n".join(lines) + "\n").encode()
    buf = np.frombuffer(data, np.uint8)
    table = scan_nb.scan_lines(buf, len(lines))
    kinds = table[:, scan_nb.C_KIND].tolist()
    assert scan_nb.FALLBACK not in kinds and scan_nb.BLANK not in kinds, kinds  # all taken by the scanner
    rows = np.zeros(1 << 16, np.uint8)
    pos = 0
    for k in range(len(lines)):
        pos = binance_rows_nb._put_line(rows, pos, buf, table[k], table[k, scan_nb.C_LOCAL])
    text = rows[:pos].copy()

    want = _parser()
    want[4][csv_nb.ST_CARRY] = 0
    n_want = csv_nb.parse_block(text, 101, False, *want)
    got = _parser()
    n_got = binance_records_nb.records_of_lines(buf, table, len(lines), 101, *got)

    assert n_got == n_want > 5
    out_got, out_want = got[3][:n_got], want[3][:n_want]
    for field in out_want.dtype.names:
        assert np.array_equal(out_got[field], out_want[field]), field
    for k, (a, b) in enumerate(zip(got[4:], want[4:])):  # parser state, issues with line numbers, statistics
        assert np.array_equal(a, b), k
    issues = {RowIssue(i).name: int(c) for i, c in enumerate(want[5]) if c}
    assert issues == {"NAN_OR_INF": 1, "NEGATIVE_QTY": 1, "UNKNOWN_SYMBOL": 1, "WRONG_COLUMN_COUNT": 1,
                      "NON_NUMERIC_PRICE": 1, "NON_NUMERIC_QTY": 1}
