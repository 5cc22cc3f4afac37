"""No numba kernel compiles (or loads from the cache) inside a step: every worker warms its hot
kernels in ``on_start``, before it turns RUNNING.

The shipped topology replays the real day with a busy market maker and a VWAP taker (new orders,
replaces, cancels, partial and full fills, rejects), in both placements: process-per-worker is the
stricter one, since there no worker's warm-up can hide a kernel another worker of the same process
forgot. Every worker process reports at exit what its ``jit_watch`` saw: the signatures its numba
dispatchers gained after the first step began, and every compilation during the steps. A kernel
left to its first call would appear there, compiled on a fresh checkout or loaded from the cache
otherwise, so this fails either way."""

from __future__ import annotations

import pytest

from tests.e2e.platform_harness import BUSY_MARKET_MAKER, MARKET_MAKER_AND_VWAP, e2e_config, run_platform

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("placement", ["process-per-worker", "composite"])
def test_no_kernel_compiles_inside_a_step(run_dir, placement):
    config = e2e_config(run_dir, {**MARKET_MAKER_AND_VWAP, "platform": {"placement": placement,
                                                                        "run_dir": str(run_dir)}})
    result = run_platform(config, timeout_s=600)
    # the hot paths ran: orders went out, came back acked and filled, risk rejected some
    assert result.counters["oms"]["orders_created"] > 50
    assert result.counters["exchange"]["fills"] > 0
    assert result.counters["strategies"]["reports"] > 0
    processes = {p.name: p.workers[0].name for p in config.topology.processes()}
    for process, first_worker in processes.items():
        text = result.logs[first_worker]
        inside = [line for line in text.splitlines() if "inside a step" in line and "jit:" in line
                  and "no kernel" not in line]
        assert not inside, f"process {process}: kernels compiled or loaded inside steps:\n" + "\n".join(inside)
        assert f"jit: no kernel compiled or loaded inside a step of process {process}" in text, (
            f"process {process} did not report its jit watch (log of {first_worker})")


def test_the_compiled_trading_cycle_compiles_nothing_inside_a_step(run_dir):
    """The market maker alone: the composite trading process runs its compiled cycle
    (hftshm.runtime.trading_cycle), compiled before the first step."""
    config = e2e_config(run_dir, {**BUSY_MARKET_MAKER, "platform": {"placement": "composite",
                                                                    "run_dir": str(run_dir)},
                                  "feed": {"speed": 50.0}})  # paced: a flood (speed 0) keeps the Python cycle
    result = run_platform(config, timeout_s=600)
    assert result.counters["oms"]["orders_created"] > 50 and result.counters["exchange"]["fills"] > 0
    text = result.logs["strategies"]
    assert "run in one compiled cycle" in text
    assert "jit: no kernel compiled or loaded inside a step of process trading" in text, text[-3000:]
    slices = [line for line in text.splitlines() if "compiled cycle:" in line]
    assert slices and " 0 slices" not in slices[-1], "the compiled cycle never ran"
