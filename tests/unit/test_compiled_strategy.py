"""The compiled strategy API: declarations compiled into records, one compiled loop running several
strategies side by side, and misbehaving kernels paused and named while the others keep trading."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftshm.backtest import compiled
from hftshm.backtest.api import make_venue
from hftshm.codes import StrategyState
from hftshm.strategies import StrategyError, intents_nb
from hftshm.strategies.compiled import ERR_CALLBACK_RAISED, fault_text
from hftshm.strategies.runtime import StrategyHost
from hftshm.symbols import DEFAULT_SYMBOLS
from tests.unit.strategy_fixtures import snapshot
from tests.unit.test_backtest import wavy_market

FIX = "tests.unit.compiled_fixtures"


def test_params_and_state_become_named_records():
    host = StrategyHost(DEFAULT_SYMBOLS)
    sid = host.add("b", f"{FIX}:CompiledBuyOnce", "BTCUSDT", {"qty": 0.02, "side": "sell", "slots": 5})
    strategy = host.strategy(sid)
    assert strategy.params_array.dtype.names == ("qty", "side", "slots")
    assert strategy.params_array[0]["qty"] == 0.02 and strategy.params_array[0]["side"] == 1  # index in choices
    assert strategy.state["seen"].shape == (5,) and math.isnan(strategy.state["seen"][0])
    host.on_books(snapshot(60000.0, 60000.1))
    assert strategy.state["sent"] == 1 and strategy.state["seen"][0] == 60000.1  # the callback's writes persist
    out = host.take_outbox()
    assert len(out) == 1 and out[0]["price"] == 60000.1 and out[0]["qty"] == 0.02


def test_a_nan_price_pauses_the_strategy_on_the_python_path_with_its_name():
    host = StrategyHost(DEFAULT_SYMBOLS)
    host.add("good", f"{FIX}:CompiledBuyOnce", "BTCUSDT", {})
    host.add("nan", f"{FIX}:NanPricer", "BTCUSDT", {})
    host.on_books(snapshot(60000.0, 60000.1))
    assert host.slot("nan").state == StrategyState.FAILED
    assert host.failures == [("nan", f"StrategyError: strategy 'nan': {intents_nb.ERROR_TEXT[intents_nb.ERR_BAD_ORDER]}")]
    assert host.slot("good").state == StrategyState.RUNNING
    assert len(host.take_outbox()) == 1  # the good one's order; nothing of the failed one


@pytest.mark.parametrize("bad", ["NanPricer", "Flooder", "IndexPastTheEnd"])
def test_the_compiled_loop_pauses_a_misbehaving_strategy_and_the_others_keep_trading(bad):
    events = wavy_market(300)
    host = StrategyHost(DEFAULT_SYMBOLS)
    good = host.strategy(host.add("good", f"{FIX}:CompiledBuyOnce", "BTCUSDT", {}))
    broken = host.strategy(host.add("bad", f"{FIX}:{bad}", "BTCUSDT", {}))
    venue = make_venue({}, DEFAULT_SYMBOLS, 1)
    out, _ = compiled.run(events, [good, broken], venue, DEFAULT_SYMBOLS, 1_000_000_000)
    assert broken.compiled_fault in (intents_nb.ERR_BAD_ORDER, intents_nb.ERR_INTENTS_FULL, intents_nb.ERR_ORDERS_FULL,
                                     ERR_CALLBACK_RAISED)
    assert (broken.compiled_fault == ERR_CALLBACK_RAISED) == (bad == "IndexPastTheEnd")
    assert good.compiled_fault == 0
    assert good.portfolio.count("fills") == 1 and good.position == pytest.approx(0.01)
    assert broken.portfolio.position == 0.0
    assert broken.portfolio.count("open_orders") == 0 or bad == "Flooder"  # its orders are being cancelled
    with pytest.raises(StrategyError, match="'bad'"):
        compiled.raise_faults(host, [good, broken])
    assert host.slot("bad").state == StrategyState.FAILED
    assert np.isfinite(out.equity).all()


def test_an_index_out_of_range_pauses_the_strategy_on_the_python_path_and_overwrites_nothing():
    """numba checks no bounds by default: a user's write one past its state array would land on the
    next field. The runtime compiles callbacks with the bounds check and turns the IndexError into a
    pause of that strategy, named; the others keep trading."""
    host = StrategyHost(DEFAULT_SYMBOLS)
    host.add("good", f"{FIX}:CompiledBuyOnce", "BTCUSDT", {})
    bad = host.strategy(host.add("index", f"{FIX}:IndexPastTheEnd", "BTCUSDT", {"slots": 2}))
    host.on_books(snapshot(60000.0, 60000.1))
    assert host.slot("index").state == StrategyState.FAILED
    assert host.failures == [("index", f"StrategyError: strategy 'index': {fault_text(ERR_CALLBACK_RAISED)}")]
    assert bad.state["after"] == 7.0  # the field after the array is untouched
    assert host.slot("good").state == StrategyState.RUNNING
    out = host.take_outbox()
    assert len(out) == 1 and out[0]["strategy_id"] == host.slot("good").strategy_id  # nothing of the failed one
