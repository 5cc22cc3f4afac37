"""The compiled trading cycle's Python side: which processes get it, the bundles, housekeeping.

A process runs the compiled cycle (``trading_cycle_nb.run_slice``) when it hosts exactly one
strategies, one risk, one OMS and one exchange worker (the composite ``trading`` process) and
``HFTSHM_COMPILED_CYCLE`` is not ``0``. Each of those workers offers its compiled stage
(``compiled_stage()``: a NamedTuple bundle, or None while it needs its Python path: a restart's
rebuild, the OMS's recovery or spill file, the kill switch, a deterministic run...). While all four
offer one, the runner calls ``TradingCycle.run_slice`` instead of the workers' ``do_work``; between
slices it runs their ``compiled_housekeeping`` (control messages, status rows, counters, the Redis
mirror's snapshot), writes heartbeats and applies the wait strategy. When one stage needs Python,
the runner takes its usual Python duty cycle for that round.

The strategies stage is pluggable: ``StrategiesStep`` pairs an njit ``step(bundle) -> work`` with a
function that builds its bundle from the strategies worker (or returns None: the worker then runs
its Python path). ``builtin_market_maker_step`` is the one shipped here, for a worker that hosts
only the built-in market maker; a compiled strategy API plugs in its own the same way.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hftshm.runtime import builtin_mm_step_nb as mm_nb
from hftshm.runtime import trading_cycle_nb as nb

ENV_SWITCH = "HFTSHM_COMPILED_CYCLE"  # "0": the Python duty cycle everywhere (comparison runs)
SLICE_NS = 2_000_000  # housekeeping cadence
MAX_SLICE_NS = 20_000_000  # ... even when work never stops
NEVER_NS = 1 << 62
RECHECK_NS = 1_000_000  # after a stage needed Python, run Python rounds this long before asking again


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1") != "0"


@dataclass
class StrategiesStep:
    """The strategies stage of the compiled cycle: ``step`` (njit, one argument: the bundle ``stage()``
    returns) and ``leave()``, called after every slice to hand state kept outside the worker's own
    arrays back to it (so its Python path can take over at any slice boundary)."""

    step: Any
    stage: Callable[..., Any]  # stage(force=False) -> bundle or None
    leave: Callable[[], None]
    housekeeping: Callable[[int], int]


def builtin_market_maker_step(worker) -> StrategiesStep:
    """``builtin_mm_step_nb.step`` over a ``StrategyWorker`` whose only strategy is the built-in
    market maker, running. Its bundle is None (the Python path runs) otherwise."""
    from hftshm.codes import StrategyState
    from hftshm.strategies.builtin.market_maker import MarketMaker

    clock = np.zeros(mm_nb.MmClock.SIZE, dtype=np.int64)
    view = np.zeros(mm_nb.MmView.SIZE, dtype=np.float64)
    C = worker._C
    index = mm_nb.MmCounters(C["events"], C["books"], C["reports"], C["intents"], C["backpressure_cycles"],
                             C["orphan_reports"])
    empty = np.zeros(0, dtype=np.int64)
    current: list = [None]  # the strategy of the slice running now (its state goes back after it)
    built: list = [None, None]  # (strategy, its bundle)

    def stage(force: bool = False):
        current[0] = None
        host = worker.host
        if len(host.slots) != 1 or len(worker.books_in) != 1 or len(worker.events_in) != 1 or not worker.reports_in:
            return None
        slot = next(iter(host.slots.values()))
        strategy = slot.strategy
        if type(strategy) is not MarketMaker:
            return None
        if not force and (getattr(worker, "restart", None) is not None or (worker._lockstep and not worker._ended)
                          or host.report_filter is not None or host.outbox_count or strategy.intent_count[0]
                          or slot.state != StrategyState.RUNNING
                          or any(ring.has_records() for ring in worker.control_in)):
            return None
        clock[mm_nb.MmClock.NOW_NS] = strategy.now_ns
        clock[mm_nb.MmClock.ORIGIN_TS_NS] = strategy.origin_ts_ns
        view[mm_nb.MmView.BEST_BID] = strategy.best_bid
        view[mm_nb.MmView.BEST_ASK] = strategy.best_ask
        view[mm_nb.MmView.MID] = strategy.mid
        current[0] = strategy
        if built[0] is strategy:
            return built[1]  # the same strategy, the same arrays: reuse the bundle
        books, events = worker.books_in[0], worker.events_in[0]
        symbol = strategy.symbol
        built[0] = strategy
        built[1] = mm_nb.MmStage(
            books.ctrl, books.records, events.ctrl, events.records, tuple(r.ctrl for r in worker.reports_in),
            tuple(r.records for r in worker.reports_in), worker.intents_out.ctrl, worker.intents_out.records,
            strategy.kernel_params, strategy.kernel_state, strategy.portfolio.pf, strategy.portfolio.orders,
            strategy.intents, strategy.intent_count, clock, view, int(strategy.strategy_id), int(symbol.symbol_id),
            float(symbol.tick_size), float(symbol.lot_size),
            worker._book_age if len(worker._book_age) else empty,
            worker._tick_to_intent if len(worker._tick_to_intent) else empty, worker.counters, index)
        return built[1]

    def leave():
        strategy = current[0]
        if strategy is None:
            return
        strategy.now_ns = int(clock[mm_nb.MmClock.NOW_NS])
        strategy.origin_ts_ns = int(clock[mm_nb.MmClock.ORIGIN_TS_NS])
        strategy.best_bid = float(view[mm_nb.MmView.BEST_BID])
        strategy.best_ask = float(view[mm_nb.MmView.BEST_ASK])
        strategy.mid = float(view[mm_nb.MmView.MID])
        worker.host.now_ns = max(worker.host.now_ns, strategy.now_ns)
        worker._intent_seq = worker.intents_out.producer_position

    def housekeeping(now_ns: int) -> int:
        worker._status()  # the strategy status table, at its own interval
        return 0

    return StrategiesStep(mm_nb.step, stage, leave, housekeeping)


class TradingCycle:
    """The compiled cycle of one process: its four workers and the slice limits."""

    def __init__(self, strategies: StrategiesStep, risk, oms, exchange, spin_ns: int, slice_ns: int = SLICE_NS):
        self.strategies = strategies
        self.risk, self.oms, self.exchange = risk, oms, exchange
        self.limits = nb.SliceLimits(int(slice_ns), max(int(slice_ns), MAX_SLICE_NS), int(spin_ns))
        self.slices = 0
        self.passes = 0
        self.in_slices_ns = 0  # time spent inside compiled slices
        self.between_ns = 0  # time between them (housekeeping, the wait strategy's park, Python rounds)
        self._left_ns = 0
        self._python_until_ns = 0
        self.python_rounds = 0  # rounds a stage needed its Python path

    @classmethod
    def for_workers(cls, workers: list, wait_strategy):
        """The compiled cycle for a process running exactly these workers: a ``TradingCycle`` for
        the four stage workers (composite), a ``StageCycle`` for one of them alone
        (process-per-worker), else None."""
        if not enabled():
            return None
        from hftshm.exchange.worker import ExchangeWorker
        from hftshm.oms.worker import OmsWorker
        from hftshm.risk.worker import RiskWorker
        from hftshm.strategies.worker import StrategyWorker

        found: dict[type, list] = {t: [] for t in (StrategyWorker, RiskWorker, OmsWorker, ExchangeWorker)}
        for worker in workers:
            for kind in found:
                if type(worker) is kind:
                    found[kind].append(worker)
        if len(workers) == 1 and any(found.values()):
            worker = workers[0]
            if type(worker) is StrategyWorker:
                return StageCycle(builtin_market_maker_step(worker), "strategies", spin_ns_of(wait_strategy))
            return StageCycle(worker_stage(worker), type(worker).__name__, spin_ns_of(wait_strategy))
        if len(workers) != 4 or any(len(v) != 1 for v in found.values()):
            return None
        strategies = builtin_market_maker_step(found[StrategyWorker][0])
        return cls(strategies, found[RiskWorker][0], found[OmsWorker][0], found[ExchangeWorker][0],
                   spin_ns_of(wait_strategy))

    def describe(self) -> str:
        return "strategies, risk, OMS and exchange run in one compiled cycle"

    def stages(self, force: bool = False) -> tuple | None:
        s = self.strategies.stage(force)
        if s is None:
            return None
        r, o, e = (self.risk.compiled_stage(force), self.oms.compiled_stage(force),
                   self.exchange.compiled_stage(force))
        if r is None or o is None or e is None:
            self.strategies.leave()
            return None
        return s, r, o, e

    def warm(self) -> bool:
        """Compile (or load from the cache) ``run_slice`` for these bundles' types, without running it:
        the first slice must not compile inside a step. False if a stage cannot be compiled at all
        (then the process keeps the Python duty cycle)."""
        from numba import typeof

        bundles = self.stages(force=True)
        if bundles is None:
            return False
        self.strategies.leave()
        types = (typeof(self.strategies.step),) + tuple(typeof(b) for b in bundles) + (typeof(self.limits),)
        nb.run_slice.compile(types)
        return True

    def run_slice(self):
        """One compiled slice, or None when a stage needs its Python path this round. After a None,
        the stages are asked again only ``RECHECK_NS`` later: asking costs microseconds of Python,
        which the Python rounds in between should not pay each time."""
        if self._python_until_ns and time.monotonic_ns() < self._python_until_ns:
            self.python_rounds += 1
            return None
        bundles = self.stages()
        if bundles is None:
            self.python_rounds += 1
            self._python_until_ns = time.monotonic_ns() + RECHECK_NS
            return None
        self._python_until_ns = 0
        entered = time.monotonic_ns()
        if self._left_ns:
            self.between_ns += entered - self._left_ns
        try:
            result = nb.run_slice(self.strategies.step, *bundles, self.limits)
        finally:
            self.strategies.leave()
        self._left_ns = time.monotonic_ns()
        self.in_slices_ns += self._left_ns - entered
        self.slices += 1
        self.passes += result.passes
        return result

    def summary(self) -> str:
        per_pass = self.in_slices_ns / self.passes if self.passes else 0.0
        return (f"compiled cycle: {self.slices} slices, {self.passes} passes ({per_pass:.0f} ns each, call "
                f"included), {self.in_slices_ns / 1e9:.2f} s in slices, {self.between_ns / 1e9:.2f} s between "
                f"them, {self.python_rounds} Python rounds")

    def housekeeping(self, now_ns: int) -> int:
        return (self.strategies.housekeeping(now_ns) + self.risk.compiled_housekeeping(now_ns)
                + self.oms.compiled_housekeeping(now_ns) + self.exchange.compiled_housekeeping(now_ns))


def worker_stage(worker) -> StrategiesStep:
    """Risk, the OMS or the exchange as a one-stage compiled cycle: its ``stage_nb.step`` over its
    ``compiled_stage()`` bundle."""
    from hftshm.exchange import stage_nb as exchange_stage
    from hftshm.exchange.worker import ExchangeWorker
    from hftshm.oms import stage_nb as oms_stage
    from hftshm.oms.worker import OmsWorker
    from hftshm.risk import stage_nb as risk_stage

    step = (oms_stage.step if isinstance(worker, OmsWorker)
            else exchange_stage.step if isinstance(worker, ExchangeWorker) else risk_stage.step)
    return StrategiesStep(step, worker.compiled_stage, lambda: None, worker.compiled_housekeeping)


class StageCycle:
    """process-per-worker: one stage's kernel looped in compiled code (``trading_cycle_nb.run_stage``),
    with the same slice ends, housekeeping and fallback as ``TradingCycle``."""

    def __init__(self, stage: StrategiesStep, name: str, spin_ns: int, slice_ns: int = SLICE_NS):
        self.stage = stage
        self.name = name
        self.limits = nb.SliceLimits(int(slice_ns), max(int(slice_ns), MAX_SLICE_NS), int(spin_ns))
        self.slices = self.passes = self.in_slices_ns = self.between_ns = self.python_rounds = 0
        self._left_ns = self._python_until_ns = 0

    def describe(self) -> str:
        return f"{self.name} runs its stage in a compiled loop"

    def warm(self) -> bool:
        from numba import typeof

        bundle = self.stage.stage(True)
        if bundle is None:
            return False
        self.stage.leave()
        nb.run_stage.compile((typeof(self.stage.step), typeof(bundle), typeof(self.limits)))
        return True

    def run_slice(self):
        if self._python_until_ns and time.monotonic_ns() < self._python_until_ns:
            self.python_rounds += 1
            return None
        bundle = self.stage.stage(False)
        if bundle is None:
            self.python_rounds += 1
            self._python_until_ns = time.monotonic_ns() + RECHECK_NS
            return None
        self._python_until_ns = 0
        entered = time.monotonic_ns()
        if self._left_ns:
            self.between_ns += entered - self._left_ns
        try:
            result = nb.run_stage(self.stage.step, bundle, self.limits)
        finally:
            self.stage.leave()
        self._left_ns = time.monotonic_ns()
        self.in_slices_ns += self._left_ns - entered
        self.slices += 1
        self.passes += result.passes
        return result

    def housekeeping(self, now_ns: int) -> int:
        return self.stage.housekeeping(now_ns)

    summary = TradingCycle.summary


def spin_ns_of(wait_strategy) -> int:
    """How long a slice spins idle before it returns for the wait strategy's yield or park."""
    name = getattr(wait_strategy, "name", "")
    if name == "busy-spin":
        return NEVER_NS
    if name == "spin-park":
        return max(int(wait_strategy.spin_us * 1e3), 1)
    return 50_000  # spin-yield: a yield every 50 us of idle time


def wait_after_idle(wait_strategy) -> None:
    """The rest of the wait strategy once a slice has spun: park on the doorbells (spin-park) or yield."""
    parker = getattr(wait_strategy, "parker", None)
    if parker is not None:
        parker.park()
    else:
        os.sched_yield()


def monotonic_ns() -> int:
    return time.monotonic_ns()
