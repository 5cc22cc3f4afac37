"""Backtest / platform parity: the in-process backtest and a deterministic multi-process run of the
same data, strategy, seed and latency model produce the same fills, bit for bit - for every built-in
and for the README's compiled example loaded from the user's working directory (the backtest runs
them in the compiled loop, the platform's strategy worker through its runtime: same callbacks).

The platform run is the real thing (supervisor, processes, shared-memory rings, SQLite OMS); the
fills are read back from the OMS database. Client order ids are compared relative to each run's
first id (the platform starts its ids from the wall clock so they never repeat across runs)."""

from __future__ import annotations

import os
import re
import sys

import pytest

from hftshm.backtest.api import run_backtest
from hftshm.platform import merge
from hftshm.runtime.lockstep import END_DRAIN_NS

from .platform_harness import BUSY_MARKET_MAKER, REAL_DAY, ROOT, e2e_config, run_platform

pytestmark = pytest.mark.slow

# one strategy per run, so the backtest of that strategy alone is the reference. A busy market maker:
# hundreds of orders and fills over the day, so a divergence shows quickly
ALONE = {"market_maker": False, "mean_reversion": False, "vwap": False}
CASES = {
    "market_maker": (merge(BUSY_MARKET_MAKER, {"strategies": {**{k: {"enabled": k == "market_maker"} for k in ALONE}}}),
                     "market_maker", 20),
    "mean_reversion": ({"strategies": {k: {"enabled": k == "mean_reversion"} for k in ALONE}}, "mean_reversion", 5),
    "vwap": ({"strategies": {k: {"enabled": k == "vwap"} for k in ALONE}}, "vwap", 5),
    # the README's compiled example, saved in the working directory, named by module as a user does
    "readme": ({"strategies": {**{k: {"enabled": False} for k in ALONE},
                               "imbalance": {"class": "mystrats_nb:ImbalanceTaker", "symbol": "BTCUSDT"}}},
               "imbalance", 1),
}


def _platform_fills(result) -> list[tuple]:
    coid = {o["order_id"]: o["client_order_id"] for o in result.orders}
    first = min(coid.values())
    return sorted((int(f["exch_ts_ns"]), int(coid[f["order_id"]]) - first, int(f["side"]), float(f["price"]),
                   float(f["qty"]), float(f["fee"])) for f in result.fills)


def _backtest_fills(result) -> list[tuple]:
    return sorted((int(f["exch_ts_ns"]), int(f["client_order_id"]) - 1, int(f["side"]), float(f["price"]),
                   float(f["qty"]), float(f["fee"])) for f in result.fills)


@pytest.fixture(scope="module", params=list(CASES))
def both_runs(request, tmp_path_factory):
    overrides, strategy, least = CASES[request.param]
    run_dir = tmp_path_factory.mktemp(f"parity-{request.param}") / "run"
    overrides = merge(overrides, {"platform": {"deterministic": True, "placement": "composite"}})
    user = tmp_path_factory.mktemp("user")
    text = (ROOT / "README.md").read_text()
    (user / "mystrats_nb.py").write_text(re.search(r"```python\n# mystrats_nb.py\n(.*?)```", text, re.S).group(1))
    cwd, path, pythonpath = os.getcwd(), list(sys.path), os.environ.get("PYTHONPATH")
    os.chdir(user)  # as a user runs ``hftshm run`` next to their strategy file
    try:
        config = e2e_config(run_dir, overrides)
        # the whole day, one lockstep round trip per message: ~30 s on an idle 2-core machine, many
        # minutes when it is shared (the bound is for a hang, not for speed)
        platform = run_platform(config, timeout_s=2400.0)
        backtest = run_backtest(config.raw, REAL_DAY, strategy, {}, seed=config.exchange.seed)
    finally:
        os.chdir(cwd)
        sys.path[:] = path
        if pythonpath is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = pythonpath
    assert backtest.engine == "compiled"
    return platform, backtest, least


def test_the_platform_and_the_backtest_fill_the_same_orders_at_the_same_prices(both_runs):
    platform, backtest, least = both_runs
    expected = _backtest_fills(backtest)
    got = _platform_fills(platform)
    assert len(expected) >= least, "the strategy should trade over the day"
    assert got[:len(expected)] == expected[:len(got)], "the first fills differ"
    assert len(got) == len(expected)
    assert got == expected


def test_the_deterministic_run_replayed_every_event_and_nothing_traded_after_the_close(both_runs):
    platform, backtest, _ = both_runs
    feed, exchange = platform.counters["feed"], platform.counters["exchange"]
    assert feed["events_published"] == feed["events_total"] == exchange["events_in"]
    assert "deterministic replay" in platform.logs["feed"]
    assert not platform.open_orders()
    close = backtest.end_ns + END_DRAIN_NS
    assert max(int(f["exch_ts_ns"]) for f in platform.fills) <= close
