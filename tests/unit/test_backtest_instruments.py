"""The backtest takes its symbol table from the data's instruments: spot, USD-M and COIN-M recordings
trade with the default config (no [symbols] entry for ETHUSDT or ETHUSD_PERP; the COIN-M backtest in
contracts, its PnL and fees in ETH, checked against a hand computation), and a config that
contradicts the data's instrument is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hftshm.backtest import run_backtest
from hftshm.backtest.data import BacktestDataError
from hftshm.config import read_toml
from hftshm.feed.binance import import_files

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
CONFIG = ROOT / "config" / "platform.toml"


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    out = tmp_path_factory.mktemp("markets")
    files = {}
    for name, stem in (("spot", "binance_spot_ethusdt"), ("coinm", "binance_coinm_ethusd_perp")):
        files[name] = out / f"{name}.csv.gz"
        import_files([DATA / f"{stem}_20240808.gz", DATA / f"{stem}_20240809.gz"], files[name])
    files["usdm"] = DATA / "btcusdt_20240808.csv.gz"
    return files


@pytest.mark.parametrize("market", ["spot", "usdm", "coinm"])
def test_each_market_kind_trades_with_the_default_config(recordings, market):
    raw = read_toml(CONFIG)
    assert "ETHUSDT" not in raw["symbols"] and "ETHUSD_PERP" not in raw["symbols"]
    result = run_backtest(CONFIG, recordings[market], "market_maker")
    assert result.trades > 0 and result.orders_sent > result.trades
    assert result.rows > 400_000
    expected = {"spot": ("ETHUSDT", "spot", "ETH", "USDT"), "usdm": ("BTCUSDT", "linear", "BTC", "USDT"),
                "coinm": ("ETHUSD_PERP", "inverse", "contracts", "ETH")}[market]
    assert (result.symbol, result.market, result.units["qty"], result.units["pnl"]) == expected
    if market == "coinm":
        # the instance's BTC sizes do not carry to a contract market: its contract defaults apply
        assert (result.params["quantity"], result.params["max_inventory"]) == (1.0, 5.0)
        # within the shipped risk limit (5 contracts a symbol): risk holds nothing back for max_position
        assert result.params["max_inventory"] <= read_toml(CONFIG)["risk"]["max_position_per_symbol"]
        assert result.reject_reasons.get("max_position", 0) == 0, result.reject_reasons
        assert set(result.fills["qty"]) <= {1.0}


def test_coin_sizes_on_a_contract_market_are_refused_clearly(recordings):
    from hftshm.strategies.base import StrategyError

    with pytest.raises(StrategyError, match="lot size"):
        run_backtest(CONFIG, recordings["coinm"], "market_maker", {"quantity": 0.01, "max_inventory": 0.1})


def test_inverse_backtest_pnl_and_fees_are_in_the_coin_as_computed_by_hand(recordings, tmp_path):
    """Every fill of the COIN-M backtest, valued by hand: a contract bought at p and marked at M gains
    contract_size x (1/p - 1/M) ETH (sold: the opposite); the sum over fills is realized + unrealized
    whatever the averaging; each fee is its notional in ETH (contracts x 10 / price) times the fee rate."""
    result = run_backtest(CONFIG, recordings["coinm"], "market_maker", {"max_inventory": 3})
    fills = result.fills
    assert len(fills) > 10
    mid = result.instance.portfolio.mid
    sign = (fills["side"] == 1) * 2.0 - 1.0
    by_hand = float(np.sum(sign * fills["qty"] * 10.0 * (1.0 / fills["price"] - 1.0 / mid)))
    assert result.realized_pnl + result.unrealized_pnl == pytest.approx(by_hand, rel=1e-9, abs=1e-15)
    notional = fills["qty"] * 10.0 / fills["price"]
    rates = fills["fee"] / notional * 1e4
    assert np.all(np.isclose(rates, 2.0) | np.isclose(rates, 5.0))  # maker / taker bps of the ETH notional
    assert result.fees == pytest.approx(float(fills["fee"].sum()), rel=1e-12)
    assert result.net_pnl == pytest.approx(by_hand - float(fills["fee"].sum()), rel=1e-9, abs=1e-15)
    assert result.turnover == pytest.approx(float(notional.sum()), rel=1e-12)
    assert abs(result.position) <= 3 and result.position == float(np.sum(sign * fills["qty"]))
    # an ETH PnL is a few 1e-5 here; a linear formula applied to contracts would give tens of "USD"
    assert abs(result.net_pnl) < 0.01
    paths = result.write(tmp_path)
    page = paths["html"].read_text()
    assert "Net PnL (ETH)" in page and "Final position (contracts of 10 USD)" in page
    assert json.loads(paths["json"].read_text())["units"]["pnl"] == "ETH"


def test_config_contradicting_the_data_is_an_error(recordings):
    raw = read_toml(CONFIG)
    raw["symbols"]["ETHUSDT"] = {"id": 7, "tick_size": 0.1, "lot_size": 0.001}  # futures' grid, not spot's
    with pytest.raises(BacktestDataError, match=r"\[symbols.ETHUSDT\] tick_size = 0.1 disagrees"):
        run_backtest(raw, recordings["spot"], "market_maker")
    raw["symbols"]["ETHUSDT"] = {"id": 7, "tick_size": 0.01, "lot_size": 0.00001, "market": "linear"}
    with pytest.raises(BacktestDataError, match="market = 'linear' disagrees"):
        run_backtest(raw, recordings["spot"], "market_maker")


def test_a_symbol_quoted_under_a_thousand_trades_with_the_default_config(tmp_path):
    """Any symbol, not only BTC and ETH: the spot ETHUSDT head recording with every price a hundredth
    (an exact shift of the decimal point, tick 0.0001) as ABCUSDT, near 26.8 USDT. The shipped risk
    config had an absolute price floor of 1,000 USDT, which rejected every order of it."""
    import gzip

    eth = tmp_path / "eth.csv.gz"
    import_files([ROOT / "tests" / "data" / "binance_spot_ethusdt_20240808_head.gz"], eth)
    low = tmp_path / "abc.csv.gz"
    with gzip.open(eth, "rt") as src, gzip.open(low, "wt") as dst:
        dst.write(src.readline())
        for line in src:
            fields = line.rstrip("\n").split(",")
            fields[2], fields[5] = "ABCUSDT", _hundredth(fields[5])
            dst.write(",".join(fields) + "\n")
    result = run_backtest(CONFIG, low, "market_maker")
    assert result.symbol == "ABCUSDT" and result.orders_sent > 0
    assert "price_band" not in result.reject_reasons, result.reject_reasons
    assert result.trades > 0 and 20.0 < float(np.min(result.fills["price"])) < 30.0


def _hundredth(price: str) -> str:
    """``price`` / 100 as text, exactly: the decimal point two places left (8 decimals kept)."""
    whole, _, frac = price.partition(".")
    assert frac.endswith("00"), price
    whole = whole.rjust(3, "0")
    return f"{int(whole[:-2])}.{whole[-2:]}{frac[:-2]}"


@pytest.mark.parametrize("strategy", ["market_maker", "mean_reversion", "vwap"])
def test_each_built_in_strategy_on_a_contract_market_stays_within_the_shipped_risk_limits(recordings, strategy):
    """The built-ins' contract defaults fit the shipped [risk] limits (1 contract an order, 5 a symbol):
    the vwap's 100-contract target and 0.05-contract slices (rounded to nothing) sent 46,735 orders that
    risk refused, the mean reversion's 5-contract closes were refused for max_order_size."""
    result = run_backtest(CONFIG, recordings["coinm"], strategy)
    sized = {k: v for k, v in result.reject_reasons.items() if k in ("max_order_size", "max_position")}
    assert not sized, sized
    assert result.trades > 0
    if strategy == "vwap":
        assert result.strategy_summary["completed"] and result.orders_sent < 50
