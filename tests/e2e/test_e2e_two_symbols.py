"""The whole platform on two symbols of two markets (USD-M BTCUSDT and spot ETHUSDT, merged by exchange
time), a market maker on each: per symbol, the position, PnL and orders agree between the OMS
database, risk's own book and the run summary."""

from __future__ import annotations

import json
import sqlite3

import pytest

from hftshm.codes import Side
from tests.e2e.platform_harness import hftshm, shipped_config_text
from tests.several_symbols import two_symbols

pytestmark = pytest.mark.slow

MM_ETH = """
[strategies.mm_eth]
class = "market_maker"
symbol = "ETHUSDT"
spread_bps = 1.0
quantity = 0.05
max_inventory = 0.5
min_requote_interval_ms = 20

[risk.symbols.ETHUSDT]
max_order_size = 0.5
max_position_per_symbol = 2.0
"""


def test_two_symbols_agree_between_oms_database_risk_and_summary(tmp_path):
    btc, eth = two_symbols(tmp_path / "data", btc_rows=40_000)
    run_dir = tmp_path / "run"
    config = tmp_path / "platform.toml"
    # paced (the files hold ~25 s of market time): flat out, a loaded machine delays the market
    # maker's quotes past the trades that would fill them, and a symbol may end the run untraded
    text = shipped_config_text(run_dir, speed=4.0).replace("[strategies.mean_reversion]", MM_ETH + "\n[strategies.mean_reversion]", 1)
    # a busier BTC market maker (the shipped one may not fill in the first seconds of the day)
    text = text.replace("spread_bps = 2.0 ", "spread_bps = 0.5 ", 1).replace("min_requote_interval_ms = 100 ",
                                                                          "min_requote_interval_ms = 5 ", 1)
    assert "spread_bps = 0.5 " in text and "min_requote_interval_ms = 5 " in text
    config.write_text(text)
    done = hftshm(["run", "--no-web", "--quiet", "--config", str(config), "--data", str(btc), "--data", str(eth)],
                  timeout_s=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "per symbol" in done.stdout  # the printed summary has the per-symbol table
    summary = json.loads((run_dir / "summary.json").read_text())
    symbols = summary["symbols"]
    assert set(symbols) == {"BTCUSDT", "ETHUSDT"}

    with sqlite3.connect(run_dir / "oms.sqlite") as db:
        names = {1: "BTCUSDT"}
        names.update({sid: name for sid, name in _ids(symbols, db)})
        orders = dict(db.execute("SELECT symbol_id, COUNT(*) FROM orders GROUP BY symbol_id").fetchall())
        fills = {sid: (n, pos, fee) for sid, n, pos, fee in db.execute(
            "SELECT symbol_id, COUNT(*), SUM(CASE WHEN side = ? THEN qty ELSE -qty END), SUM(fee) FROM fills "
            "GROUP BY symbol_id", (int(Side.BUY),))}
    by_name = {names[sid]: sid for sid in names}
    for name, row in symbols.items():
        sid = by_name[name]
        n_fills, position, fees = fills.get(sid, (0, 0.0, 0.0))
        assert n_fills > 0, f"{name} did not trade"
        strategies, risk, oms = row["strategies"], row["risk"], row["oms"]
        # positions: the database's fills, risk's book, the strategies' portfolios, the summary's oms part
        for what, value in (("risk", risk["position"]), ("strategies", strategies["position"]),
                            ("summary oms", oms["position"])):
            assert value == pytest.approx(position, abs=1e-9), (name, what)
        # PnL: risk's and the strategies' realized PnL and fees agree, and the fees are the database's
        assert risk["realized_pnl"] == pytest.approx(strategies["realized_pnl"], abs=1e-9)
        assert risk["fees"] == pytest.approx(fees, abs=1e-9) and strategies["fees"] == pytest.approx(fees, abs=1e-9)
        assert risk["pnl"] == pytest.approx(strategies["net_pnl"], abs=1e-6)
        # orders and fills per symbol
        assert oms["orders"] == orders[sid] and oms["fills"] == n_fills == strategies["fills"]
    assert sum(r["oms"]["orders"] for r in symbols.values()) == summary["headline"]["orders"]
    assert sum(r["strategies"]["net_pnl"] for r in symbols.values()) == pytest.approx(summary["pnl"]["total"], abs=1e-6)


def _ids(symbols: dict, db) -> list[tuple[int, str]]:
    """The ETHUSDT symbol id the run gave it (the data's instrument, after the configured BTCUSDT = 1)."""
    ids = [sid for (sid,) in db.execute("SELECT DISTINCT symbol_id FROM orders") if sid != 1]
    assert len(ids) == 1, ids
    return [(ids[0], "ETHUSDT")]


def test_a_deterministic_two_symbol_run_fills_as_the_two_symbol_backtest(tmp_path):
    """Lockstep replay of the two files (the feed's merge) and the backtest of the same files (the same
    merge, ``merge_events``): the same fills on both symbols, bit for bit."""
    from hftshm.backtest.api import run_backtest
    from hftshm.platform import merge
    from tests.e2e.platform_harness import e2e_config, run_platform

    btc, eth = two_symbols(tmp_path / "data", btc_rows=40_000)
    overrides = merge(BUSY_BTC, {
        "platform": {"deterministic": True, "placement": "composite"},
        "feed": {"data": [str(btc), str(eth)]},
        "strategies": {"mm_eth": {"class": "market_maker", "symbol": "ETHUSDT", "spread_bps": 1.0, "quantity": 0.05,
                                  "max_inventory": 0.5, "min_requote_interval_ms": 20}},
        "risk": {"symbols": {"ETHUSDT": {"max_order_size": 0.5, "max_position_per_symbol": 2.0}}}})
    config = e2e_config(tmp_path / "run", overrides)
    platform = run_platform(config, timeout_s=1200.0)
    backtest = run_backtest(config.raw, [btc, eth], ["market_maker", "mm_eth"], seed=config.exchange.seed)
    assert set(backtest.symbols) == {"BTCUSDT", "ETHUSDT"} and all(r["trades"] > 0 for r in backtest.symbols.values())
    got = sorted((int(f["exch_ts_ns"]), int(f["side"]), float(f["price"]), float(f["qty"]), float(f["fee"]))
                 for f in platform.fills)
    expected = sorted((int(f["exch_ts_ns"]), int(f["side"]), float(f["price"]), float(f["qty"]), float(f["fee"]))
                      for f in backtest.fills)
    assert got == expected


BUSY_BTC = {"strategies": {"market_maker": {"spread_bps": 0.5, "min_requote_interval_ms": 5}}}
