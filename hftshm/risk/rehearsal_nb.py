"""A rehearsal of risk's check on a private twin, run while risk is idle (numba kernel).

Why: as the OMS's (``oms.rehearsal_nb``): at a real-time pace the check's code has not run for
~0.6 ms when the next intent comes, and running it is what warms it. The twin re-runs, on private
rings and tables, the last mark and the last two intents the live risk took - the very kernels
``stage_nb.step`` calls (``consume_marks``, ``consume_intents``), compiled for the same argument
types - against a copy of the live limits, marks, token buckets and control words taken at the
start of each rehearsal, so its checks pass or fail as the live ones would now. Its open-order
table is its own (16 slots, reset from a template), and nothing it writes is shared.

    RiskRehearsal
        mark_* / intent_* / order_* / reject_*   private rings (ctrl, records)
        decisions, targets, symbols, strategies,
        account, table, control_words,
        hop_histogram                          the twin's arrays, typed as the live ones
        syncs        (twin array, live array) pairs copied first: limits, marks, account, controls
                     (the strategies' buckets: only the rows of the intents replayed)
        resets       (twin array, template) pairs: its table and its rings' headers
        live_marks_* / live_intents_*           the live rings the script is taken from, and the
        live_strategies                         live strategies' table (read only)
        clock, every_ns                         ``runtime.rehearsal_nb``
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from hftshm.risk.rings_nb import consume_intents, consume_marks
from hftshm.runtime.rehearsal_nb import copy_pairs, due, rehearsed
from hftshm.transport.clock_nb import monotonic_ns
from hftshm.transport.ring_nb import capacity, commit, consumer_position, try_claim

INTENTS = 2  # the last intents replayed: a quote is a bid and an ask


class RiskRehearsal(NamedTuple):
    mark_ctrl: np.ndarray
    mark_records: np.ndarray
    intent_ctrl: np.ndarray
    intent_records: np.ndarray
    order_ctrl: np.ndarray
    order_records: np.ndarray
    reject_ctrl: np.ndarray
    reject_records: np.ndarray
    decisions: np.ndarray
    targets: np.ndarray
    symbols: np.ndarray
    strategies: np.ndarray
    account: np.ndarray
    table: np.ndarray
    control_words: np.ndarray
    hop_histogram: np.ndarray
    syncs: tuple
    resets: tuple
    live_marks_ctrl: np.ndarray
    live_marks: np.ndarray
    live_intents_ctrl: np.ndarray
    live_intents: np.ndarray
    live_strategies: np.ndarray  # synced row by row: the table has a row per possible strategy id (1 MB)
    batch: int
    clock: np.ndarray
    every_ns: int  # 0: never


@njit(cache=True, nogil=True, _nrt=False)
def _replay_last(live_ctrl, live_records, ctrl, records, n):
    """Copy the last ``n`` records the live consumer took into the twin's ring; how many there were.
    Released slots: a producer wrapping the whole ring could be rewriting one as it is read, and
    the twin would check a torn record - its own business, never the live one's."""
    taken = consumer_position(live_ctrl)
    n = min(n, taken)
    if n <= 0:
        return 0
    seq = try_claim(ctrl, n)
    if seq < 0:
        return 0
    live_mask = capacity(live_ctrl) - 1
    mask = records.shape[0] - 1
    for i in range(n):
        records[(seq + i) & mask] = live_records[(taken - n + i) & live_mask]
    commit(ctrl, seq, n)
    return n


@njit(cache=True, nogil=True, _nrt=False)
def rehearse(r):
    """One rehearsal: sync and reset the twin, then its last mark and intents through the check."""
    copy_pairs(r.syncs)
    copy_pairs(r.resets)
    work = 0
    if _replay_last(r.live_marks_ctrl, r.live_marks, r.mark_ctrl, r.mark_records, 1) > 0:
        work += consume_marks(r.mark_ctrl, r.mark_records, 1, r.symbols, r.account, r.control_words)
    n = _replay_last(r.live_intents_ctrl, r.live_intents, r.intent_ctrl, r.intent_records, INTENTS)
    if n > 0:
        mask = r.intent_records.shape[0] - 1
        first = consumer_position(r.intent_ctrl)
        for i in range(n):  # the intents' strategies' buckets and limits, as the live ones are now
            strategy_id = r.intent_records[(first + i) & mask].strategy_id
            if strategy_id < r.strategies.shape[0]:
                r.strategies[strategy_id] = r.live_strategies[strategy_id]
        work += consume_intents(r.intent_ctrl, r.intent_records, r.batch, r.order_ctrl, r.order_records,
                                r.reject_ctrl, r.reject_records, monotonic_ns(), r.decisions, r.targets, r.symbols,
                                r.strategies, r.account, r.table, r.control_words, r.hop_histogram)
    return work


@njit(cache=True, nogil=True, _nrt=False)
def rehearse_when_due(r, idle_ns, now_ns):
    """``rehearse`` if risk has been idle ``every_ns`` and the last rehearsal is as old; 1 if it ran."""
    if not due(r.clock, r.every_ns, idle_ns, now_ns):
        return 0
    started_ns = monotonic_ns()
    rehearse(r)
    rehearsed(r.clock, now_ns, started_ns)
    return 1
