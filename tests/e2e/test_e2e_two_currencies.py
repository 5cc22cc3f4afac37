"""The whole platform on a linear and an inverse symbol (USD-M BTCUSDT, PnL in USDT; COIN-M ETHUSD_PERP,
PnL in ETH): the run summary totals per settlement currency, each the sum of its symbols' figures, and
reports no figure adding USDT to ETH; per symbol the position, PnL and orders agree between the OMS
database, risk's book and the strategies."""

from __future__ import annotations

import json
import sqlite3

import pytest

from hftshm.codes import Side
from hftshm.feed.binance import import_files
from tests.e2e.platform_harness import ROOT, hftshm, shipped_config_text
from tests.several_symbols import btc_head, floats_in

pytestmark = pytest.mark.slow

MM_ETH = """
[strategies.mm_eth]
class = "market_maker"
symbol = "ETHUSD_PERP"
spread_bps = 0.5
quantity = 1
max_inventory = 5
min_requote_interval_ms = 5
"""


def test_totals_per_currency_and_symbols_agree_between_oms_risk_and_summary(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    btc = btc_head(data / "btc.csv.gz", 40_000)
    eth = data / "ethusd_perp.csv.gz"
    import_files([ROOT / "tests" / "data" / "binance_coinm_ethusd_perp_20240808_head.gz"], eth)
    run_dir = tmp_path / "run"
    config = tmp_path / "platform.toml"
    text = shipped_config_text(run_dir).replace("[strategies.mean_reversion]", MM_ETH + "\n[strategies.mean_reversion]", 1)
    text = text.replace("spread_bps = 2.0 ", "spread_bps = 0.5 ", 1).replace("min_requote_interval_ms = 100 ",
                                                                          "min_requote_interval_ms = 5 ", 1)
    config.write_text(text)
    done = hftshm(["run", "--no-web", "--quiet", "--config", str(config), "--data", str(btc), "--data", str(eth)],
                  timeout_s=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PnL ETH " in done.stdout and "PnL USDT " in done.stdout and "PnL total" not in done.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    symbols, pnl = summary["symbols"], summary["pnl"]
    assert {name: row["currency"] for name, row in symbols.items()} == {"BTCUSDT": "USDT", "ETHUSD_PERP": "ETH"}

    # per currency: the sum of its symbols' figures; no total across the two
    assert set(pnl["by_currency"]) == {"USDT", "ETH"}
    for currency, total in pnl["by_currency"].items():
        mine = [row["strategies"] for row in symbols.values() if row["currency"] == currency]
        assert total["symbols"] == [name for name, row in symbols.items() if row["currency"] == currency]
        for key, part in (("realized_pnl", "realized_pnl"), ("unrealized_pnl", "unrealized_pnl"), ("fees", "fees"),
                          ("pnl", "net_pnl")):
            assert total[key] == pytest.approx(sum(s[part] for s in mine), abs=1e-12), (currency, key)
    assert pnl["total"] is None and pnl["realized"] is None and pnl["unit"] is None
    assert pnl["risk_account_at_mark"]["unit"] == "USD"  # risk's loss measure: a labelled conversion
    crossed = sum(row["strategies"]["net_pnl"] for row in symbols.values())
    assert not any(v == pytest.approx(crossed, abs=1e-12) for v in floats_in(summary) if v != 0.0)

    with sqlite3.connect(run_dir / "oms.sqlite") as db:
        ids = sorted(sid for (sid,) in db.execute("SELECT DISTINCT symbol_id FROM orders"))
        orders = dict(db.execute("SELECT symbol_id, COUNT(*) FROM orders GROUP BY symbol_id").fetchall())
        fills = {sid: (n, pos, fee) for sid, n, pos, fee in db.execute(
            "SELECT symbol_id, COUNT(*), SUM(CASE WHEN side = ? THEN qty ELSE -qty END), SUM(fee) FROM fills "
            "GROUP BY symbol_id", (int(Side.BUY),))}
    assert len(ids) == 2 and ids[0] == 1  # [symbols.BTCUSDT] id = 1; the data's ETHUSD_PERP another
    for name, row in symbols.items():
        strategies, risk, oms = row["strategies"], row["risk"], row["oms"]
        sid = 1 if name == "BTCUSDT" else ids[1]
        assert oms["orders"] == orders[sid]
        n_fills, position, fees = fills[sid]
        assert n_fills > 0, f"{name} did not trade"
        for what, value in (("risk", risk["position"]), ("strategies", strategies["position"]),
                            ("summary oms", oms["position"])):
            assert value == pytest.approx(position, abs=1e-9), (name, what)
        assert risk["pnl"] == pytest.approx(strategies["net_pnl"], abs=1e-9)
        assert strategies["fees"] == pytest.approx(fees, abs=1e-12)
    assert symbols["ETHUSD_PERP"]["strategies"]["position"] == int(symbols["ETHUSD_PERP"]["strategies"]["position"])
    assert sum(r["oms"]["orders"] for r in symbols.values()) == summary["headline"]["orders"]
