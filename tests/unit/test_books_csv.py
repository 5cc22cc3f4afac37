"""Book CSV rows: per-symbol exact decimals when symbols interleave, empty cells for missing levels."""

from __future__ import annotations

import numpy as np

from hftshm.book.book import BookSet
from hftshm.book.books_csv import books_header, write_books
from hftshm.codes import EventFlag, EventKind, Side
from hftshm.feed.testing import events
from hftshm.symbols import DEFAULT_SYMBOLS

LAST = int(EventFlag.LAST_IN_MESSAGE)


def test_interleaved_symbols_are_formatted_with_their_own_steps(tmp_path):
    rows = []
    for i, (sym, px, qty) in enumerate([(1, 61800.2, 0.014), (2, 2612.37, 1.5), (1, 61800.3, 2.0)]):
        rows.append({"kind": EventKind.DEPTH, "side": Side.BUY, "price": px, "qty": qty, "symbol_id": sym,
                     "update_id": i + 1, "exch_ts_ns": 10 + i, "local_ts_ns": 5 + i, "flags": LAST})
    out = tmp_path / "books.csv"
    written = write_books(BookSet(DEFAULT_SYMBOLS), [events(rows)], out, levels=2)
    lines = out.read_text().splitlines()
    assert written == 3 and lines[0] == books_header(2)
    assert lines[1] == "10,5,BTCUSDT,61800.2,,0.014,,,,,"
    assert lines[2] == "11,6,ETHUSDT,2612.37,,1.500,,,,,"
    assert lines[3] == "12,7,BTCUSDT,61800.3,61800.2,2.000,0.014,,,,"


def test_no_float_noise_in_any_cell(tmp_path):
    prices = np.round(61000 + np.arange(200) * 0.1, 1)
    rows = [{"kind": EventKind.DEPTH, "side": Side.SELL, "price": p, "qty": 0.001 * (k + 1), "symbol_id": 1,
             "update_id": k, "flags": LAST} for k, p in enumerate(prices)]
    out = tmp_path / "books.csv"
    write_books(BookSet(DEFAULT_SYMBOLS), [events(rows)], out, levels=10)
    for line in out.read_text().splitlines()[1:]:
        for cell in line.split(",")[3:]:
            assert cell == "" or len(cell.split(".")[-1]) <= 3, cell
