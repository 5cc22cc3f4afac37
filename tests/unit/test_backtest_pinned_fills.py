"""The shipped day's fills, pinned per built-in strategy (count and a digest of every fill).

A speed change to the backtest loop, the venue or a strategy that changes a single fill fails here;
a deliberate change (a documented bug fix) updates the pins in the same commit, saying why.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hftshm.backtest import run_backtest

REAL_DAY = Path(__file__).resolve().parents[2] / "data" / "btcusdt_20240808.csv.gz"

# (fills, digest of (exch_ts, client id, side, price, qty, fee) in fill order), seed 1, default params
PINNED = {
    "market_maker": (159, "ed831199da31f22a"),
    "mean_reversion": (25, "5ff6d001abaa0c7c"),
    "vwap": (20, "e5ed918b8716f3bd"),
}


def fills_digest(fills) -> str:
    h = hashlib.sha256()
    for f in fills:
        h.update(repr((int(f["exch_ts_ns"]), int(f["client_order_id"]), int(f["side"]), float(f["price"]),
                       float(f["qty"]), float(f["fee"]))).encode())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def day():
    from hftshm.backtest.data import load_events
    from hftshm.symbols import DEFAULT_SYMBOLS

    return load_events(REAL_DAY, DEFAULT_SYMBOLS)[0]


@pytest.mark.parametrize("strategy", sorted(PINNED))
def test_the_shipped_day_fills_exactly_as_pinned(day, strategy):
    result = run_backtest(None, day, strategy, {}, seed=1)
    count, digest = PINNED[strategy]
    assert (len(result.fills), fills_digest(result.fills)) == (count, digest)


@pytest.mark.parametrize("strategy", ["mean_reversion", "vwap"])
def test_the_python_path_runs_the_same_compiled_callbacks_to_the_same_fills(day, strategy):
    # the market maker's Python path takes ~20 s for the day: test_strategies_real_data compares a part
    result = run_backtest(None, day, strategy, {}, seed=1, engine_name="python")
    assert result.engine == "python"
    assert (len(result.fills), fills_digest(result.fills)) == PINNED[strategy]
