"""The backtest takes its symbol table from the data's instruments: spot, USD-M and COIN-M recordings
trade with the default config (no [symbols] entry for ETHUSDT or ETHUSD_PERP), and a config that
contradicts the data's instrument is a clear error."""

from __future__ import annotations

from pathlib import Path

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


@pytest.mark.parametrize("market, params", [
    ("spot", {}),  # the default market maker's 0.01 is a valid ETH quantity
    ("usdm", {}),
    ("coinm", {"quantity": 1, "max_inventory": 10}),  # COIN-M quantities are whole 10 USD contracts
])
def test_each_market_kind_trades_with_the_default_config(recordings, market, params):
    raw = read_toml(CONFIG)
    assert "ETHUSDT" not in raw["symbols"] and "ETHUSD_PERP" not in raw["symbols"]
    result = run_backtest(CONFIG, recordings[market], "market_maker", params)
    assert result.trades > 0 and result.orders_sent > result.trades
    assert result.rows > 400_000


def test_default_order_size_on_a_contract_market_is_refused_clearly(recordings):
    from hftshm.strategies.base import StrategyError

    with pytest.raises(StrategyError, match="lot size"):
        run_backtest(CONFIG, recordings["coinm"], "market_maker")


def test_config_contradicting_the_data_is_an_error(recordings):
    raw = read_toml(CONFIG)
    raw["symbols"]["ETHUSDT"] = {"id": 7, "tick_size": 0.1, "lot_size": 0.001}  # futures' grid, not spot's
    with pytest.raises(BacktestDataError, match=r"\[symbols.ETHUSDT\] tick_size = 0.1 disagrees"):
        run_backtest(raw, recordings["spot"], "market_maker")
    raw["symbols"]["ETHUSDT"] = {"id": 7, "tick_size": 0.01, "lot_size": 0.00001, "market": "linear"}
    with pytest.raises(BacktestDataError, match="market = 'linear' disagrees"):
        run_backtest(raw, recordings["spot"], "market_maker")
