"""The backtest loop's L2 book and the fill model's view read a message's rows in one pass, and the
view takes an event's units (price ticks, lots) from the book's conversion when both use the same
integral 1/tick and 1/lot (``compiled._same_grid``); otherwise each converts its own. Either way the
fills are the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hftshm.backtest import compiled, run_backtest
from hftshm.book.book import BookSet
from hftshm.exchange.common_nb import SC_LOT_INV, SC_TICK_INV
from hftshm.exchange.engine import scale_table
from hftshm.symbols import DEFAULT_SYMBOLS

REAL_DAY = Path(__file__).resolve().parents[2] / "data" / "btcusdt_20240808.csv.gz"


def test_same_grid_only_when_both_convert_with_the_same_integral_inverse():
    books = BookSet(DEFAULT_SYMBOLS).arrays
    view_book_of, scale = scale_table(DEFAULT_SYMBOLS)
    assert compiled._same_grid(books, scale, view_book_of)
    b = int(view_book_of[next(iter(DEFAULT_SYMBOLS)).symbol_id])
    for column, value in ((SC_TICK_INV, 0.0), (SC_TICK_INV, scale[b, SC_TICK_INV] * 2), (SC_LOT_INV, 0.0)):
        other = scale.copy()
        other[b, column] = value  # a division path, or another instrument's tick
        assert not compiled._same_grid(books, other, view_book_of)
    unknown = np.full_like(view_book_of, -1)  # symbols the view does not keep: nothing to disagree on
    assert compiled._same_grid(books, scale, unknown)


@pytest.mark.parametrize("strategy", ["market_maker"])
def test_fills_equal_whether_the_view_takes_the_books_units_or_its_own(monkeypatch, strategy):
    from hftshm.backtest.data import load_events

    events = load_events(REAL_DAY, DEFAULT_SYMBOLS)[0][:200_000]
    from_book = run_backtest(None, events, strategy, {}, seed=1, engine_name="compiled")
    monkeypatch.setattr(compiled, "_same_grid", lambda *args: False)
    own = run_backtest(None, events, strategy, {}, seed=1, engine_name="compiled")
    assert from_book.trades > 0
    assert [tuple(f) for f in from_book.fills] == [tuple(f) for f in own.fills]
