"""Sweeps on Dask (several worker processes): a LocalCluster gives the local pool's rows, survives a
killed worker, and a days x parameters grid names each row's day."""

import os
import signal
import threading

import numpy as np
import pytest

from hftshm.backtest.sweep import parse_sweep, run_sweep
from hftshm.backtest.sweep_dask import local_cluster, run_sweep_dask
from tests.unit.test_backtest import wavy_market

GRID = ["spread_bps=1,3", "quantity=0.01,0.02"]


def _files(tmp_path, lengths):
    paths = []
    for i, n in enumerate(lengths):
        path = tmp_path / f"day{i}.npy"
        np.save(path, wavy_market(n))
        paths.append(path)
    return paths


def _comparable(rows):
    return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in rows]


def test_local_cluster_rows_equal_the_local_pool_bit_for_bit_on_a_days_grid(tmp_path):
    days = _files(tmp_path, [300, 250])
    grid = parse_sweep(GRID + ["min_requote_interval_ms=-5"])  # a bad value: its rows say so, the grid completes
    local = run_sweep(None, days, "market_maker", {}, grid, seed=3, workers=2, progress=False)
    dask = run_sweep_dask("local", None, days, "market_maker", {}, grid, seed=3, workers=2, progress=False)
    assert len(dask) == 2 * 4
    assert _comparable(dask) == _comparable(local)
    assert {row["data"] for row in dask} == {"day0.npy", "day1.npy"}
    assert all("error" in row and "min_requote_interval_ms" in row["error"] for row in dask)

    good = parse_sweep(GRID)
    local = run_sweep(None, days, "market_maker", {}, good, seed=3, workers=2, progress=False)
    dask = run_sweep_dask("local", None, days, "market_maker", {}, good, seed=3, workers=2, progress=False)
    assert _comparable(dask) == _comparable(local)
    assert not any("error" in row for row in dask) and any(row["trades"] for row in dask)


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_is_replaced_and_the_grid_completes(tmp_path):
    from distributed import Client

    day = _files(tmp_path, [2000])[0]
    grid = parse_sweep(["spread_bps=1,2,3,4", "quantity=0.01,0.02"])
    expected = run_sweep(None, day, "market_maker", {}, grid, seed=2, workers=2, progress=False)
    with local_cluster(2) as cluster, Client(cluster) as client:
        killed = []

        def kill_one_worker_when_busy():
            while not killed:
                busy = [w for w, tasks in client.processing().items() if tasks]
                if busy:
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                threading.Event().wait(0.01)

        killer = threading.Thread(target=kill_one_worker_when_busy, daemon=True)
        killer.start()
        rows = run_sweep_dask("local", None, day, "market_maker", {}, grid, seed=2, progress=False, client=client)
        killer.join(5)
    assert killed, "no worker was killed"
    assert not any("error" in row for row in rows)
    assert _comparable(rows) == _comparable(expected)


def test_cli_sweep_on_a_local_cluster_over_two_days(tmp_path):
    import json

    from typer.testing import CliRunner

    from hftshm.cli import app

    days = _files(tmp_path, [200, 220])
    result = CliRunner().invoke(app, ["backtest", "--data", str(days[0]), "--data", str(days[1]), "--sweep",
                                      "spread_bps=1,3", "--cluster", "local", "--jobs", "2", "--json",
                                      "--config", str(tmp_path / "none.toml")])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[result.stdout.index("["):])
    assert sorted((r["data"], r["params"]["spread_bps"]) for r in rows) == [
        ("day0.npy", "1"), ("day0.npy", "3"), ("day1.npy", "1"), ("day1.npy", "3")]
    bad = CliRunner().invoke(app, ["backtest", "--data", str(days[0]), "--sweep", "spread_bps=1", "--cluster", "udp://x",
                                   "--config", str(tmp_path / "none.toml")])
    assert bad.exit_code == 2 and "--cluster" in bad.output


def test_a_running_cluster_by_its_scheduler_address(tmp_path):
    day = _files(tmp_path, [300])[0]
    grid = parse_sweep(["spread_bps=1,3"])
    expected = run_sweep(None, day, "market_maker", {}, grid, seed=5, workers=1, progress=False)
    with local_cluster(2) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        rows = run_sweep_dask(cluster.scheduler_address, None, day, "market_maker", {}, grid, seed=5, progress=False)
    assert _comparable(rows) == _comparable(expected)
    with pytest.raises(ValueError, match="no Dask scheduler answers"):
        run_sweep_dask("tcp://127.0.0.1:1", None, day, "market_maker", {}, grid, progress=False)


def test_a_symbol_the_config_does_not_name_sweeps_on_dask_as_in_the_pool(tmp_path):
    """Each worker reads a file with its own instruments (``backtest.api.symbol_table_for``): a spot
    ETHUSDT file sweeps with the shipped config, which names BTCUSDT only."""
    from pathlib import Path

    from hftshm.config import read_toml
    from tests.several_symbols import eth_spot_head

    config = Path(__file__).resolve().parents[2] / "config" / "platform.toml"
    assert "ETHUSDT" not in read_toml(config)["symbols"]
    eth = eth_spot_head(tmp_path / "eth.csv.gz")
    grid = parse_sweep(["spread_bps=1,4"])
    local = run_sweep(config, eth, "market_maker", {}, grid, seed=2, workers=1, progress=False)
    dask = run_sweep_dask("local", config, eth, "market_maker", {}, grid, seed=2, workers=2, progress=False)
    assert all("error" not in row for row in dask), dask
    assert any(row["trades"] > 0 for row in dask)
    assert _comparable(dask) == _comparable(local)
