"""A replay of one symbol the strategies are not configured for: ``hftshm run`` moves them onto it,
as ``hftshm backtest`` does, instead of idling through a run that reports success."""

from __future__ import annotations

from pathlib import Path

import pytest

from hftshm.config import read_toml
from hftshm.feed.binance import import_files
from hftshm.platform import PlatformConfig
from hftshm.strategies.config import StrategiesConfig

ROOT = Path(__file__).resolve().parents[2]
HEADS = ROOT / "tests" / "data"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    files = {}
    for market, name in (("coinm", "binance_coinm_ethusd_perp_20240808_head.gz"),
                         ("spot", "binance_spot_ethusdt_20240808_head.gz")):
        files[market] = out / f"{market}.csv.gz"
        import_files([HEADS / name], files[market])
    return files


def _config(data: list[Path]) -> PlatformConfig:
    raw = read_toml(ROOT / "config" / "platform.toml")
    raw["feed"]["data"] = [str(p) for p in data]
    return PlatformConfig.from_raw(raw)


def test_a_contract_market_takes_the_strategy_with_its_contract_sizes(imported):
    shipped = read_toml(ROOT / "config" / "platform.toml")["strategies"]["market_maker"]
    assert shipped.get("symbol", "BTCUSDT") == "BTCUSDT" and "quantity" in shipped  # coin sizes
    config = _config([imported["coinm"]])
    body = config.raw["strategies"]["market_maker"]
    assert body["symbol"] == "ETHUSD_PERP" and "quantity" not in body  # 0.01 BTC means nothing there
    instance = StrategiesConfig.from_raw(config.raw["strategies"], config.symbols).instance("market_maker")
    assert instance.symbol == "ETHUSD_PERP" and instance.params["quantity"] == 1.0  # one contract


def test_a_market_of_the_same_unit_keeps_the_configured_sizes(imported):
    config = _config([imported["spot"]])
    body = config.raw["strategies"]["market_maker"]
    shipped = read_toml(ROOT / "config" / "platform.toml")["strategies"]["market_maker"]
    assert body["symbol"] == "ETHUSDT" and body["quantity"] == shipped["quantity"]


def test_several_symbols_keep_each_strategy_on_its_configured_symbol(imported):
    config = _config([imported["spot"], imported["coinm"]])
    assert config.raw["strategies"]["market_maker"].get("symbol", "BTCUSDT") == "BTCUSDT"


def test_several_symbols_warn_of_a_symbol_no_strategy_trades(imported):
    """The shipped config trades BTCUSDT: a run of the spot and COIN-M files would trade neither, and
    says so for each at start (``hftshm run`` prints the notices)."""
    notices = _config([imported["spot"], imported["coinm"]]).notices
    warned = [n for n in notices if "has no enabled strategy" in n]
    assert len(warned) == 2 and any("ETHUSD_PERP" in m for m in warned) and any("ETHUSDT" in m for m in warned)
    raw = read_toml(ROOT / "config" / "platform.toml")
    raw["feed"]["data"] = [str(imported["spot"]), str(imported["coinm"])]
    raw["strategies"]["mm_eth"] = {"class": "market_maker", "symbol": "ETHUSD_PERP", "quantity": 1}
    warned = [n for n in PlatformConfig.from_raw(raw).notices if "has no enabled strategy" in n]
    assert len(warned) == 1 and "ETHUSDT" in warned[0]  # the COIN-M symbol has its strategy now


def test_the_notices_are_printed_by_run_only(imported, caplog, capsys):
    """Loading the config logs nothing (``hftshm stop`` and ``status`` load it too, with the default
    data, and used to say a strategy "trades" a symbol of a run they were not part of); a one-symbol
    replay's move is a notice ``hftshm run`` prints."""
    with caplog.at_level("DEBUG", logger="hftshm"):
        config = _config([imported["coinm"]])
    assert not [r for r in caplog.records if r.levelno >= 30]
    (moved,) = config.notices
    assert "strategy market_maker is configured for BTCUSDT" in moved and "it trades ETHUSD_PERP" in moved
