"""The correctness test on real data: the book rebuilt from the shipped Binance day agrees with the
exchange's own best bid/offer (bookTicker) at every update id both share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hftshm.book.book import BookSet
from hftshm.codes import EventKind, Side
from hftshm.feed import cache
from hftshm.symbols import DEFAULT_SYMBOLS

DAY = Path(__file__).resolve().parents[2] / "data" / "btcusdt_20240808.csv.gz"


@pytest.fixture(scope="module")
def day_events(tmp_path_factory):
    if not DAY.exists():
        pytest.fail(f"{DAY} is missing: the project ships it (hftshm data import re-creates it)")
    built = cache.load(DAY, DEFAULT_SYMBOLS, cache=tmp_path_factory.mktemp("cache") / "day.events.bin")
    assert built.report["issues"] == {}  # the shipped file has no malformed rows
    return np.array(built.events)


def test_book_agrees_with_every_matching_bookticker(day_events):
    books = BookSet(DEFAULT_SYMBOLS)
    after = {}  # depth update id -> (best bid ticks, best ask ticks) once that diff is applied
    for block in books.apply_top(day_events, levels=1):
        for r in range(len(block.meta)):
            if day_events[int(block.meta[r, 7])]["kind"] == EventKind.DEPTH:
                after[int(block.meta[r, 3])] = (int(block.bid_px[r, 0]), int(block.ask_px[r, 0]))
    bbo = day_events[day_events["kind"] == EventKind.BBO]
    bids, asks = bbo[bbo["side"] == Side.BUY], bbo[bbo["side"] == Side.SELL]
    assert len(bids) == len(asks) == 66_089 and np.array_equal(bids["update_id"], asks["update_id"])
    compared = mismatched = 0
    for bid, ask in zip(bids, asks):
        state = after.get(int(bid["update_id"]))
        if state is None:
            continue
        compared += 1
        if state != (round(bid["price"] * 10), round(ask["price"] * 10)):
            mismatched += 1
    print(f"compared {compared} bookTicker events with the rebuilt book at the same update id")
    assert compared == 629
    assert mismatched == 0
    book = books["BTCUSDT"]
    assert book.valid and book.issues() == {}
    assert book.depth() == (5018, 4578)  # full depth: every level the diffs ever added, far ones included
    assert book.best_bid == 61659.7 and book.best_ask == 61659.8


def test_far_levels_of_the_real_day_are_kept(day_events):
    books = BookSet(DEFAULT_SYMBOLS)
    books.apply(day_events)
    bids, asks = books["BTCUSDT"].levels(6000)
    prices = {t for t, _ in bids}
    assert 587102 in prices  # the 58710.20 bid of the first diff, 5 % below the touch
    assert min(prices) == 5600  # 560.0
    assert max(t for t, _ in asks) == 6170500  # 617050.0, ten times the touch


def test_clock_offset_of_the_recording(day_events):
    depth_or_trade = (day_events["kind"] == EventKind.DEPTH) | (day_events["kind"] == EventKind.TRADE)
    sel = day_events[depth_or_trade]
    offset = int((sel["local_ts_ns"] - sel["exch_ts_ns"]).min())
    assert -1_300_000_000 < offset < -1_250_000_000  # the recording clock ran ~1.27 s behind Binance's
