"""The backtest driver, report and sweep, on synthetic data through the simple test venue."""

import json
import math

import numpy as np
import pytest

from hftshm.backtest import run_backtest
from hftshm.backtest.report import max_drawdown, sharpe_ratio
from hftshm.backtest.simple_fill import SimpleFillVenue
from hftshm.backtest.sweep import combinations, parse_sweep, rank
from hftshm.codes import Side
from hftshm.strategies import StrategyError
from tests.unit.strategy_fixtures import T0, book_events, trade_event


def wavy_market(n=600, step_ns=100_000_000):
    """A mid oscillating +-5 dollars with a trade 5 dollars through each side every message."""
    mids = 60000.0 + 5.0 * np.sin(np.arange(n) / 15.0)
    quotes = [(round(m - 0.05, 1), round(round(m - 0.05, 1) + 0.1, 1)) for m in mids]
    books = book_events(quotes, step_ns=step_ns)
    parts = [books]
    for k in range(n):
        ts = T0 + k * step_ns + step_ns // 2
        parts.append(trade_event(quotes[k][0] - 5.0, 0.5, ts, Side.SELL))
        parts.append(trade_event(quotes[k][1] + 5.0, 0.5, ts, Side.BUY))
    events = np.concatenate(parts)
    events = events[np.argsort(events["exch_ts_ns"], kind="stable")]
    events["seq"] = np.arange(len(events))
    return events


def test_market_maker_backtest_produces_the_reported_figures():
    events = wavy_market()
    result = run_backtest({}, events, "market_maker", {"spread_bps": 1.0, "quantity": 0.01}, seed=3,
                          venue=SimpleFillVenue(latency_ns=1_000_000))
    assert result.rows == len(events) and result.trades > 0 and result.orders_sent > 0
    assert abs(result.position) <= 0.1 + 1e-9
    assert result.net_pnl == pytest.approx(result.realized_pnl + result.unrealized_pnl - result.fees)
    assert result.turnover == pytest.approx(float((result.fills["price"] * result.fills["qty"]).sum()))
    assert 0 < result.fill_ratio <= 1
    assert result.equity[-1] == pytest.approx(result.net_pnl)
    assert len(result.equity) == len(result.equity_ts_ns) >= 59  # one per second of market time, plus the end
    assert result.max_drawdown >= 0 and result.latency_model["model"] == "constant"


def test_same_seed_same_fills_and_report_files(tmp_path):
    events = wavy_market(300)
    runs = [run_backtest({}, events, "market_maker", {"spread_bps": 1.0}, seed=5, venue=SimpleFillVenue())
            for _ in range(2)]
    assert len(runs[0].fills) > 0
    assert np.array_equal(runs[0].fills, runs[1].fills)
    paths = runs[0].write(tmp_path / "out")
    report = json.loads(paths["json"].read_text())
    for key in ("realized_pnl", "unrealized_pnl", "fees", "net_pnl", "sharpe", "max_drawdown", "trades",
                "fill_ratio", "turnover", "latency_model", "equity_curve", "definitions"):
        assert key in report, key
    assert len(report["equity_curve"]["equity"]) == len(runs[0].equity)
    html = paths["html"].read_text()
    assert "<svg" in html and "<polyline" in html and "<script" not in html
    assert paths["fills"].read_text().count("\n") == len(runs[0].fills) + 1


def test_user_strategy_by_module_path_runs_in_a_backtest():
    result = run_backtest({}, wavy_market(50), "tests.unit.strategy_fixtures:BuyOnce", {"qty": 0.002},
                          venue=SimpleFillVenue())
    assert result.strategy == "BuyOnce" and result.orders_sent == 1


def test_a_strategy_that_raises_fails_the_backtest_with_its_name():
    with pytest.raises(StrategyError, match="Raiser.*boom"):
        run_backtest({}, wavy_market(20), "tests.unit.strategy_fixtures:Raiser", {}, venue=SimpleFillVenue())


def test_metrics_definitions():
    flat = np.zeros(10)
    assert math.isnan(sharpe_ratio(flat, 1.0))
    rising = np.arange(10.0) + np.array([0, 0.1] * 5)
    assert sharpe_ratio(rising, 1.0) > 0 > sharpe_ratio(-rising, 1.0)
    assert max_drawdown(np.array([0.0, 5.0, 2.0, 7.0, 1.0, 3.0])) == 6.0


def test_sweep_grid_parsing_and_ranking():
    grid = parse_sweep(["spread_bps=1,2", "quantity=0.01,0.02,0.03"])
    assert len(combinations(grid)) == 6 and combinations(grid)[0] == {"spread_bps": "1", "quantity": "0.01"}
    with pytest.raises(ValueError, match="key=v1,v2"):
        parse_sweep(["spread_bps"])
    rows = [{"params": {}, "net_pnl": 1.0}, {"params": {}, "error": "x"}, {"params": {}, "net_pnl": 3.0},
            {"params": {}, "net_pnl": float("nan")}]
    assert [r.get("net_pnl") for r in rank(rows, "net_pnl")][:2] == [3.0, 1.0]
    assert "error" in rank(rows, "net_pnl")[-2] or "error" in rank(rows, "net_pnl")[-1]


def test_compiled_loop_matches_the_python_loop_fill_for_fill():
    events = wavy_market(400)
    params = {"spread_bps": 1.0, "quantity": 0.01, "min_requote_interval_ms": 50.0}
    runs = {engine: run_backtest({}, events, "market_maker", params, seed=11, engine_name=engine)
            for engine in ("python", "compiled")}
    python, compiled = runs["python"], runs["compiled"]
    assert python.engine == "python" and compiled.engine == "compiled"
    assert len(python.fills) > 5
    assert np.array_equal(python.fills, compiled.fills)
    assert (python.orders_sent, python.cancels, python.rejects) == (compiled.orders_sent, compiled.cancels,
                                                                    compiled.rejects)
    assert python.net_pnl == pytest.approx(compiled.net_pnl, abs=1e-9)
    assert np.allclose(python.equity, compiled.equity)


def test_compiled_engine_refuses_a_python_strategy():
    with pytest.raises(StrategyError, match="not a compiled strategy"):
        run_backtest({}, wavy_market(20), "tests.unit.strategy_fixtures:BuyOnce", {"qty": 0.002},
                     engine_name="compiled")
