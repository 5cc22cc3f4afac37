"""Risk's ring step as one kernel over a named bundle, for the compiled trading cycle.

``step(stage)`` does what ``RiskWorker.do_work`` does between an intent and its order on the
free-running path: reports first (they free exposure), then marks, then intents checked and
published as orders or rejects. What stays in Python (control messages, the kill switch scan,
housekeeping, a restart's rebuild, deterministic runs) runs between compiled slices; the worker
only offers its stage while none of that needs it (``RiskWorker.compiled_stage``).

Each ring group is a tuple with one entry per ring (numba: a UniTuple), so one compiled ``step``
serves any number of report, mark and intent rings.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from hftshm.risk.rehearsal_nb import RiskRehearsal, rehearse_when_due
from hftshm.risk.rings_nb import BACKPRESSURE, consume_intents, consume_marks, consume_reports
from hftshm.transport.clock_nb import monotonic_ns
from hftshm.transport.ring_nb import has_data

MARK_BATCH = 4096
REPORT_BATCH = 4096


class RiskStage(NamedTuple):
    """Everything the risk step touches. Arrays are the worker's own (shared with its Python side)."""

    report_ctrls: tuple  # execution_report inputs (from the OMS)
    report_records: tuple
    mark_ctrls: tuple  # book_snapshot inputs (marks)
    mark_records: tuple
    intent_ctrls: tuple  # order_intent inputs (the strategies)
    intent_records: tuple
    order_ctrl: np.ndarray  # approved orders, to the OMS
    order_records: np.ndarray
    reject_ctrl: np.ndarray  # rejects, to the strategies
    reject_records: np.ndarray
    decisions: np.ndarray  # scratch of the check kernel, one entry per intent of a batch
    targets: np.ndarray
    symbols: np.ndarray  # RiskState's tables
    strategies: np.ndarray
    account: np.ndarray
    table: np.ndarray
    replayed: np.ndarray
    control_words: np.ndarray  # the control block (kill switch, trading state)
    hop_histogram: np.ndarray  # strategy publish -> risk publish, ns (len 0: off)
    counters: np.ndarray  # the worker's status-row counters
    backpressure_counter: int  # index of backpressure_cycles in ``counters``
    batch: int  # most intents per check
    rehearsal: RiskRehearsal  # the twin idle passes rehearse the check on (risk.rehearsal_nb)


@njit(cache=True, nogil=True, _nrt=False)
def step(stage):
    """One risk duty cycle over its rings; returns records consumed (0: nothing to do)."""
    work = 0
    for k in range(len(stage.report_ctrls)):
        if has_data(stage.report_ctrls[k]):
            work += consume_reports(stage.report_ctrls[k], stage.report_records[k], REPORT_BATCH, stage.symbols,
                                    stage.account, stage.table, stage.control_words, stage.replayed)
    for k in range(len(stage.mark_ctrls)):
        if has_data(stage.mark_ctrls[k]):
            work += consume_marks(stage.mark_ctrls[k], stage.mark_records[k], MARK_BATCH, stage.symbols,
                                  stage.account, stage.control_words)
    for k in range(len(stage.intent_ctrls)):
        if not has_data(stage.intent_ctrls[k]):
            continue
        n = consume_intents(stage.intent_ctrls[k], stage.intent_records[k], stage.batch, stage.order_ctrl,
                            stage.order_records, stage.reject_ctrl, stage.reject_records, monotonic_ns(),
                            stage.decisions, stage.targets, stage.symbols, stage.strategies, stage.account,
                            stage.table, stage.control_words, stage.hop_histogram)
        if n == BACKPRESSURE:
            stage.counters[stage.backpressure_counter] += 1  # the OMS is behind: intents wait in their ring
        else:
            work += n
    return work


@njit(cache=True, nogil=True, _nrt=False)
def warm(stage, idle_ns):
    """Idle ``idle_ns``: rehearse the check when due (``rehearsal_nb``); returns 0 (no lines asked for)."""
    rehearse_when_due(stage.rehearsal, idle_ns, monotonic_ns())
    return 0
