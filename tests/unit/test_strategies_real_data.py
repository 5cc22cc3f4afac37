"""The built-in strategies over the shipped real day (BTCUSDT, Binance USD-M), through the platform's
own book, risk, OMS and exchange kernels."""

from pathlib import Path

import numpy as np
import pytest

from hftshm.backtest import run_backtest
from hftshm.backtest.data import load_events
from hftshm.codes import Action, Side
from hftshm.strategies.builtin.market_maker import MarketMaker
from hftshm.strategies.builtin.mean_reversion import MeanReversion
from hftshm.symbols import DEFAULT_SYMBOLS

DATA = Path(__file__).resolve().parents[2] / "data" / "btcusdt_20240808.csv.gz"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def events():
    if not DATA.is_file():
        pytest.fail(f"the shipped real day {DATA} is missing (hftshm data import creates it)")
    return np.asarray(load_events(DATA, DEFAULT_SYMBOLS)[0])


class RecordingMarketMaker(MarketMaker):
    """The built-in market maker, recording every quote it sends with the book it saw."""

    def initialize(self, params):
        super().initialize(params)
        self.quotes = []  # (mid, position before, side, price)
        self.positions = []

    def on_book(self, snapshot):
        before = int(self.intent_count[0])
        position = self.position
        super().on_book(snapshot)
        for intent in self.intents[before: int(self.intent_count[0])]:
            if intent["action"] == Action.NEW:
                self.quotes.append((float(snapshot["mid"]), position, int(intent["side"]), float(intent["price"])))

    def on_execution_report(self, report):
        self.positions.append(self.position)
        super().on_execution_report(report)


class RecordingMeanReversion(MeanReversion):
    """The built-in (compiled callbacks), recording each decision with the z it was taken at."""

    ACTIONS = {1: "enter_long", 2: "enter_short", 3: "exit"}

    def on_book(self, snapshot):
        self.decisions = getattr(self, "decisions", [])
        before = int(self.state["decisions"])
        super().on_book(snapshot)
        if int(self.state["decisions"]) > before:
            self.decisions.append((self.now_ns, self.z, self.ACTIONS[int(self.state["last_action"])]))

    def on_execution_report(self, report):
        self.positions = getattr(self, "positions", [])
        self.positions.append(self.position)


def test_market_maker_quotes_straddle_the_mid_and_respect_max_inventory(events):
    params = {"spread_bps": 2.0, "quantity": 0.02, "max_inventory": 0.06, "skew_bps": 1.0}
    result = run_backtest(None, events, "tests.unit.test_strategies_real_data:RecordingMarketMaker", params,
                          seed=3, engine_name="python")
    assert result.trades > 20 and result.orders_sent > 100
    strategy = result.instance
    assert strategy.quotes
    tick = 0.1
    for mid, position, side, price in strategy.quotes:
        half = mid * 1e-4  # spread_bps 2 -> 1 bp a side
        shift = mid * 1e-4 * position / 0.06  # skew_bps 1 at full inventory
        # each quote half the spread from the inventory-shifted mid, rounded away from it (the bid may
        # sit lower still when the book is tighter than the quote: a maker never crosses)
        if side == Side.BUY:
            assert price == pytest.approx(mid - shift - half, abs=tick + 1e-9) or price < mid - shift - half
        else:
            assert price == pytest.approx(mid - shift + half, abs=tick + 1e-9) or price > mid - shift + half
        if abs(position) < 0.03:  # skew below half a side's width: both quotes on their own side of the mid
            assert (price < mid) if side == Side.BUY else (price > mid)
    assert max(abs(p) for p in strategy.positions) <= 0.06 + 1e-9
    assert abs(result.position) <= 0.06 + 1e-9


def test_compiled_market_maker_matches_the_python_path_on_the_real_day(events):
    part = events[:150_000]
    python = run_backtest(None, part, "market_maker", {}, seed=5, engine_name="python")
    compiled = run_backtest(None, part, "market_maker", {}, seed=5, engine_name="compiled")
    assert len(python.fills) > 0
    assert np.array_equal(python.fills, compiled.fills)
    assert abs(compiled.position) <= 0.1 + 1e-9


def test_mean_reversion_trades_only_past_its_thresholds(events):
    params = {"window": 30, "entry_z": 2.0, "exit_z": 0.5, "quantity": 0.01, "max_position": 0.03}
    result = run_backtest(None, events, "tests.unit.test_strategies_real_data:RecordingMeanReversion", params,
                          seed=1)
    strategy = result.instance
    assert len(strategy.decisions) >= 4 and result.trades >= 4
    for _, z, action in strategy.decisions:
        if action == "enter_long":
            assert z <= -2.0
        elif action == "enter_short":
            assert z >= 2.0
        else:
            assert abs(z) <= 0.5
    assert max(abs(p) for p in strategy.positions) <= 0.03 + 1e-9


def test_vwap_completes_within_the_horizon_and_reports_slippage(events):
    params = {"side": "buy", "target_qty": 2.0, "horizon_s": 300, "participation": 0.01, "max_slice": 0.05}
    result = run_backtest(None, events, "vwap", params, seed=1)
    s = result.strategy_summary
    assert s["completed"] and s["filled_qty"] == pytest.approx(2.0)
    assert 0 < s["elapsed_s"] <= 300
    assert s["elapsed_s"] > 20  # it followed the market's volume rather than buying at once
    assert s["market_vwap"] > 0 and s["avg_fill_price"] > 0
    expected = (s["avg_fill_price"] - s["market_vwap"]) / s["market_vwap"] * 1e4
    assert s["slippage_bps"] == pytest.approx(expected)
    assert s["participation_realized"] <= 0.01 * 1.5
    assert result.position == pytest.approx(2.0)


def test_same_seed_same_fills_on_the_real_day(events):
    part = events[:200_000]
    first = run_backtest(None, part, "market_maker", {}, seed=9)
    second = run_backtest(None, part, "market_maker", {}, seed=9)
    assert len(first.fills) > 0 and np.array_equal(first.fills, second.fills)
    assert first.net_pnl == second.net_pnl
