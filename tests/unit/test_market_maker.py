"""The market maker's kernel: quotes around the mid at the spread, inventory skew and limit, requotes."""

import numpy as np
import pytest

from hftshm.codes import Action, ReportEvent, Side, TimeInForce
from hftshm.strategies.builtin import market_maker_nb as nb
from hftshm.strategies.builtin.market_maker import MarketMaker
from hftshm.strategies.base import resolve_params
from hftshm.strategies import StrategyError
from hftshm.symbols import DEFAULT_SYMBOLS
from tests.unit.strategy_fixtures import T0, report, snapshot

BTC = DEFAULT_SYMBOLS.by_name("BTCUSDT")


def maker(**params):
    mm = MarketMaker()
    mm.bind("mm", 1, BTC)
    mm.initialize(resolve_params("mm", MarketMaker.PARAMS, params))
    return mm


def book(mm, bid, ask, ts=T0):
    mm.now_ns = ts
    mm.best_bid, mm.best_ask = bid, ask
    mm.on_book(snapshot(bid, ask, ts)[0])
    return mm.take_intents().copy()


def test_quotes_straddle_the_mid_at_the_configured_spread():
    mm = maker(spread_bps=4.0, quantity=0.01)
    intents = book(mm, 60000.0, 60000.1)
    assert list(intents["action"]) == [Action.NEW, Action.NEW]
    bid, ask = intents[intents["side"] == Side.BUY][0], intents[intents["side"] == Side.SELL][0]
    mid = 60000.05
    assert bid["price"] < mid < ask["price"]
    # each side half the spread from the mid, rounded outward to the 0.1 tick
    assert mid - bid["price"] == pytest.approx(mid * 2e-4, abs=0.1)
    assert ask["price"] - mid == pytest.approx(mid * 2e-4, abs=0.1)
    assert round(bid["price"] * 10) == pytest.approx(bid["price"] * 10)
    assert bid["qty"] == ask["qty"] == 0.01
    assert bid["tif"] == TimeInForce.POST_ONLY


def test_inventory_skews_quotes_down_when_long():
    flat = nb.quote_prices(2.0, 1.0, 0.1, 0.0, 60000.0, 60000.1, 0.1)
    long = nb.quote_prices(2.0, 1.0, 0.1, 0.1, 60000.0, 60000.1, 0.1)
    assert long[0] < flat[0] and long[1] < flat[1]
    assert flat[1] - long[1] == pytest.approx(60000.05 * 1e-4, abs=0.11)


def test_never_quotes_through_the_opposite_best():
    bid, ask = nb.quote_prices(0.01, 50.0, 0.1, -0.1, 60000.0, 60000.1, 0.1)  # short: skewed up hard
    assert bid <= 60000.0 and ask >= 60000.1


def test_respects_max_inventory_counting_open_orders():
    mm = maker(quantity=0.04, max_inventory=0.1)
    intents = book(mm, 60000.0, 60000.1)
    buy = int(intents[intents["side"] == Side.BUY][0]["client_order_id"])
    # fill the bid twice over (0.08 long): only 0.02 of buy room is left
    mm.portfolio.apply_report(report(ReportEvent.FILL, buy, price=60000.0, qty=0.04)[0])
    mm.portfolio.apply_report(report(ReportEvent.FILL, 999, price=60000.0, qty=0.04)[0])
    intents = book(mm, 60010.0, 60010.1, T0 + 10**9)
    new_buys = intents[(intents["side"] == Side.BUY) & (intents["action"] == Action.NEW)]
    assert len(new_buys) == 1 and new_buys[0]["qty"] == pytest.approx(0.02)
    worst_long = mm.position + mm.portfolio.open_qty(Side.BUY)
    assert worst_long <= 0.1 + 1e-12
    # at the limit: no bid at all, whatever the book does
    mm.portfolio.apply_report(report(ReportEvent.FILL, int(new_buys[0]["client_order_id"]), price=60010.0, qty=0.02)[0])
    intents = book(mm, 59990.0, 59990.1, T0 + 2 * 10**9)
    assert not np.any((intents["side"] == Side.BUY) & (intents["action"] == Action.NEW))
    assert mm.position == pytest.approx(0.1)


def test_requotes_on_moves_but_not_faster_than_the_minimum_interval():
    mm = maker(requote_ticks=2, min_requote_interval_ms=100.0)
    book(mm, 60000.0, 60000.1)
    # 50 ms later the book moved 10 dollars: too soon to requote
    assert len(book(mm, 60010.0, 60010.1, T0 + 50_000_000)) == 0
    moved = book(mm, 60010.0, 60010.1, T0 + 150_000_000)
    assert sorted(moved["action"]) == [Action.NEW, Action.NEW, Action.CANCEL, Action.CANCEL]
    # a 1-tick wobble is below requote_ticks: nothing
    assert len(book(mm, 60010.1, 60010.2, T0 + 400_000_000)) == 0


def test_stale_quotes_are_cancelled_and_replaced():
    mm = maker(quote_ttl_ms=1000.0)
    book(mm, 60000.0, 60000.1)
    intents = book(mm, 60000.0, 60000.1, T0 + 1_500_000_000)
    assert sorted(intents["action"]) == [Action.NEW, Action.NEW, Action.CANCEL, Action.CANCEL]


def test_bad_parameter_combinations_are_refused():
    mm = MarketMaker()
    mm.bind("mm", 1, BTC)
    with pytest.raises(ValueError, match="max_inventory"):
        mm.initialize(resolve_params("mm", MarketMaker.PARAMS, {"quantity": 1.0, "max_inventory": 0.5}))
    with pytest.raises(StrategyError, match="spread_bps"):
        resolve_params("mm", MarketMaker.PARAMS, {"spread_bps": 0})
