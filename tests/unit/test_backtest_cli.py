"""``hftshm backtest`` and ``hftshm strategies`` from the command line (no platform running)."""

import json

import numpy as np
from typer.testing import CliRunner

from hftshm.cli import app
from tests.unit.test_backtest import wavy_market

runner = CliRunner()


def data_file(tmp_path, n=300):
    path = tmp_path / "events.npy"
    np.save(path, wavy_market(n))
    return path


def test_backtest_writes_the_report(tmp_path):
    out = tmp_path / "report"
    result = runner.invoke(app, ["backtest", "--data", str(data_file(tmp_path)), "--strategy", "market_maker",
                                 "--param", "spread_bps=1", "--seed", "4", "--out", str(out), "--json",
                                 "--config", str(tmp_path / "none.toml")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["engine"] == "compiled" and summary["params"]["spread_bps"] == 1.0
    for name in ("report.json", "report.html", "fills.csv"):
        assert (out / name).is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["trades"] == summary["trades"] and report["latency_model"]["seed"] == 4


def test_backtest_bad_input_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["backtest", "--data", str(tmp_path / "missing.csv"), "--config", "nope.toml"])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["backtest", "--data", str(data_file(tmp_path, 20)), "--param", "spread_bps=-1",
                                 "--config", "nope.toml"])
    assert result.exit_code == 2 and "spread_bps" in result.output
    result = runner.invoke(app, ["backtest", "--data", str(data_file(tmp_path, 20)), "--param", "oops",
                                 "--config", "nope.toml"])
    assert result.exit_code == 2 and "key=value" in result.output


def test_sweep_runs_every_combination_ranked(tmp_path):
    result = runner.invoke(app, ["backtest", "--data", str(data_file(tmp_path, 200)), "--sweep", "spread_bps=1,3",
                                 "--sweep", "quantity=0.01,0.02", "--jobs", "2", "--json", "--config", "nope.toml"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 4
    assert {(r["params"]["spread_bps"], r["params"]["quantity"]) for r in rows} == {
        ("1", "0.01"), ("1", "0.02"), ("3", "0.01"), ("3", "0.02")}
    pnls = [r["net_pnl"] for r in rows]
    assert pnls == sorted(pnls, reverse=True)


def test_strategies_list_and_params_without_a_platform(tmp_path):
    config = tmp_path / "platform.toml"
    config.write_text('[strategies.mm]\nclass = "market_maker"\nspread_bps = 3.0\n')
    result = runner.invoke(app, ["strategies", "list", "--config", str(config), "--run-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert listing["running"] is False
    assert listing["configured"][0]["params"]["spread_bps"] == 3.0
    assert {"market_maker", "mean_reversion", "vwap"} <= set(listing["classes"])
    result = runner.invoke(app, ["strategies", "params", "vwap"])
    assert result.exit_code == 0 and "participation" in result.output and "target_qty" in result.output
    result = runner.invoke(app, ["strategies", "pause", "mm", "--run-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no platform is running" in result.output
