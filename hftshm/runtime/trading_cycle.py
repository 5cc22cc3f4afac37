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

``StrategiesStep`` pairs a stage's njit ``step(bundle) -> work`` with a function that builds its
bundle from the worker (or returns None: the worker then runs its Python path).
``compiled_strategies_step`` runs every compiled strategy of the strategies worker
(``strategies_stage_nb``) when all of them are compiled and running; ``run_slice`` calls that stage
directly (so it can be cached), ``run_stage`` takes any stage's step.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hftshm.runtime import keep_warm
from hftshm.runtime import strategies_stage_nb as st_nb
from hftshm.runtime import trading_cycle_nb as nb
from hftshm.transport import park_nb

ENV_SWITCH = "HFTSHM_COMPILED_CYCLE"  # "0": the Python duty cycle everywhere (comparison runs)
SLICE_NS = 2_000_000  # housekeeping cadence
MAX_SLICE_NS = 20_000_000  # ... even when work never stops
NEVER_NS = 1 << 62
log = logging.getLogger("hftshm.runtime")
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
    # the bundle's numba type: the strategies' callbacks typed by signature (FunctionType), never
    # as the dispatcher objects ``typeof`` would see. A dispatcher type in a cached kernel's signature
    # is pickled into its cache index as the dispatcher itself: every process loading that index
    # rebuilds and recompiles it, and numba keeps only its 128 latest rebuilt dispatchers alive, so
    # the next save of the index fails on a dead one ("underlying object has vanished").
    numba_type: Callable[[Any], Any] | None = None
    # process-per-worker: idle, the lines the stage's next work will touch (njit, the bundle -> lines)
    ahead: Any = None


def compiled_strategies_step(worker) -> StrategiesStep:
    """``strategies_stage_nb.step`` over a ``StrategyWorker`` whose strategies are all compiled
    (``CompiledStrategy`` with no Python override on the compiled path) and running. Its bundle is
    None (the worker's Python path runs) otherwise: a Python strategy, a paused or failed one, a
    restart's rebuild, a deterministic run, control messages or intents waiting in the host."""
    from hftshm.codes import StrategyState
    from hftshm.strategies import slots_nb as sn
    from hftshm.strategies import step_nb
    from hftshm.strategies.compiled import CompiledStrategy, fault_text
    from hftshm.strategies.slots import step_bundle

    C = worker._C
    index = st_nb.StageCounters(C["events"], C["books"], C["reports"], C["intents"], C["backpressure_cycles"])
    empty = np.zeros(0, dtype=np.int64)
    built: list = [None, None, None, None]  # (the strategies' identities, the stage, the host slots, its bundle type)
    active = [False]
    changed = [False]

    def stage(force: bool = False):
        active[0] = False
        host = worker.host
        slots = list(host.slots.values())
        if (not slots or len(worker.books_in) != 1 or len(worker.events_in) != 1 or not worker.reports_in
                or worker.intents_out is None):
            return None
        for slot in slots:
            strategy = slot.strategy
            if (not isinstance(strategy, CompiledStrategy) or not type(strategy).compiled_only()
                    or slot.state != StrategyState.RUNNING):
                return None
        if not force and (getattr(worker, "restart", None) is not None or (worker._lockstep and not worker._ended)
                          or host.report_filter is not None or host.outbox_count
                          or any(ring.has_records() for ring in worker.control_in)):
            return None
        key = tuple(id(slot.strategy) for slot in slots)
        if built[0] is not None and built[0] != key:
            # a strategy was added or removed: run_slice is compiled for the strategy set it was
            # warmed with, and compiling it for another inside a step would stall every running
            # strategy for seconds. The Python path runs this set (as it runs Python strategies);
            # the compiled cycle comes back if the warmed set returns.
            if not changed[0]:
                changed[0] = True
                log.info("strategies changed at run time: they run on the worker's Python path "
                         "(the compiled cycle was compiled for the strategies it started with)")
            return None
        if built[0] is None:
            strategies = [slot.strategy for slot in slots]
            bundle, run = step_bundle(strategies)
            books, events = worker.books_in[0], worker.events_in[0]
            built[0] = key
            built[2] = slots
            built[3] = run.bundle_type
            built[1] = st_nb.StrategiesStage(
                books.ctrl, books.records, events.ctrl, events.records, tuple(r.ctrl for r in worker.reports_in),
                tuple(r.records for r in worker.reports_in), worker.intents_out.ctrl, worker.intents_out.records,
                bundle, worker._book_age if len(worker._book_age) else empty,
                worker._tick_to_intent if len(worker._tick_to_intent) else empty, worker.counters, index)
        bundle = built[1].strategies
        bundle.clock[step_nb.CLOCK_NOW] = max(int(bundle.clock[step_nb.CLOCK_NOW]), int(host.now_ns))
        for compiled_slot, slot in zip(bundle.slots, built[2]):
            market = compiled_slot.market
            market[sn.M_BID] = slot.strategy.best_bid
            market[sn.M_ASK] = slot.strategy.best_ask
        active[0] = True
        return built[1]

    def leave():
        if not active[0]:
            return
        active[0] = False
        stage_bundle = built[1]
        bundle = stage_bundle.strategies
        host = worker.host
        host.now_ns = max(host.now_ns, int(bundle.clock[step_nb.CLOCK_NOW]))
        for compiled_slot, slot in zip(bundle.slots, built[2]):
            strategy = slot.strategy
            market = compiled_slot.market
            strategy.best_bid = float(market[sn.M_BID])
            strategy.best_ask = float(market[sn.M_ASK])
            strategy.now_ns = max(int(getattr(strategy, "now_ns", 0) or 0), int(bundle.clock[step_nb.CLOCK_NOW]))
            fault = int(compiled_slot.ids[sn.ID_FAULT])
            if compiled_slot.ids[sn.ID_RUNNING] == 0 and fault and slot.state == StrategyState.RUNNING:
                # the step paused it and queued the cancels of its orders; the host names it
                slot.errors += 1
                slot.last_error = f"StrategyError: {fault_text(fault)}"
                slot.state = StrategyState.FAILED
                host.failures.append((slot.name, slot.last_error))
                log.error("strategy %s faulted in the compiled cycle and is paused (the others keep running): %s",
                          slot.name, slot.last_error)
                # the next stage() sees a failed strategy and leaves the worker to its Python path
        # intents that did not fit the ring go back to the host's outbox, in order, for the Python path
        n = int(bundle.icount[0])
        if n:
            queued = bundle.intents[:n].copy()
            bundle.icount[0] = 0
            end = host.outbox_count + n
            if end > len(host.outbox):
                grown = np.zeros(max(2 * len(host.outbox), end), dtype=host.outbox.dtype)
                grown[:host.outbox_count] = host.outbox[:host.outbox_count]
                host.outbox = grown
            host.outbox[host.outbox_count:end] = queued
            host.outbox_count = end
        worker._intent_seq = worker.intents_out.producer_position

    def housekeeping(now_ns: int) -> int:
        # a hot add compiling in another process is added when that process ends: its end is polled
        # here, or the add would wait for a Python round that a running compiled cycle never takes
        work = worker._control() if getattr(worker, "_compiling", None) else 0
        worker._status()  # the strategy status table, at its own interval
        return work

    def numba_type(stage_bundle):
        from numba import typeof, types

        fields = [built[3] if name == "strategies" else typeof(value)
                  for name, value in zip(st_nb.StrategiesStage._fields, stage_bundle)]
        return types.NamedTuple(fields, st_nb.StrategiesStage)

    return StrategiesStep(st_nb.step, stage, leave, housekeeping, numba_type)


def _entry(kernel, argtypes: tuple):
    """``kernel`` compiled (or loaded) for exactly ``argtypes``; its entry point, called with them
    (a call through the dispatcher would type the arguments again, callbacks as dispatchers)."""
    kernel.compile(argtypes)
    return kernel.overloads[argtypes].entry_point


def _bundle_type(step: StrategiesStep, bundle):
    from numba import typeof

    return step.numba_type(bundle) if step.numba_type is not None else typeof(bundle)


class TradingCycle:
    """The compiled cycle of one process: its four workers and the slice limits."""

    def __init__(self, strategies: StrategiesStep, risk, oms, exchange, spin_ns: int, slice_ns: int = SLICE_NS,
                 parking=None):
        from hftshm.runtime import strategies_stage_nb

        if strategies.step is not strategies_stage_nb.step:  # run_slice calls that stage itself
            raise ValueError("the compiled cycle runs strategies_stage_nb.step; use StageCycle for another step")
        self.strategies = strategies
        self.risk, self.oms, self.exchange = risk, oms, exchange
        self.limits = nb.SliceLimits(int(slice_ns), max(int(slice_ns), MAX_SLICE_NS), int(spin_ns),
                                     keep_warm.warm_ns())
        # the bundles' working set (keep_warm), rebuilt with them; its counts stay the process's
        self.warm_set = nb.WarmSet(_EMPTY_WARM_SET.regions, _EMPTY_WARM_SET.rings, np.zeros(2, np.int64))
        # the slice parks itself when idle (spin-park); a disabled bundle: it returns IDLE to Python
        self.parking = parking if parking is not None else park_bundle_of(None)
        self.slices = 0
        self.passes = 0
        self.in_slices_ns = 0  # time spent inside compiled slices
        self.between_ns = 0  # time between them (housekeeping, the wait strategy's park, Python rounds)
        self._left_ns = 0
        self._python_until_ns = 0
        self.python_rounds = 0  # rounds a stage needed its Python path
        self._run = nb.run_slice  # warm() replaces it with the entry point for the bundles' exact types
        self._types: tuple = ()
        self._bundle_ids: tuple = ()

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
                return StageCycle(compiled_strategies_step(worker), "strategies", spin_ns_of(wait_strategy))
            return StageCycle(worker_stage(worker), type(worker).__name__, spin_ns_of(wait_strategy))
        if len(workers) != 4 or any(len(v) != 1 for v in found.values()):
            return None
        strategies = compiled_strategies_step(found[StrategyWorker][0])
        return cls(strategies, found[RiskWorker][0], found[OmsWorker][0], found[ExchangeWorker][0],
                   spin_ns_of(wait_strategy), parking=park_bundle_of(wait_strategy))

    def describe(self) -> str:
        where = "in compiled code" if self.parking.enabled else "in Python"
        return f"strategies, risk, OMS and exchange run in one compiled cycle (idle, it parks {where})"

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
        bundles = self.stages(force=True)
        if bundles is None:
            return False
        self.strategies.leave()
        self._types = self._types_of(bundles)
        self._run = _entry(nb.run_slice, self._types)
        self._bundle_ids = tuple(id(b) for b in bundles)
        self.warm_set = self._working_set(bundles)
        return True

    def _working_set(self, bundles) -> nb.WarmSet:
        self._warm_bundles = bundles  # the table holds their addresses: they stay alive with it
        return _warm_set(nb.run_slice, self._types, bundles, self.limits, self.warm_set, "compiled cycle")

    def _types_of(self, bundles) -> tuple:
        from numba import typeof

        return ((_bundle_type(self.strategies, bundles[0]),)
                + tuple(typeof(b) for b in bundles[1:]) + (typeof(self.limits), typeof(self.parking),
                                                           typeof(_EMPTY_WARM_SET)))

    def _entry_for(self, bundles):
        """The entry point for these bundles: the warmed one while they are the warmed objects (or of
        the same types; checked only when a stage rebuilt its bundle, by identity, nanoseconds)."""
        ids = tuple(id(b) for b in bundles)
        if ids != self._bundle_ids:
            self._bundle_ids = ids
            types = self._types_of(bundles)
            if types != self._types:
                log.warning("compiled cycle: a stage's bundle changed type; compiling run_slice for it")
                self._types = types
                self._run = _entry(nb.run_slice, types)
            self.warm_set = self._working_set(bundles)
        return self._run

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
            result = self._entry_for(bundles)(*bundles, self.limits, self.parking, self.warm_set)
        finally:
            self.strategies.leave()
        self._left_ns = time.monotonic_ns()
        self.in_slices_ns += self._left_ns - entered
        self.slices += 1
        self.passes += result.passes
        return result

    def summary(self) -> str:
        per_pass = self.in_slices_ns / self.passes if self.passes else 0.0
        parking = getattr(self, "parking", None)
        parks = (f", {int(parking.counts[park_nb.PARKS])} parks in slices "
                 f"({int(parking.counts[park_nb.WAKEUPS])} woken by a doorbell)") if parking is not None else ""
        warm = getattr(self, "warm_set", None)
        warmed = (f", {int(warm.counts[0])} idle prefetches of the working set "
                  f"({int(warm.counts[1])} cache lines)") if warm is not None else ""
        oms, risk = getattr(self, "oms", None), getattr(self, "risk", None)
        rehearsed = (f", {risk.rehearsals} risk and {oms.rehearsals} OMS rehearsals"
                     if hasattr(oms, "rehearsals") and hasattr(risk, "rehearsals") else "")
        return (f"compiled cycle: {self.slices} slices, {self.passes} passes ({per_pass:.0f} ns each, call "
                f"included), {self.in_slices_ns / 1e9:.2f} s in slices, {self.between_ns / 1e9:.2f} s between "
                f"them, {self.python_rounds} Python rounds" + parks + warmed + rehearsed)

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
    ahead = (oms_stage.warm if isinstance(worker, OmsWorker)
             else nb.no_lines_ahead if isinstance(worker, ExchangeWorker) else risk_stage.warm)
    return StrategiesStep(step, worker.compiled_stage, lambda: None, worker.compiled_housekeeping, ahead=ahead)


class StageCycle:
    """process-per-worker: one stage's kernel looped in compiled code (``trading_cycle_nb.run_stage``),
    with the same slice ends, housekeeping and fallback as ``TradingCycle``."""

    def __init__(self, stage: StrategiesStep, name: str, spin_ns: int, slice_ns: int = SLICE_NS):
        self.stage = stage
        self.name = name
        self.limits = nb.SliceLimits(int(slice_ns), max(int(slice_ns), MAX_SLICE_NS), int(spin_ns),
                                     keep_warm.warm_ns())
        self.warm_set = nb.WarmSet(_EMPTY_WARM_SET.regions, _EMPTY_WARM_SET.rings, np.zeros(2, np.int64))
        self.slices = self.passes = self.in_slices_ns = self.between_ns = self.python_rounds = 0
        self._left_ns = self._python_until_ns = 0
        self._run = nb.run_stage  # warm() replaces it with the entry point for the bundle's exact types
        self._ahead = stage.ahead if stage.ahead is not None else nb.no_lines_ahead
        self._types: tuple = ()
        self._bundle_id = 0

    def describe(self) -> str:
        return f"{self.name} runs its stage in a compiled loop"

    def warm(self) -> bool:
        from numba import typeof

        bundle = self.stage.stage(True)
        if bundle is None:
            return False
        self.stage.leave()
        self._types = self._types_of(bundle)
        self._run = _entry(nb.run_stage, self._types)
        self._bundle_id = id(bundle)
        self.warm_set = self._working_set(bundle)
        return True

    def _types_of(self, bundle) -> tuple:
        from numba import typeof

        return (typeof(self.stage.step), typeof(self._ahead), _bundle_type(self.stage, bundle), typeof(self.limits),
                typeof(_EMPTY_WARM_SET))

    def _working_set(self, bundle) -> nb.WarmSet:
        self._warm_bundle = bundle  # the table holds its addresses: it stays alive with it
        return _warm_set(nb.run_stage, self._types, bundle, self.limits, self.warm_set,
                         f"compiled loop of {self.name}")

    def _entry_for(self, bundle):
        if id(bundle) != self._bundle_id:  # the stage rebuilt its bundle: the same types, or compile
            self._bundle_id = id(bundle)
            types = self._types_of(bundle)
            if types != self._types:
                log.warning("compiled loop of %s: its bundle changed type; compiling run_stage for it", self.name)
                self._types = types
                self._run = _entry(nb.run_stage, types)
            self.warm_set = self._working_set(bundle)
        return self._run

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
            result = self._entry_for(bundle)(self.stage.step, self._ahead, bundle, self.limits, self.warm_set)
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


_EMPTY_WARM_SET = nb.WarmSet(np.zeros((0, 3), np.int64), np.zeros((0, 4), np.int64), np.zeros(2, np.int64))


def _warm_set(kernel, types: tuple, bundles, limits, current: nb.WarmSet, what: str) -> nb.WarmSet:
    """The working set a loop prefetches when idle (``keep_warm``): the bundles' arrays and the code
    of ``kernel`` as compiled for ``types``; the counts carry on from ``current``."""
    if not limits.warm_ns:
        return current
    compiled = kernel.overloads.get(types)
    regions, rings = keep_warm.working_set(bundles, [keep_warm.entry_address(compiled)] if compiled else [])
    said = f"{what} prefetches, when idle, {keep_warm.describe(regions, rings)} every {limits.warm_ns // 1000} us"
    if said != _warm_said.get(what):  # once, and again only if it changed (bundles are rebuilt often)
        _warm_said[what] = said
        log.info(said)
    return nb.WarmSet(regions, rings, current.counts)


_warm_said: dict[str, str] = {}


def spin_ns_of(wait_strategy) -> int:
    """How long a slice spins idle before it returns for the wait strategy's yield or park."""
    name = getattr(wait_strategy, "name", "")
    if name == "busy-spin":
        return NEVER_NS
    if name == "spin-park":
        return max(int(wait_strategy.spin_us * 1e3), 1)
    return 50_000  # spin-yield: a yield every 50 us of idle time


def park_bundle_of(wait_strategy) -> park_nb.ParkBundle:
    """What ``run_slice`` parks on when idle: spin-park's doorbells (the rings its parker waits on),
    when every ring's control words have one numba type and the kernel has ``futex_waitv``.
    Otherwise a disabled bundle: the slice returns IDLE and the wait strategy waits in Python."""
    from numba import typeof

    from hftshm.transport import barrier
    from hftshm.transport import descriptor as d
    from hftshm.transport.doorbell import HAVE_FUTEX_WAITV

    parker = getattr(wait_strategy, "parker", None)
    commands = {barrier.EXPEDITED: barrier.MEMBARRIER_CMD_GLOBAL_EXPEDITED, barrier.GLOBAL: barrier.MEMBARRIER_CMD_GLOBAL}
    if (parker is not None and HAVE_FUTEX_WAITV and 0 < len(parker.ctrls) <= 128
            and len({typeof(c) for c in parker.ctrls}) == 1 and parker.ctrls[0].dtype == np.int64):
        return park_nb.park_bundle(parker.ctrls, parker.timeout_s, commands.get(barrier.mode(), 0))
    if parker is not None:
        log.info("compiled cycle: idle slices park in Python (futex_waitv %s, %d rings of types %s)",
                 "present" if HAVE_FUTEX_WAITV else "missing", len(parker.ctrls),
                 ", ".join(sorted({str(typeof(c)) for c in parker.ctrls})))
    return park_nb.park_bundle([np.zeros(d.HEADER_WORDS, np.int64)], 0.0, 0, enabled=False)


def wait_after_idle(wait_strategy) -> None:
    """The rest of the wait strategy once a slice has spun: park on the doorbells (spin-park) or yield."""
    parker = getattr(wait_strategy, "parker", None)
    if parker is not None:
        parker.park()
    else:
        os.sched_yield()


def monotonic_ns() -> int:
    return time.monotonic_ns()
