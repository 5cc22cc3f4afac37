"""L2 book: levels, best prices, far levels, window re-centring, derived figures, rejects by reason."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftshm.book.book import BookSet, DecimalStep
from hftshm.book.issues import BookIssue
from hftshm.codes import EventFlag, EventKind, Side
from hftshm.feed.testing import events
from hftshm.symbols import DEFAULT_SYMBOLS

LAST = int(EventFlag.LAST_IN_MESSAGE)
BTC = 1


def ev(kind, side, price, qty, last=True, uid=1, ts=1_000, sym=BTC, flags=0):
    return {"kind": kind, "side": side, "price": price, "qty": qty, "update_id": uid, "exch_ts_ns": ts,
            "local_ts_ns": ts, "symbol_id": sym, "flags": (LAST if last else 0) | flags}


def snapshot(bids, asks, uid=1, ts=1_000):
    rows = [ev(EventKind.CLEAR, Side.NONE, 0.0, 0.0, last=False, uid=uid, ts=ts)]
    rows += [ev(EventKind.SNAPSHOT, Side.BUY, p, q, last=False, uid=uid, ts=ts) for p, q in bids]
    rows += [ev(EventKind.SNAPSHOT, Side.SELL, p, q, last=False, uid=uid, ts=ts) for p, q in asks]
    rows[-1]["flags"] = LAST
    return rows


@pytest.fixture
def books():
    return BookSet(DEFAULT_SYMBOLS)


def test_snapshot_then_diffs(books):
    books.apply(events(snapshot([(61800.2, 2.5), (61800.1, 0.5)], [(61800.3, 1.0), (61801.0, 3.0)])))
    book = books["BTCUSDT"]
    assert book.valid and book.best_bid == 61800.2 and book.best_ask == 61800.3
    books.apply(events([ev(EventKind.DEPTH, Side.BUY, 61800.2, 0.0, last=False, uid=2),
                        ev(EventKind.DEPTH, Side.SELL, 61800.25 + 0.05, 0.0, last=False, uid=2),
                        ev(EventKind.DEPTH, Side.BUY, 58710.2, 0.014, uid=2)]))
    bids, asks = book.levels_decimal(5)
    assert bids == [("61800.1", "0.500"), ("58710.2", "0.014")]
    assert asks == [("61801.0", "3.000")]
    assert book.update_id == 2 and book.book_seq == 7 and book.depth() == (2, 1)


def test_derived_figures(books):
    books.apply(events(snapshot([(100.0, 3.0)], [(100.2, 1.0)])))
    book = books["BTCUSDT"]
    assert book.mid == pytest.approx(100.1)
    assert book.spread == pytest.approx(0.2)
    assert book.imbalance == pytest.approx(0.5)
    assert book.microprice == pytest.approx((100.0 * 1.0 + 100.2 * 3.0) / 4.0)
    snaps = BookSet(DEFAULT_SYMBOLS).apply_snapshots(events(snapshot([(100.0, 3.0)], [(100.2, 1.0)])), levels=3)
    s = snaps[-1]
    assert s["valid"] == 1 and s["levels"] == 1 and s["symbol_id"] == BTC
    assert s["bid_px"][0] == 100.0 and math.isnan(s["bid_px"][1]) and s["bid_qty"][1] == 0.0
    assert s["mid"] == pytest.approx(100.1) and s["imbalance"] == pytest.approx(0.5)


def test_far_levels_and_recentring_keep_full_depth():
    """A 64-tick window: most levels live in the far arrays, and the touch walks across the window."""
    small = BookSet(DEFAULT_SYMBOLS, window_ticks=64)
    reference = {Side.BUY: {}, Side.SELL: {}}
    rows = snapshot([(1000.0, 1.0), (560.0, 2.0)], [(1000.1, 1.0), (62136.8, 5.0)])
    for p, q in [(1000.0, 1.0), (560.0, 2.0)]:
        reference[Side.BUY][round(p * 10)] = q
    for p, q in [(1000.1, 1.0), (62136.8, 5.0)]:
        reference[Side.SELL][round(p * 10)] = q
    rng = np.random.default_rng(3)
    mid = 1000.0
    for step in range(3000):  # the touch drifts upwards far beyond the window
        mid += 0.3
        side = Side.BUY if step % 2 == 0 else Side.SELL
        distance = 0.1 * rng.integers(1, 200)
        price = round(mid - distance, 1) if side == Side.BUY else round(mid + distance, 1)
        qty = 0.0 if rng.random() < 0.3 else round(float(rng.integers(1, 100)) / 1000, 3)
        rows.append(ev(EventKind.DEPTH, side, price, qty, uid=step + 2))
        ticks = round(price * 10)
        if qty == 0:
            reference[side].pop(ticks, None)
        else:
            reference[side][ticks] = qty
    small.apply(events(rows))
    book = small["BTCUSDT"]
    assert book.recentres > 10
    bids, asks = book.levels(2000)
    assert bids == [(t, round(q * 1000)) for t, q in sorted(reference[Side.BUY].items(), reverse=True)]
    assert asks == [(t, round(q * 1000)) for t, q in sorted(reference[Side.SELL].items())]


@pytest.mark.parametrize("row, issue", [
    (ev(EventKind.DEPTH, Side.BUY, float("nan"), 1.0), BookIssue.NAN_OR_INF_PRICE),
    (ev(EventKind.DEPTH, Side.BUY, float("inf"), 1.0), BookIssue.NAN_OR_INF_PRICE),
    (ev(EventKind.DEPTH, Side.BUY, 100.0, float("nan")), BookIssue.NAN_OR_INF_QTY),
    (ev(EventKind.DEPTH, Side.BUY, 100.0, -1.0), BookIssue.NEGATIVE_QTY),
    (ev(EventKind.DEPTH, Side.BUY, -100.0, 1.0), BookIssue.NON_POSITIVE_PRICE),
    (ev(EventKind.DEPTH, Side.BUY, 100.05, 1.0), BookIssue.OFF_TICK),
    (ev(EventKind.DEPTH, Side.BUY, 100.0, 1.0005), BookIssue.OFF_LOT),
    (ev(EventKind.DEPTH, Side.BUY, 1e30, 1.0), BookIssue.PRICE_OUT_OF_RANGE),
    (ev(EventKind.DEPTH, Side.NONE, 100.0, 1.0), BookIssue.BAD_SIDE),
    (ev(9, Side.BUY, 100.0, 1.0), BookIssue.UNKNOWN_KIND),
    (ev(EventKind.TRADE, Side.BUY, float("nan"), 1.0), BookIssue.NAN_OR_INF_PRICE),
])
def test_bad_events_are_counted_and_not_applied(books, row, issue):
    books.apply(events(snapshot([(99.0, 1.0)], [(101.0, 1.0)])))
    books.apply(events([row]))
    book = books["BTCUSDT"]
    assert book.issues() == {issue: 1}
    assert book.levels(5) == ([(990, 1000)], [(1010, 1000)])
    assert books.rejected() == 1


def test_unknown_symbol_is_counted_apart(books):
    books.apply(events([ev(EventKind.DEPTH, Side.BUY, 100.0, 1.0, sym=7), ev(EventKind.DEPTH, Side.BUY, 100.0, 1.0,
                                                                              sym=60000)]))
    assert books.issues()["?"] == {BookIssue.UNKNOWN_SYMBOL: 2}
    assert books.rejected() == 2


def test_crossed_locked_and_backwards_timestamps_are_counted(books):
    books.apply(events(snapshot([(100.0, 1.0)], [(100.2, 1.0)], ts=5_000)))
    books.apply(events([ev(EventKind.DEPTH, Side.BUY, 100.2, 1.0, uid=2, ts=6_000),  # locked
                        ev(EventKind.DEPTH, Side.BUY, 100.3, 1.0, uid=3, ts=4_000),  # crossed, exch + local backwards
                        ev(EventKind.DEPTH, Side.BUY, 100.1, 1.0, uid=1, ts=7_000)]))  # update id backwards
    issues = books["BTCUSDT"].issues()
    assert issues[BookIssue.LOCKED] == 1 and issues[BookIssue.CROSSED] == 2
    assert issues[BookIssue.EXCH_TS_BACKWARDS] == 1 and issues[BookIssue.LOCAL_TS_BACKWARDS] == 1
    assert issues[BookIssue.UPDATE_ID_BACKWARDS] == 1
    assert books["BTCUSDT"].best_bid == 100.3  # noticed, still applied: the data is the data


def test_gap_clear_invalidates_until_next_snapshot(books):
    books.apply(events(snapshot([(100.0, 1.0)], [(100.2, 1.0)])))
    assert books["BTCUSDT"].valid
    books.apply(events([ev(EventKind.CLEAR, Side.NONE, 0.0, 0.0, flags=int(EventFlag.BOOK_INVALID))]))
    book = books["BTCUSDT"]
    assert not book.valid and book.depth() == (0, 0) and math.isnan(book.best_bid)
    books.apply(events([ev(EventKind.DEPTH, Side.BUY, 100.0, 1.0)]))
    assert not book.valid and book.issues()[BookIssue.DEPTH_WHILE_INVALID] == 1
    books.apply(events(snapshot([(101.0, 1.0)], [(101.2, 1.0)])))
    assert book.valid and book.best_bid == 101.0 and book.depth() == (1, 1)
    assert book.issues()[BookIssue.GAP_CLEAR] == 1


def test_far_arrays_grow_instead_of_losing_levels():
    small = BookSet(DEFAULT_SYMBOLS, window_ticks=64, far_capacity=4)
    rows = snapshot([(100.0, 1.0)], [(100.1, 1.0)])
    rows += [ev(EventKind.DEPTH, Side.BUY, 50.0 + k, 1.0, uid=k + 2) for k in range(40)]
    small.apply(events(rows))
    assert small.far_capacity >= 40 and small["BTCUSDT"].depth() == (41, 1)
    assert small.rejected() == 0


def test_top_rows_for_many_levels(books):
    rows = snapshot([(100.0 - 0.1 * k, 1.0 + k) for k in range(60)], [(100.1 + 0.1 * k, 1.0) for k in range(3)])
    tops = list(books.apply_top(events(rows), levels=50))
    top = tops[-1]
    assert top.meta[-1, 5] == 50 and top.meta[-1, 6] == 3
    assert list(top.bid_px[-1, :3]) == [1000, 999, 998]
    assert list(top.ask_qty[-1, :4]) == [1000, 1000, 1000, 0]


@pytest.mark.parametrize("size, units, text", [(0.1, 618002, "61800.2"), (0.001, 14, "0.014"), (0.5, 3, "1.5"),
                                               (1.0, 42, "42"), (0.01, 5, "0.05"), (0.25, 7, "1.75")])
def test_decimal_step_formats_exactly(size, units, text):
    step = DecimalStep.of(size)
    assert step.format(units) == text
    assert list(step.format_array(np.array([units]))) == [text]
