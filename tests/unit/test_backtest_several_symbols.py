"""Several symbols in one backtest: files of two markets merged by exchange time exactly as the feed
merges them, one strategy instance per symbol, figures per symbol, and each symbol's result equal to
that symbol backtested alone when nothing couples them (constant latencies: the latency draws are
numbered per order across all symbols, so with random latencies the k-th order of the merged run
draws another latency than in the run alone). Sweeps take a file's own instruments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hftshm.backtest import run_backtest
from hftshm.backtest.api import load_data, plan_strategies
from hftshm.backtest.sweep import run_sweep
from hftshm.codes import EventFlag
from hftshm.config import read_toml
from hftshm.feed.replay import Replayer
from hftshm.platform import merge
from hftshm.symbols import DEFAULT_SYMBOLS
from tests.several_symbols import two_symbols

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "platform.toml"
CONSTANT_LATENCY = {"exchange": {"entry_latency": {"model": "constant", "constant_us": 200.0},
                                 "response_latency": {"model": "constant", "constant_us": 150.0}}}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return two_symbols(tmp_path_factory.mktemp("two_symbols"), btc_rows=15_000)


def test_the_merge_is_the_feeds_order_message_by_message(files):
    loaded = load_data(CONFIG, list(files))
    assert {loaded.symbols.by_name(s).market for s in ("BTCUSDT", "ETHUSDT")} == {"linear", "spot"}
    replayer = Replayer.from_files(list(files), loaded.symbols, speed=0.0, batch_events=1024)
    staged = []
    while not replayer.done:
        n = replayer.step()
        staged.append(replayer._staged[:n].copy())
    feed = np.concatenate(staged)
    merged = loaded.events
    assert len(merged) == len(feed) == sum(len(load_data(CONFIG, f).events) for f in files)
    for column in ("symbol_id", "exch_ts_ns", "kind", "price", "qty", "update_id"):
        assert np.array_equal(merged[column], feed[column]), column
    end = np.uint32(EventFlag.END_OF_DATA)  # the feed marks its last record; the backtest needs no marker
    assert np.array_equal(merged["flags"], feed["flags"] & ~end)
    ids = merged["symbol_id"]
    assert len(np.unique(ids)) == 2 and (np.diff(ids) != 0).sum() > 100  # really interleaved
    assert np.array_equal(merged["seq"], np.arange(len(merged)))


def test_a_strategy_without_a_symbol_runs_once_on_each_symbol_of_the_data():
    raw = read_toml(CONFIG)
    plan = plan_strategies(raw, DEFAULT_SYMBOLS, "mean_reversion", {}, None, ["BTCUSDT", "ETHUSDT"])
    assert [(name, sym) for name, _, _, sym in plan] == [("mean_reversion", "BTCUSDT")]  # a [strategies] instance
    plan = plan_strategies(raw, DEFAULT_SYMBOLS, "hftshm.strategies.builtin.market_maker:MarketMaker", {}, None,
                           ["BTCUSDT", "ETHUSDT"])
    assert [(name, sym) for name, _, _, sym in plan] == [("MarketMaker-BTCUSDT", "BTCUSDT"),
                                                         ("MarketMaker-ETHUSDT", "ETHUSDT")]
    plan = plan_strategies(raw, DEFAULT_SYMBOLS, ["market_maker@BTCUSDT", "market_maker@ETHUSDT"], {"quantity": 0.02},
                           None, ["BTCUSDT", "ETHUSDT"])
    assert [(name, sym, params["quantity"]) for name, _, params, sym in plan] == [
        ("market_maker-BTCUSDT", "BTCUSDT", 0.02), ("market_maker-ETHUSDT", "ETHUSDT", 0.02)]


FAST_MEAN_REVERSION = {"window": 10, "sample_interval_ms": 100.0, "entry_z": 1.0, "exit_z": 0.2,
                       "cooldown_ms": 200.0}


def test_two_symbols_trade_and_add_up(files, tmp_path):
    both = run_backtest(CONFIG, list(files), ["market_maker@BTCUSDT", "market_maker@ETHUSDT"], seed=3,
                        engine_name="python")
    assert set(both.symbols) == {"BTCUSDT", "ETHUSDT"}
    assert both.symbols["BTCUSDT"]["market"] == "linear" and both.symbols["ETHUSDT"]["market"] == "spot"
    for name, row in both.symbols.items():
        assert row["trades"] > 0, f"{name} did not trade"
        assert row["strategies"] == [f"market_maker-{name}"]
    assert both.trades == sum(r["trades"] for r in both.symbols.values())
    assert both.net_pnl == pytest.approx(sum(r["net_pnl"] for r in both.symbols.values()))
    assert np.isnan(both.position)  # BTC and ETH do not add up; per symbol only
    page = both.write(tmp_path)["html"].read_text()
    assert "<h2>Per symbol</h2>" in page and "market_maker-ETHUSDT" in page and "spot" in page


def test_the_compiled_loop_gives_the_python_paths_figures_for_two_symbols(files):
    """Several strategy slots in the compiled loop (whose stack grows per message until it returns:
    ``compiled.chunk_events`` returns often enough; with 64k-event calls this crashed) equal the Python
    path, symbol by symbol."""
    from hftshm.backtest.compiled import chunk_events

    specs = ["market_maker@BTCUSDT", "market_maker@ETHUSDT"]
    runs = {engine: run_backtest(CONFIG, list(files), specs, seed=4, engine_name=engine)
            for engine in ("compiled", "python")}
    assert runs["compiled"].engine == "compiled" and runs["compiled"].rows > 10 * chunk_events(2)
    for symbol, row in runs["python"].symbols.items():
        assert runs["compiled"].symbols[symbol] == row, symbol  # the same arithmetic in the same order
    assert runs["compiled"].orders_sent == runs["python"].orders_sent
    assert np.array_equal(runs["compiled"].fills, runs["python"].fills)


def test_each_symbol_equals_its_symbol_alone_when_nothing_couples_them(files):
    """Constant latencies (draw k is the k-th order's across symbols) and a strategy deciding on its own
    symbol's books only. The market maker also requotes in ``on_report``: a report is delivered at the
    first message of any symbol after it arrives, which in a merged stream is often another symbol's,
    earlier than the next message of its own: its requotes then leave earlier than alone."""
    raw = merge(read_toml(CONFIG), CONSTANT_LATENCY)
    specs = ["mean_reversion@BTCUSDT", "mean_reversion@ETHUSDT"]
    both = run_backtest(raw, list(files), specs, FAST_MEAN_REVERSION, seed=3, engine_name="python")
    for path, symbol in zip(files, ("BTCUSDT", "ETHUSDT")):
        alone = run_backtest(raw, path, f"mean_reversion@{symbol}", FAST_MEAN_REVERSION, seed=3, engine_name="python")
        mine = both.symbols[symbol]
        assert alone.trades > 0, f"{symbol} alone did not trade: the comparison would prove nothing"
        assert (mine["trades"], mine["cancels"], mine["rejects"]) == (alone.trades, alone.cancels, alone.rejects)
        for key in ("position", "realized_pnl", "unrealized_pnl", "fees", "turnover"):
            assert mine[key] == pytest.approx(getattr(alone, key), abs=1e-9), (symbol, key)


def test_a_per_symbol_risk_limit_holds_one_symbol_back_only(files):
    raw = merge(read_toml(CONFIG), {"risk": {"symbols": {"ETHUSDT": {"max_order_size": 0.001}}}})
    result = run_backtest(raw, list(files), ["market_maker@BTCUSDT", "market_maker@ETHUSDT"], engine_name="python")
    eth, btc = result.symbols["ETHUSDT"], result.symbols["BTCUSDT"]
    assert eth["trades"] == 0 and eth["rejects"] > 0 and result.reject_reasons.get("max_order_size", 0) > 0
    assert btc["trades"] > 0


def test_an_account_wide_limit_stops_both_symbols(files):
    """The daily loss is the account's: BTCUSDT's fees alone breach it, and ETHUSDT stops trading too."""
    raw = merge(read_toml(CONFIG), {"risk": {"max_daily_loss": 0.05}})
    free = run_backtest(CONFIG, list(files), ["market_maker@BTCUSDT", "market_maker@ETHUSDT"])
    held = run_backtest(raw, list(files), ["market_maker@BTCUSDT", "market_maker@ETHUSDT"])
    stopped = {k: v for k, v in held.reject_reasons.items() if k in ("max_daily_loss", "trading_halted")}
    assert stopped, held.reject_reasons
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert held.symbols[symbol]["rejects"] > free.symbols[symbol]["rejects"], symbol
        assert held.symbols[symbol]["trades"] < free.symbols[symbol]["trades"], symbol


def test_a_sweep_of_a_symbol_the_config_does_not_name(files):
    _, eth = files
    assert "ETHUSDT" not in read_toml(CONFIG)["symbols"]
    rows = run_sweep(CONFIG, eth, "market_maker", {}, {"spread_bps": ["1", "4"]}, workers=1, progress=False)
    assert len(rows) == 2 and all("error" not in row for row in rows), rows
    assert any(row["trades"] > 0 for row in rows)


def test_the_cli_backtests_two_files_and_prints_a_table_per_symbol(files):
    from typer.testing import CliRunner

    from hftshm.cli import app

    runner = CliRunner()
    args = ["backtest", "--data", str(files[0]), "--data", str(files[1]), "--config", str(CONFIG)]
    shown = runner.invoke(app, [*args, "-s", "market_maker@BTCUSDT", "-s", "market_maker@ETHUSDT"],
                          env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "per symbol" in shown.output and "market_maker-ETHUSDT" in shown.output
    as_json = runner.invoke(app, [*args, "-s", "market_maker@BTCUSDT", "-s", "market_maker@ETHUSDT", "--json"])
    assert set(json.loads(as_json.stdout)["symbols"]) == {"BTCUSDT", "ETHUSDT"}
    bad = runner.invoke(app, [*args, "-s", "market_maker@"])
    assert bad.exit_code == 2 and "SPEC@SYMBOL" in bad.output
    unknown = runner.invoke(app, [*args, "-s", "market_maker@DOGEUSDT"])
    assert unknown.exit_code == 2 and "DOGEUSDT" in unknown.output
