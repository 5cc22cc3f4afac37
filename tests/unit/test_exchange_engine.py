"""MatchingEngine on order records: every reject reason, bad input never crashes, books per symbol,
output buffer growth, book_top."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftshm.codes import Action, OrderType, Reason, ReportEvent, Side, TimeInForce
from hftshm.exchange.config import ExchangeConfig
from hftshm.exchange.engine import ORDER_DTYPE, MatchingEngine
from hftshm.symbols import Symbol, SymbolTable

SYMBOLS = SymbolTable([Symbol("BTCUSDT", 1, 0.1, 0.001), Symbol("ETHUSDT", 2, 0.01, 0.01)])


def order(order_id, side=Side.BUY, price=100.0, qty=1.0, *, action=Action.NEW, owner=1, symbol_id=1,
          order_type=OrderType.LIMIT, tif=TimeInForce.GTC, target=0):
    rec = np.zeros(1, dtype=ORDER_DTYPE)
    rec["order_id"], rec["target_order_id"], rec["action"], rec["side"] = order_id, target, action, side
    rec["order_type"], rec["tif"], rec["price"], rec["qty"] = order_type, tif, price, qty
    rec["owner"], rec["symbol_id"], rec["client_order_id"], rec["ts_ns"] = owner, symbol_id, order_id * 10, 7
    return rec


def run(engine, *records):
    return engine.process(np.concatenate(records)).copy()


def events(reports):
    return [(int(r["order_id"]), ReportEvent(int(r["event"])).name, Reason(int(r["reason"])).name) for r in reports]


@pytest.fixture
def engine():
    return MatchingEngine(ExchangeConfig(book_capacity=4), SYMBOLS)


@pytest.mark.parametrize("record, reason", [
    (order(1, symbol_id=9), Reason.UNKNOWN_SYMBOL),
    (order(1, price=math.nan), Reason.BAD_PRICE),
    (order(1, price=-5.0), Reason.BAD_PRICE),
    (order(1, price=0.0), Reason.BAD_PRICE),
    (order(1, price=math.inf), Reason.BAD_PRICE),
    (order(1, price=1e300), Reason.BAD_PRICE),
    (order(1, price=100.05), Reason.BAD_PRICE),
    (order(1, qty=math.nan), Reason.BAD_QTY),
    (order(1, qty=0.0), Reason.BAD_QTY),
    (order(1, qty=-1.0), Reason.BAD_QTY),
    (order(1, qty=1e300), Reason.BAD_QTY),
    (order(1, qty=0.0001), Reason.BAD_QTY),
    (order(0), Reason.UNKNOWN_ORDER),
    (order(-3), Reason.UNKNOWN_ORDER),
    (order(1, side=7), Reason.MALFORMED_ORDER),
    (order(1, order_type=9), Reason.MALFORMED_ORDER),
    (order(1, tif=0), Reason.MALFORMED_ORDER),
    (order(1, action=200), Reason.MALFORMED_ORDER),
    (order(5, action=Action.CANCEL), Reason.UNKNOWN_ORDER),
    (order(5, action=Action.REPLACE), Reason.UNKNOWN_ORDER),
])
def test_bad_orders_are_rejected_with_their_reason(engine, record, reason):
    reports = run(engine, record)
    assert len(reports) == 1
    assert reports[0]["event"] == ReportEvent.REJECT and reports[0]["reason"] == reason
    assert reports[0]["leaves_qty"] == 0
    assert engine.stats["rejects"] == 1


def test_post_only_fok_book_full_and_duplicate_rejects(engine):
    run(engine, order(1, Side.SELL, 101.0, 1.0), order(2, Side.BUY, 100.0, 1.0))
    reports = run(engine, order(3, Side.BUY, 101.0, 0.1, tif=TimeInForce.POST_ONLY, owner=2),
                  order(4, Side.BUY, 101.0, 2.0, tif=TimeInForce.FOK, owner=2),
                  order(2, Side.BUY, 99.0, 1.0))
    assert events(reports) == [(3, "REJECT", "POST_ONLY_WOULD_CROSS"), (4, "REJECT", "FOK_CANNOT_FILL"),
                               (2, "REJECT", "DUPLICATE_ORDER_ID")]
    run(engine, order(5, Side.BUY, 99.0), order(6, Side.BUY, 98.0))
    assert engine.resting_orders(1) == 4
    full = run(engine, order(7, Side.BUY, 97.0), order(8, Side.BUY, 97.0, tif=TimeInForce.IOC))
    assert events(full) == [(7, "REJECT", "BOOK_FULL"), (8, "ACK", "NONE"), (8, "CANCEL", "IOC_REMAINDER")]
    # the other symbol's book has its own capacity
    assert events(run(engine, order(9, symbol_id=2, price=10.01, qty=0.5))) == [(9, "ACK", "NONE")]


def test_replace_rejects_leave_the_order_as_it_was(engine):
    run(engine, order(1, Side.BUY, 100.0, 1.0))
    for price, qty, reason in ((math.nan, 1.0, "BAD_PRICE"), (100.0, 0.0, "BAD_QTY"), (100.0, -2.0, "BAD_QTY")):
        rec = order(1, price=price, qty=qty, action=Action.REPLACE, target=1)
        assert events(run(engine, rec)) == [(1, "REJECT", reason)]
    assert engine.open_order(1)["leaves_qty"] == 1.0 and engine.open_order(1)["price"] == 100.0


def test_self_trade_prevention_cancels_the_resting_order_and_matching_continues(engine):
    run(engine, order(1, Side.SELL, 100.0, 1.0, owner=5), order(2, Side.SELL, 100.0, 1.0, owner=6))
    reports = run(engine, order(3, Side.BUY, 100.0, 0.5, owner=5))
    assert events(reports) == [(3, "ACK", "NONE"), (1, "CANCEL", "STP"), (3, "FILL", "NONE"), (2, "PARTIAL", "NONE")]
    assert reports[1]["qty"] == 1.0 and reports[1]["leaves_qty"] == 0
    assert reports[2]["contra_order_id"] == 2 and reports[3]["contra_order_id"] == 3


def test_report_fields_and_fees():
    engine = MatchingEngine(ExchangeConfig(maker_fee_bps=2.0, taker_fee_bps=5.0), SYMBOLS)
    run(engine, order(1, Side.SELL, 100.0, 2.0))
    taker, maker = run(engine, order(2, Side.BUY, 100.5, 0.5, owner=2))[1:]
    assert (taker["price"], taker["qty"], taker["leaves_qty"], taker["cum_qty"]) == (100.0, 0.5, 0.0, 0.5)
    assert (maker["price"], maker["qty"], maker["leaves_qty"], maker["cum_qty"]) == (100.0, 0.5, 1.5, 0.5)
    assert taker["fee"] == pytest.approx(100.0 * 0.5 * 5e-4) and maker["fee"] == pytest.approx(100.0 * 0.5 * 2e-4)
    assert taker["client_order_id"] == 20 and maker["client_order_id"] == 10
    assert taker["side"] == Side.BUY and maker["side"] == Side.SELL and taker["symbol_id"] == 1
    assert taker["seq"] + 1 == maker["seq"] and taker["exch_ts_ns"] == 7


def test_book_top_levels_best_first(engine):
    run(engine, order(1, Side.BUY, 100.0, 1.0), order(2, Side.BUY, 100.0, 0.5), order(3, Side.BUY, 99.9, 2.0),
        order(4, Side.SELL, 100.2, 0.3))
    bids, asks = engine.book_top(1, 5)
    assert bids.tolist() == [(100.0, 1.5, 2), (99.9, 2.0, 1)]
    assert asks.tolist() == [(100.2, 0.3, 1)]
    with pytest.raises(KeyError, match="unknown symbol id 9"):
        engine.book_top(9)


def test_output_buffer_grows_for_a_sweep_bigger_than_it():
    engine = MatchingEngine(ExchangeConfig(book_capacity=5000), SYMBOLS, output_capacity=16)
    makers = np.concatenate([order(k, Side.SELL, 100.0 + 0.1 * (k % 50), 0.001, owner=2) for k in range(1, 3001)])
    assert len(engine.process(makers)) == 3000
    sweep = engine.process(order(5000, Side.BUY, qty=100.0, order_type=OrderType.MARKET, price=math.nan))
    assert len(sweep) == 1 + 2 * 3000 + 1
    assert sweep[-1]["event"] == ReportEvent.CANCEL and sweep[-1]["qty"] == pytest.approx(97.0)
    assert engine.resting_orders(1) == 0


def test_cancelled_slots_are_reused_without_limit():
    engine = MatchingEngine(ExchangeConfig(book_capacity=2), SYMBOLS)
    for k in range(1, 200):
        assert events(run(engine, order(k, Side.BUY, 100.0))) == [(k, "ACK", "NONE")]
        assert events(run(engine, order(k, action=Action.CANCEL, target=k))) == [(k, "CANCEL", "USER_CANCEL")]
    assert engine.resting_orders(1) == 0 and engine.stats["cancels"] == 199


def test_wrong_dtype_is_a_type_error(engine):
    with pytest.raises(TypeError, match="'order' layout"):
        engine.process(np.zeros(3))
