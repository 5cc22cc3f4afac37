"""Backtest / platform parity: the in-process backtest and a deterministic multi-process run of the
same data, strategies, seed and latency model produce the same fills, bit for bit - for the built-ins
trading side by side and for the README's compiled example loaded from the user's working directory
(the backtest runs them in the compiled loop, the platform's strategy worker through its runtime:
same callbacks).

The platform run is the real thing (supervisor, processes, shared-memory rings, SQLite OMS); the
fills are read back from the OMS database. Client order ids are compared relative to each run's
first id (the platform starts its ids from the wall clock so they never repeat across runs) where one
strategy trades; with several, the fills are compared without them."""

from __future__ import annotations

import os
import re
import sys

import pytest

from hftshm.backtest.api import run_backtest
from hftshm.platform import merge
from hftshm.runtime.lockstep import END_DRAIN_NS

from .platform_harness import (BUSY_MARKET_MAKER, REAL_DAY, ROOT, backtest_fills, e2e_config, platform_fills,
                               run_platform)

pytestmark = pytest.mark.slow

# A whole deterministic day costs about a minute of CI per run, so the built-ins share one run: the
# three of them together (a busy market maker, hundreds of orders and fills over the day, so a
# divergence shows quickly) against the backtest of the same three, and the README's compiled
# example - saved in the working directory, named by module as a user does - alone.
BUILTINS = ("market_maker", "mean_reversion", "vwap")
CASES = {
    # strategies, the least fills the run must make, and whether client order ids line up (one
    # strategy: its ids relative to its first; several: the platform numbers each strategy apart)
    "builtins": (merge(BUSY_MARKET_MAKER, {"strategies": {k: {"enabled": True} for k in BUILTINS}}),
                 list(BUILTINS), 30, False),
    "readme": ({"strategies": {**{k: {"enabled": False} for k in BUILTINS},
                               "imbalance": {"class": "mystrats_nb:ImbalanceTaker", "symbol": "BTCUSDT"}}},
               "imbalance", 1, True),
}


@pytest.fixture(scope="module", params=list(CASES))
def both_runs(request, tmp_path_factory):
    overrides, strategy, least, ids = CASES[request.param]
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
    return platform, backtest, least, ids


def test_the_platform_and_the_backtest_fill_the_same_orders_at_the_same_prices(both_runs):
    platform, backtest, least, ids = both_runs
    expected = backtest_fills(backtest, ids)
    got = platform_fills(platform, ids)
    assert len(expected) >= least, "the strategies should trade over the day"
    ids_of = {s.name: s.strategy_id for s in platform.snapshot.strategies}
    strategy_of = {o["order_id"]: o["strategy_id"] for o in platform.orders}
    traded = {strategy_of[f["order_id"]] for f in platform.fills}
    assert ids_of and set(ids_of.values()) <= traded, ("every strategy of the run trades", ids_of, traded)
    assert got[:len(expected)] == expected[:len(got)], "the first fills differ"
    assert len(got) == len(expected)
    assert got == expected


def test_the_deterministic_run_replayed_every_event_and_nothing_traded_after_the_close(both_runs):
    platform, backtest, _, _ = both_runs
    feed, exchange = platform.counters["feed"], platform.counters["exchange"]
    assert feed["events_published"] == feed["events_total"] == exchange["events_in"]
    assert "deterministic replay" in platform.logs["feed"]
    assert not platform.open_orders()
    close = backtest.end_ns + END_DRAIN_NS
    assert max(int(f["exch_ts_ns"]) for f in platform.fills) <= close
