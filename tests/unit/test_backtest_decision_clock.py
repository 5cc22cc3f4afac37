"""The market maker on a decision clock (``bench/timed_market_maker_nb``): the like-for-like peer of
hftbacktest's 10 ms market maker in ``hftshm bench backtest``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hftshm.backtest import run_backtest
from hftshm.bench.timed_market_maker_nb import TimedMarketMaker

REAL_DAY = Path(__file__).resolve().parents[2] / "data" / "btcusdt_20240808.csv.gz"


class SlowClockMarketMaker(TimedMarketMaker):
    """Decides every 30 s: few enough decisions to count."""

    TIMER_INTERVAL_NS = 30_000_000_000


@pytest.fixture(scope="module")
def head():
    from hftshm.backtest.data import load_events
    from hftshm.symbols import DEFAULT_SYMBOLS

    return np.ascontiguousarray(load_events(REAL_DAY, DEFAULT_SYMBOLS)[0][:60_000])


def test_the_timed_maker_decides_on_its_clock_only():
    assert set(TimedMarketMaker.KERNELS) == {"on_timer"}  # no on_book, no on_report: the clock alone
    assert TimedMarketMaker.TIMER_INTERVAL_NS == 10_000_000


def test_compiled_and_python_paths_agree_on_the_clock(head):
    runs = {engine: run_backtest({}, head, "hftshm.bench.timed_market_maker_nb:TimedMarketMaker", {}, seed=1,
                                 engine_name=engine) for engine in ("python", "compiled")}
    python, compiled = runs["python"], runs["compiled"]
    assert compiled.engine == "compiled" and python.engine == "python"
    assert compiled.orders_sent > 10
    assert np.array_equal(python.fills, compiled.fills)
    assert (python.orders_sent, python.cancels, python.rejects) == (compiled.orders_sent, compiled.cancels,
                                                                    compiled.rejects)


def test_a_slow_clock_bounds_the_decisions(head):
    span_s = (int(head["exch_ts_ns"][-1]) - int(head["exch_ts_ns"][0])) / 1e9
    result = run_backtest({}, head, f"{__name__}:SlowClockMarketMaker", {}, seed=1, engine_name="compiled")
    decisions = span_s / 30.0 + 1
    # each decision sends at most a quote per side (and cancels a stale one): none between ticks of the clock
    assert 0 < result.orders_sent <= 2 * decisions


def test_the_loop_records_its_own_cpu_time_for_the_bench(head):
    import time

    from hftshm.backtest import compiled

    compiled.last_loop_cpu_s = float("nan")
    started = time.thread_time()
    run_backtest({}, head, "hftshm.bench.timed_market_maker_nb:TimedMarketMaker", {}, seed=1, engine_name="compiled")
    whole = time.thread_time() - started
    # the loop alone, setup excluded: what `hftshm bench backtest` compares with hftbacktest's CPU time
    assert 0.0 < compiled.last_loop_cpu_s < whole
