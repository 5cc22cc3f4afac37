"""The duty-cycle runner: drives one or more workers in one process, as Agrona's AgentRunner and
CompositeAgent do.

Each cycle calls every active worker's step once, round-robin, then hands the total work done to
the process's wait strategy, which spins, yields or parks when it is zero. Several workers in one
process run with no kernel wake-up between them: with fewer cores than workers this is the cheap
placement (a futex wake costs 30-50 us here; a ring hop inside one process costs nanoseconds).

The supervisor speaks through each worker's status row: ``command`` RUN / QUIESCE / DRAIN / STOP. A
worker under DRAIN keeps consuming until a step does no work, then closes; under QUIESCE it steps
``on_drain`` the same way but stays open (the supervisor's first drain phase). Heartbeats are
written every cycle (one int64 store); a parked process wakes at least every park timeout to write it.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass

from hftshm.codes import WorkerCommand, WorkerState
from hftshm.runtime import status as st
from hftshm.runtime.trading_cycle import wait_after_idle
from hftshm.runtime.trading_cycle_nb import SliceEnd
from hftshm.runtime.worker import Worker

log = logging.getLogger("hftshm.runtime")


@dataclass
class WorkerSlot:
    worker: Worker
    name: str
    row: int
    closed: bool = False


class DutyCycleRunner:
    def __init__(self, slots: list[WorkerSlot], status: st.StatusTable, wait_strategy, pumps=(), compiled=None):
        self.slots = slots
        self.status = status
        self.wait = wait_strategy
        # extra steps run every cycle besides the workers (the ZeroMQ comparison transport's pump)
        self.pumps = list(pumps)
        # hftshm.runtime.trading_cycle.TradingCycle: the workers' stages in one compiled loop
        self.compiled = compiled

    def _compiled_round(self, active: list[WorkerSlot], words, now_ns: int) -> bool:
        """One compiled slice and the housekeeping after it, when every worker of the process is
        RUNNING under RUN and offers its stage. False: take the Python duty cycle this round."""
        RUN, RUNNING = int(WorkerCommand.RUN), int(WorkerState.RUNNING)
        for slot in active:
            if words[slot.row, st.COMMAND] != RUN or words[slot.row, st.STATE] != RUNNING:
                return False
        compiled = self.compiled
        result = compiled.run_slice()
        if result is None:
            return False
        now = time.monotonic_ns()
        compiled.housekeeping(now)
        first = active[0].row
        if result.work:
            words[first, st.WORK_COUNT] += result.work
        else:
            words[first, st.IDLE_COUNT] += 1
        for slot in active:
            words[slot.row, st.HEARTBEAT_NS] = now
        if result.end == SliceEnd.NEEDS_PYTHON:
            return False
        if result.end == SliceEnd.IDLE:
            wait_after_idle(self.wait)
        return True

    def run(self) -> int:
        """Run until every worker is closed; returns the process exit code (non-zero if one failed)."""
        words = self.status.words
        active = list(self.slots)
        monotonic_ns = time.monotonic_ns
        pumps = self.pumps
        first_cycle = True
        # plain ints: a numpy int64 compared with an IntEnum member takes ~7 us (numpy's slow path),
        # which made the loop's bookkeeping cost more than the workers' idle steps
        RUN, DRAIN, QUIESCE = int(WorkerCommand.RUN), int(WorkerCommand.DRAIN), int(WorkerCommand.QUIESCE)
        RUNNING = int(WorkerState.RUNNING)
        COMMAND, STATE = st.COMMAND, st.STATE
        while active:
            total = 0
            for pump in pumps:
                total += pump()
            now = monotonic_ns()
            if self.compiled is not None and not first_cycle and len(active) == len(self.slots):
                try:
                    if self._compiled_round(active, words, now):
                        continue
                except Exception:
                    log.error("compiled trading cycle failed:\n%s", traceback.format_exc())
                    for slot in active:
                        words[slot.row, st.STATE] = WorkerState.FAILED
                        words[slot.row, st.EXIT_CODE] = 1
                    self._close_all(active, failed=active[0])
                    return 1
                now = monotonic_ns()
            for slot in active:
                row = slot.row
                command = words[row, COMMAND]
                try:
                    if command == RUN:
                        done = slot.worker.do_work()
                        if done == 0 and words[row, STATE] == RUNNING and slot.worker.is_done():
                            words[row, st.STATE] = WorkerState.FINISHED
                    elif command == DRAIN:
                        words[row, st.STATE] = WorkerState.DRAINING
                        done = slot.worker.on_drain()
                        if done == 0:
                            self._close(slot, 0)
                    elif command == QUIESCE:
                        # as DRAIN, but stay open until the supervisor sees the whole pipeline quiet
                        words[row, st.STATE] = WorkerState.DRAINING
                        done = slot.worker.on_drain()
                    else:
                        done = 0
                        self._close(slot, 0)
                except Exception:
                    log.error("worker %s failed:\n%s", slot.name, traceback.format_exc())
                    words[row, st.STATE] = WorkerState.FAILED
                    words[row, st.EXIT_CODE] = 1
                    self._close_all(active, failed=slot)
                    return 1
                if done:
                    words[row, st.WORK_COUNT] += done
                else:
                    words[row, st.IDLE_COUNT] += 1
                words[row, st.HEARTBEAT_NS] = now
                total += done
            if first_cycle:
                # A first step may compile kernels (seconds to minutes on a busy machine, and in a
                # composite every worker's first step delays the others'): the supervisor judges
                # only RUNNING heartbeats, so workers turn RUNNING, with a fresh heartbeat, once
                # every worker of this process is past its first step.
                first_cycle = False
                fresh_ns = monotonic_ns()
                for slot in active:
                    if words[slot.row, st.STATE] == WorkerState.STARTING:
                        words[slot.row, st.HEARTBEAT_NS] = fresh_ns
                        words[slot.row, st.STATE] = WorkerState.RUNNING
            if any(slot.closed for slot in active):
                active = [slot for slot in active if not slot.closed]
            self.wait.idle(total)
        if self.compiled is not None:
            log.info("%s", self.compiled.summary())
        return 0

    def _close(self, slot: WorkerSlot, exit_code: int) -> None:
        if slot.closed:
            return
        slot.closed = True
        words = self.status.words
        try:
            slot.worker.on_close()
        except Exception:
            log.error("worker %s failed in on_close:\n%s", slot.name, traceback.format_exc())
            exit_code = 1
        words[slot.row, st.EXIT_CODE] = exit_code
        words[slot.row, st.STATE] = WorkerState.STOPPED if exit_code == 0 else WorkerState.FAILED
        log.info("worker %s closed (exit code %d)", slot.name, exit_code)

    def _close_all(self, active: list[WorkerSlot], failed: WorkerSlot) -> None:
        for slot in active:
            if slot is not failed:
                self._close(slot, 0)
        failed.closed = True
        try:
            failed.worker.on_close()
        except Exception:
            log.error("worker %s failed in on_close:\n%s", failed.name, traceback.format_exc())
