"""Backtest / platform parity: the in-process backtest and a deterministic multi-process run of the
same data, strategy, seed and latency model produce the same fills, bit for bit.

The platform run is the real thing (supervisor, processes, shared-memory rings, SQLite OMS); the
fills are read back from the OMS database. Client order ids are compared relative to each run's
first id (the platform starts its ids from the wall clock so they never repeat across runs)."""

from __future__ import annotations

import pytest

from hftshm.backtest.api import run_backtest
from hftshm.runtime.lockstep import END_DRAIN_NS

from .platform_harness import BUSY_MARKET_MAKER, REAL_DAY, e2e_config, run_platform

pytestmark = pytest.mark.slow

# a busy market maker: hundreds of orders and fills over the day, so a divergence shows quickly
STRATEGY = {"strategies": {"market_maker": {"enabled": True}, "mean_reversion": {"enabled": False},
                           "vwap": {"enabled": False}}}


def _platform_fills(result) -> list[tuple]:
    coid = {o["order_id"]: o["client_order_id"] for o in result.orders}
    first = min(coid.values())
    return sorted((int(f["exch_ts_ns"]), int(coid[f["order_id"]]) - first, int(f["side"]), float(f["price"]),
                   float(f["qty"]), float(f["fee"])) for f in result.fills)


def _backtest_fills(result) -> list[tuple]:
    return sorted((int(f["exch_ts_ns"]), int(f["client_order_id"]) - 1, int(f["side"]), float(f["price"]),
                   float(f["qty"]), float(f["fee"])) for f in result.fills)


@pytest.fixture(scope="module", params=["composite"])
def both_runs(request, tmp_path_factory):
    from hftshm.platform import merge

    run_dir = tmp_path_factory.mktemp(f"parity-{request.param}") / "run"
    overrides = merge(merge(BUSY_MARKET_MAKER, STRATEGY),
                      {"platform": {"deterministic": True, "placement": request.param}})
    config = e2e_config(run_dir, overrides)
    platform = run_platform(config, timeout_s=900.0)
    seed = config.exchange.seed
    backtest = run_backtest(config.raw, REAL_DAY, "market_maker", {}, seed=seed)
    return platform, backtest


def test_the_platform_and_the_backtest_fill_the_same_orders_at_the_same_prices(both_runs):
    platform, backtest = both_runs
    expected = _backtest_fills(backtest)
    got = _platform_fills(platform)
    assert len(expected) > 20, "the market maker should trade over the day"
    assert got[:len(expected)] == expected[:len(got)], "the first fills differ"
    assert len(got) == len(expected)
    assert got == expected


def test_the_deterministic_run_replayed_every_event_and_nothing_traded_after_the_close(both_runs):
    platform, backtest = both_runs
    feed, exchange = platform.counters["feed"], platform.counters["exchange"]
    assert feed["events_published"] == feed["events_total"] == exchange["events_in"]
    assert "deterministic replay" in platform.logs["feed"]
    assert not platform.open_orders()
    close = backtest.end_ns + END_DRAIN_NS
    assert max(int(f["exch_ts_ns"]) for f in platform.fills) <= close
