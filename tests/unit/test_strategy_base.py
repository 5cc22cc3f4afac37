"""The Strategy interface: parameters, intent helpers, tick grid."""

import math

import numpy as np
import pytest

from hftshm.codes import Action, OrderType, Side, TimeInForce
from hftshm.strategies import Param, Strategy, StrategyError
from hftshm.strategies.base import resolve_params
from hftshm.symbols import DEFAULT_SYMBOLS


def bound(cls=Strategy, intent_capacity=16):
    s = cls()
    s.bind("t1", 7, DEFAULT_SYMBOLS.by_name("BTCUSDT"), intent_capacity=intent_capacity)
    s.now_ns, s.origin_ts_ns = 123, 456
    return s


def test_params_typed_from_strings_and_defaults_filled():
    declared = {"n": Param(3, min=1), "x": Param(1.5, positive=True), "on": Param(False),
                "side": Param("buy", choices=("buy", "sell"))}
    got = resolve_params("s", declared, {"n": "5", "x": "2.5", "on": "true", "side": "SELL"})
    assert got == {"n": 5, "x": 2.5, "on": True, "side": "sell"}
    assert resolve_params("s", declared, {}) == {"n": 3, "x": 1.5, "on": False, "side": "buy"}


@pytest.mark.parametrize("given, words", [
    ({"n": 0}, ["n", ">= 1"]),
    ({"x": -1.0}, ["x", "> 0"]),
    ({"x": "abc"}, ["x", "number"]),
    ({"x": float("nan")}, ["x", "finite"]),
    ({"side": "hold"}, ["side", "buy, sell"]),
    ({"spred": 1}, ["unknown parameter", "spred", "known"]),
])
def test_bad_params_name_the_strategy_and_key(given, words):
    declared = {"n": Param(3, min=1), "x": Param(1.5, positive=True), "side": Param("buy", choices=("buy", "sell"))}
    with pytest.raises(StrategyError) as err:
        resolve_params("my_mm", declared, given)
    text = str(err.value)
    assert "my_mm" in text
    for word in words:
        assert word in text


def test_helpers_write_complete_intents_and_track_open_orders():
    s = bound()
    buy = s.buy(61800.1, 0.01)
    sell = s.sell(61800.5, 0.02, TimeInForce.POST_ONLY)
    mkt = s.buy_market(0.003)
    cancel = s.cancel(buy)
    intents = s.take_intents()
    assert list(intents["action"]) == [Action.NEW, Action.NEW, Action.NEW, Action.CANCEL]
    assert list(intents["client_order_id"]) == [buy, sell, mkt, cancel]
    assert len(set(intents["client_order_id"])) == 4
    assert intents[3]["target_client_order_id"] == buy
    assert np.all(intents["strategy_id"] == 7) and np.all(intents["symbol_id"] == 1)
    assert np.all(intents["market_ts_ns"] == 123) and np.all(intents["origin_ts_ns"] == 456)
    assert intents[1]["side"] == Side.SELL and intents[1]["tif"] == TimeInForce.POST_ONLY
    assert intents[2]["order_type"] == OrderType.MARKET and math.isnan(intents[2]["price"])
    assert len(s.open_orders()) == 3 and s.take_intents().size == 0
    assert s.cancel(buy) == 0  # already being cancelled


def test_tick_and_lot_rounding_never_more_aggressive():
    s = bound()
    assert s.round_bid(61800.17) == 61800.1
    assert s.round_ask(61800.11) == 61800.2
    assert s.round_bid(61800.3) == 61800.3  # already on the grid: unchanged, and the exact decimal double
    assert repr(s.round_ask(618003 * 0.1)) == "61800.3"
    assert s.round_qty(0.0129) == 0.012


def test_intent_buffer_overflow_is_a_named_error_and_discard_forgets_orders():
    s = bound(intent_capacity=2)
    s.buy(100.0, 1.0)
    s.buy(100.0, 1.0)
    with pytest.raises(StrategyError, match="t1.*intent buffer full"):
        s.buy(100.0, 1.0)
    assert s.discard_intents() == 2
    assert s.open_orders() == [] and s.portfolio.count("intents") == 0
    with pytest.raises(StrategyError, match="quantity > 0"):
        s.sell(100.0, -1.0)
