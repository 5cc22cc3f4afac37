"""CPU per event of the trading process's duty cycle, in one process: the real day replayed into
the four trading workers' rings (``tests/trading_cycle_rig``), drained after each feed batch by the
compiled cycle or by the Python duty cycle, and the Python call of one compiled slice.

Thread CPU time, so the figures hold on a loaded machine (say the load beside them). No scheduling
and no second process: what this isolates is the stages' own cost and the slice call's.

    python tools/cycle_flood_cpu.py compiled [--repeat 2]
    python tools/cycle_flood_cpu.py python
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(cycle: str = typer.Argument(..., help="compiled or python"), repeat: int = typer.Option(1),
         data: Path = typer.Option(ROOT / "data" / "btcusdt_20240808.csv.gz")) -> None:
    from hftshm.feed.replay import Replayer
    from hftshm.runtime.trading_cycle import TradingCycle
    from hftshm.symbols import DEFAULT_SYMBOLS
    from hftshm.transport.wait import WaitStrategy
    from tests.trading_cycle_rig import MARKET_MAKER, TradingRig

    maker = dict(MARKET_MAKER["market_maker"], min_requote_interval_ms=100.0)
    rig = TradingRig(Path(tempfile.mkdtemp()), strategies={"market_maker": maker}, capacity=65536)
    try:
        replay = Replayer.from_files([data], DEFAULT_SYMBOLS, speed=0.0, repeat=repeat)
        for name in ("book.strategies", "book.risk", "md.strategies", "md.exchange"):
            replay.add_output(rig.rings[name])
        compiled = TradingCycle.for_workers(rig.workers, WaitStrategy.from_config("busy-spin"))
        assert compiled is not None and compiled.warm()
        compiled.limits = compiled.limits._replace(slice_ns=0, max_slice_ns=0, spin_ns=0)
        if cycle == "compiled":  # the slice call alone: nothing in the rings yet
            compiled.run_slice()
            start = time.thread_time_ns()
            for _ in range(200):
                compiled.run_slice()
            print(f"one compiled slice, Python call included: {(time.thread_time_ns() - start) / 200 / 1e3:.1f} us")
        replay.step()  # the first batch loads the data: not counted
        trading_ns = rounds = 0
        while True:
            start = time.thread_time_ns()
            if cycle == "compiled":
                while True:
                    result = compiled.run_slice()
                    rounds += 1
                    if result is None or result.work == 0:
                        break
            else:
                while sum(worker.do_work() for worker in rig.workers):
                    rounds += 1
            trading_ns += time.thread_time_ns() - start
            rig.drain_events()
            if replay.done:
                break
            replay.step()
        events = replay.events_published
        print(f"{cycle}: {events} events, trading CPU {trading_ns / 1e9:.3f} s, {trading_ns / events:.0f} ns/event, "
              f"{rounds} slices or rounds")
    finally:
        rig.close()


if __name__ == "__main__":
    typer.run(main)
