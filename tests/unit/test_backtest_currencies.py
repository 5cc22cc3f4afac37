"""A backtest of a linear (USD-M BTCUSDT, PnL in USDT) and an inverse symbol (COIN-M ETHUSD_PERP, PnL
in ETH) together: totals per settlement currency, each the sum of its symbols' figures, and no figure
that adds USDT to ETH (the top-level money figures are null, the equity curve is one per currency).
Per symbol: orders sent, fills, position, fees and PnL, each with its unit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hftshm.backtest import run_backtest
from hftshm.feed.binance import import_files
from tests.several_symbols import btc_head, floats_in

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "platform.toml"
COINM_HEAD = ROOT / "tests" / "data" / "binance_coinm_ethusd_perp_20240808_head.gz"
SPECS = ["market_maker@BTCUSDT", "market_maker@ETHUSD_PERP"]
MONEY = ("realized_pnl", "unrealized_pnl", "fees", "net_pnl", "turnover")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("linear_inverse")
    coinm = directory / "ethusd_perp.csv.gz"
    import_files([COINM_HEAD], coinm)
    return btc_head(directory / "btc.csv.gz", 15_000), coinm


@pytest.fixture(scope="module")
def runs(files):
    # the [strategies] market maker is sized in BTC; moved onto the contract market it takes the
    # contract defaults (SPEC@SYMBOL drops coin sizes there)
    return {engine: run_backtest(CONFIG, list(files), SPECS, seed=5, engine_name=engine)
            for engine in ("python", "compiled")}


@pytest.mark.parametrize("engine", ["python", "compiled"])
def test_totals_are_per_currency_and_never_added_across(runs, engine, tmp_path):
    result = runs[engine]
    assert result.engine == engine
    btc, eth = result.symbols["BTCUSDT"], result.symbols["ETHUSD_PERP"]
    assert (btc["currency"], eth["currency"]) == ("USDT", "ETH")
    assert btc["trades"] > 0 and eth["trades"] > 0, "both symbols must trade, else the totals prove nothing"
    assert set(result.currencies) == {"USDT", "ETH"}
    for currency, total in result.currencies.items():
        (symbol,) = total["symbols"]
        assert result.symbols[symbol]["currency"] == currency
        for key in MONEY:
            assert total[key] == pytest.approx(result.symbols[symbol][key], abs=1e-12), (currency, key)
        # the currency's equity curve ends at its net PnL (realized + position at mid - fees)
        assert total["equity"] == pytest.approx(total["net_pnl"], abs=1e-9)
        assert result.equity_by_currency[currency][-1] == pytest.approx(total["net_pnl"], abs=1e-9)
        assert len(result.equity_by_currency[currency]) == len(result.equity_ts_ns)
    # no USDT + ETH figure anywhere at the top
    for key in (*MONEY, "sharpe", "max_drawdown", "traded_qty"):
        assert math.isnan(getattr(result, key)), key
    assert len(result.equity) == 0 and result.units == {}
    d = json.loads(result.write(tmp_path)["json"].read_text())
    assert all(d[key] is None for key in MONEY)
    assert "equity" not in d["equity_curve"] and set(d["equity_curve"]["by_currency"]) == {"USDT", "ETH"}
    crossed = btc["net_pnl"] + eth["net_pnl"]
    numbers = list(floats_in(d))
    assert not any(v == pytest.approx(crossed, abs=1e-12) for v in numbers)
    page = (tmp_path / "report.html").read_text()
    assert "Equity (USDT)" in page and "Equity (ETH)" in page and "Net PnL (ETH)" in page
    eth_curve = page[page.index("Equity (ETH)"):]
    eth_curve = eth_curve[:eth_curve.index("</svg>")]
    assert ">0.00<" not in eth_curve and ">-0.00<" not in eth_curve  # the coin's axis in significant digits


def test_the_compiled_loop_samples_each_currency_where_the_python_loop_does(runs):
    """The compiled loop's own equity sample adds every strategy; it is stopped at each sample so the
    currencies are read apart: the curves equal the Python path's, sample by sample."""
    python, compiled = runs["python"], runs["compiled"]
    assert np.array_equal(compiled.fills, python.fills)
    assert np.array_equal(compiled.equity_ts_ns, python.equity_ts_ns)
    for currency, curve in python.equity_by_currency.items():
        assert len(curve) > 10
        np.testing.assert_allclose(compiled.equity_by_currency[currency], curve, rtol=0, atol=1e-12)


def test_each_symbol_reports_its_orders_fills_position_fees_and_pnl_with_units(runs):
    result = runs["compiled"]
    assert sum(row["orders_sent"] for row in result.symbols.values()) == result.orders_sent
    for name, row in result.symbols.items():
        assert row["orders_sent"] > 0 and row["trades"] > 0, name
    assert result.symbols["ETHUSD_PERP"]["units"] == {"qty": "contracts", "pnl": "ETH", "notional": "ETH",
                                                      "contract_usd": 10.0}
    assert result.symbols["BTCUSDT"]["units"]["qty"] == "BTC" and result.symbols["BTCUSDT"]["units"]["pnl"] == "USDT"
    assert result.symbols["ETHUSD_PERP"]["position"] == int(result.symbols["ETHUSD_PERP"]["position"])  # contracts


def test_an_instance_sized_in_coin_moved_onto_a_contract_market_takes_contract_sizes():
    """``market_maker@ETHUSD_PERP`` of the shipped [strategies] instance (0.01 BTC per quote): 0.01 is
    below one contract, so the instance failed to start before; now the contract defaults apply."""
    from hftshm.backtest.api import plan_strategies
    from hftshm.config import read_toml
    from hftshm.strategies.builtin.market_maker import MarketMaker
    from hftshm.symbols import Symbol, SymbolTable

    symbols = SymbolTable([Symbol("BTCUSDT", 1, 0.1, 0.001),
                           Symbol("ETHUSD_PERP", 2, 0.01, 1.0, market="inverse", contract_size=10.0)])
    plan = plan_strategies(read_toml(CONFIG), symbols, SPECS, None, None, ["BTCUSDT", "ETHUSD_PERP"])
    params = {sym: p for _, _, p, sym in plan}
    assert params["BTCUSDT"]["quantity"] == 0.01  # the configured coin size where it was configured
    assert "quantity" not in params["ETHUSD_PERP"]  # the class's contract default instead
    assert MarketMaker.PARAMS["quantity"].default_for("inverse") >= 1.0
    given = plan_strategies(read_toml(CONFIG), symbols, ["market_maker@ETHUSD_PERP"], {"quantity": 3.0}, None, [])
    assert given[0][2]["quantity"] == 3.0  # a size the caller gives is kept


def test_one_symbol_counts_its_orders_too(files):
    alone = run_backtest(CONFIG, files[1], "market_maker", seed=5)
    (row,) = alone.symbols.values()
    assert row["orders_sent"] == alone.orders_sent > 0
    assert list(alone.currencies) == ["ETH"] and alone.units["pnl"] == "ETH"
    assert alone.currencies["ETH"]["net_pnl"] == pytest.approx(alone.net_pnl)  # one currency: as before
    assert len(alone.equity) > 0 and not alone.equity_by_currency


def test_the_cli_prints_a_table_per_symbol_and_per_currency(files):
    from typer.testing import CliRunner

    from hftshm.cli import app

    args = ["backtest", "--data", str(files[0]), "--data", str(files[1]), "--config", str(CONFIG)]
    shown = CliRunner().invoke(app, [*args, "-s", SPECS[0], "-s", SPECS[1]], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "per settlement currency" in shown.output and "Net PnL (ETH)" in shown.output
    assert "Net PnL (USDT)" in shown.output and "Net PnL  " not in shown.output
