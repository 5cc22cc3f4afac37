"""Time of one tick's pass through the compiled trading cycle, per stage, in one process.

The four trading workers on their own rings (``tests/trading_cycle_rig``); the script plays a
scripted market (``tests/unit/test_trading_cycle.market``: the touch moves every step, a trade
sweeps a side every third step, so the maker requotes and fills) and after each tick runs passes of
the same four stage kernels ``run_slice`` runs, with the monotonic clock read between the stages.
The first pass is the tick's (a book in, the maker's quotes through risk and the OMS onto the
exchange ring, the exchange taking them and the events); the passes after it until the cycle is
idle are its follow-up (the exchange's reports through the OMS to risk and the strategies).

"cold": ``--cold-mb`` of other memory is written between ticks, as another process on the core
does between two ticks of a paced replay. Figures are medians of wall time inside one compiled
call (no Python inside); say the load average beside them.

"--keep-warm 1|2|3": after that, what an idle slice does: 1 pulls its working set back in, 2 also the
OMS's next orders' lines, 3 also risk's and the OMS's rehearsals; then 20 us for the prefetches to land.

    python tools/tick_pass_cpu.py [--ticks 1000] [--cold-mb 32] [--keep-warm 2]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import typer
from numba import njit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGES = ("strategies", "risk", "oms", "exchange")


def _timed_pass_kernel():
    from hftshm.exchange import stage_nb as exchange_stage
    from hftshm.oms import stage_nb as oms_stage
    from hftshm.risk import stage_nb as risk_stage
    from hftshm.runtime import strategies_stage_nb as strategies_stage
    from hftshm.transport.clock_nb import monotonic_ns
    from hftshm.transport.ring_nb import consumer_position, has_data

    @njit(nogil=True, _nrt=False)
    def timed_pass(strategies, risk, oms, exchange, t):
        """One pass of ``run_slice``'s loop with the clock read between the stages (``t[0..4]``) and
        each stage's work (``t[5..8]``); a book waiting in the strategies' ring is stamped as published
        at the start of the pass, so the OMS's tick-to-order histogram measures the pass itself.
        Returns the work done."""
        t[0] = monotonic_ns()
        if has_data(strategies.book_ctrl):  # the tick starts now: tick-to-order without the Python call
            mask = strategies.book_records.shape[0] - 1
            strategies.book_records[consumer_position(strategies.book_ctrl) & mask].publish_ts_ns = t[0]
        t[5] = strategies_stage.step(strategies)
        t[1] = monotonic_ns()
        t[6] = risk_stage.step(risk)
        t[2] = monotonic_ns()
        t[7] = oms_stage.step(oms)
        t[3] = monotonic_ns()
        t[8] = exchange_stage.step(exchange)
        t[4] = monotonic_ns()
        return t[5] + t[6] + t[7] + t[8]

    return timed_pass


def _pull_kernel():
    from hftshm.oms import stage_nb as oms_stage
    from hftshm.risk import stage_nb as risk_stage
    from hftshm.runtime.keep_warm_nb import prefetch_working_set
    from hftshm.transport.clock_nb import monotonic_ns

    @njit(nogil=True, _nrt=False)
    def pull(warm, risk, oms, ahead, settle_ns):
        """What an idle ``run_slice`` does between ticks (``ahead`` 2: risk's and the OMS's rehearsals;
        1: and 2: the OMS's next lines; its working set), then a wait for the prefetches to land."""
        idle = 1 << 40 if ahead == 2 else 0  # idle "forever": the rehearsals are due
        if ahead:
            risk_stage.warm(risk, idle)
            oms_stage.warm(oms, idle)
        prefetch_working_set(warm.regions, warm.rings)
        start = monotonic_ns()
        while monotonic_ns() - start < settle_ns:
            pass

    return pull


def measure(ticks: int, cold_mb: int, seed_ticks: int = 50, touch_rings: bool = False, keep_warm: int = 0) -> dict:
    from numba import typeof

    from hftshm.metrics.histogram import summarize
    from hftshm.runtime.trading_cycle import TradingCycle, _entry, _warm_set
    from hftshm.transport.wait import WaitStrategy
    from tests.trading_cycle_rig import TradingRig
    from tests.unit.test_trading_cycle import market

    rig = TradingRig(Path(tempfile.mkdtemp()))
    try:
        cycle = TradingCycle.for_workers(rig.workers, WaitStrategy.from_config("busy-spin"))
        assert cycle is not None and cycle.warm()
        bundles = cycle.stages(force=True)
        t = np.zeros(9, dtype=np.int64)
        kernel = _timed_pass_kernel()
        types = cycle._types_of(bundles)[:4] + (typeof(t),)
        run = _entry(kernel, types)
        # the idle pull's table as run_slice's, with this kernel's code in place of run_slice's
        warm = _warm_set(kernel, types, bundles, cycle.limits, cycle.warm_set, "tick pass")
        cycle.strategies.leave()
        other = np.zeros((cold_mb << 20) // 8, dtype=np.int64) if cold_mb else None
        pull = _pull_kernel() if keep_warm else None
        first = np.zeros((ticks, 4), dtype=np.int64)
        follow = np.zeros(ticks, dtype=np.int64)
        orders = np.zeros(ticks, dtype=np.int64)
        for step in range(seed_ticks + ticks):
            records, bid, ask = market(step)
            if other is not None:
                other += 1  # another process's memory through the caches
            if touch_rings:  # experiment: the next slots of the rings the pass writes, read back into the cache
                for name in ("intents", "orders", "exchange.orders", "oms.events", "exchange.reports",
                             "oms.reports.strategies", "oms.reports.risk"):
                    ring = rig.rings[name]
                    pos = ring.producer_position
                    mask = ring.capacity - 1
                    ring.records[[(pos + j) & mask for j in range(8)]].copy()
            bundles = cycle.stages()
            if pull is not None:  # what an idle slice does between ticks (--keep-warm)
                pull(warm, bundles[1], bundles[2], keep_warm - 1, 20_000)
            before = rig.peek_exchange_orders()
            rig.events(records)
            rig.book(bid, ask, int(records[-1]["exch_ts_ns"]), publish_ts_ns=time.perf_counter_ns())
            run(*bundles, t)
            k = step - seed_ticks
            if k >= 0:
                first[k] = np.diff(t[:5])
                orders[k] = rig.peek_exchange_orders() - before
            rest = 0
            for _ in range(100):
                work = run(*bundles, t)
                rest += t[4] - t[0]
                if work == 0:
                    break
            else:
                raise RuntimeError(f"the cycle never went idle after tick {step}: work per stage {t[5:]}")
            cycle.strategies.leave()
            if k >= 0:
                follow[k] = rest
            rig.drain_events()
            if k == -1:
                rig.oms._tick_to_order[:] = 0  # the seed ticks' orders are not counted
        return {"first": first, "follow": follow, "orders": orders, "tick_to_order": summarize(rig.oms._tick_to_order)}
    finally:
        rig.close()


def main(ticks: int = typer.Option(1000), cold_mb: int = typer.Option(0, help="MB written between ticks"),
         touch_rings: bool = typer.Option(False, help="read the output rings' next slots back in before each tick"),
         keep_warm: int = typer.Option(0, help="before each tick, what an idle slice does: 1 prefetch its "
                                                  "working set, 2 and the OMS's next orders' lines, 3 and risk's "
                                                  "and the OMS's rehearsals")) -> None:
    r = measure(ticks, cold_mb, touch_rings=touch_rings, keep_warm=keep_warm)
    first = r["first"]
    parts = ", ".join(f"{name} {np.median(first[:, i]) / 1e3:.2f}" for i, name in enumerate(STAGES))
    print(f"{'cold' if cold_mb else 'warm'} ({ticks} ticks, {r['orders'].mean():.2f} orders each): first pass p50 "
          f"us: {parts}; strategies..oms {np.median(first[:, :3].sum(axis=1)) / 1e3:.2f}; "
          f"follow-up {np.median(r['follow']) / 1e3:.2f}; tick-to-order (book in -> order on the exchange ring) "
          f"p50 {r['tick_to_order'].p50_ns / 1e3:.2f} us, mean {r['tick_to_order'].sum_ns / max(r['tick_to_order'].count, 1) / 1e3:.2f} us")


if __name__ == "__main__":
    typer.run(main)
