"""A rehearsal of the OMS's order path on a private twin, run while the OMS is idle (numba kernel).

Why: at a real-time pace the next order comes ~0.6 ms after the last one, and by then the machine
code of the order path, its translations and the branch predictors' history of it are cold. The
idle prefetch (``runtime.keep_warm``, ``oms.next_lines_nb``) brings the data and the code's bytes
back, and still the OMS's part of a tick took 10.6 us from cold caches against 2.8 us warm
(``tools/tick_pass_cpu.py``, in one process); with the same tick through a twin of the stages just
before it, 2.5 us. What was cold was the code's execution, not its data: only running it warms it.

So the OMS rehearses: ``cycle_nb.cycle`` - the very function the OMS stage calls, compiled for the
very same argument types, so the same machine code - takes a scripted quote (a new bid and a new
ask) from a private input ring, applies it to a private order table and publishes to private
rings. Nothing of it is shared: the twin (``oms.rehearsal.twin_of``) has its own small table,
statistics, histograms and rings in this process's memory, reset from a template before every
rehearsal, and the live OMS's state, rings and counters are never touched.

    OmsRehearsal
        book .. batch   the twin's ``cycle`` arguments (its table, words, staging, private rings,
                        histograms, counters), typed as the live OMS's
        resets      (array, template) pairs: every array a rehearsal writes and its state before
                    the first rehearsal, copied back before each
        script      the quote's ``order`` records
        clock       int64 [last rehearsal ns, rehearsals] (``runtime.rehearsal_nb``)

When: from the idle loop (``stage_nb.warm``), once the OMS has been idle ``every_ns`` and then at
most every ``every_ns``: one rehearsal takes a few microseconds, and a tick that arrives during one
waits for it, so a busy OMS never rehearses.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from hftshm.oms.cycle_nb import cycle
from hftshm.runtime.rehearsal_nb import copy_pairs, due, rehearsed
from hftshm.transport.clock_nb import monotonic_ns
from hftshm.transport.ring_nb import commit, try_claim


class OmsRehearsal(NamedTuple):
    book: tuple
    ctl: tuple
    out: tuple
    rings: tuple  # cycle_nb.OmsRings, private
    report_ctrls: tuple
    report_records: tuple
    hop_histogram: np.ndarray
    tick_to_order: np.ndarray
    counters: np.ndarray
    batch: int
    resets: tuple  # (array, its state before any rehearsal) pairs
    script: np.ndarray  # ``order`` records: the quote
    clock: np.ndarray
    every_ns: int  # 0: never


@njit(cache=True, nogil=True, _nrt=False)
def rehearse(r, now_ns, wall_ns):
    """One rehearsal: reset the twin, put the quote in its input ring, run one OMS cycle on it.
    Returns the records the cycle handled (the quote's size, unless something is off)."""
    copy_pairs(r.resets)
    n = r.script.shape[0]
    seq = try_claim(r.rings.orders_ctrl, n)
    if seq < 0:
        return 0
    mask = r.rings.orders.shape[0] - 1
    for i in range(n):
        r.rings.orders[(seq + i) & mask] = r.script[i]
    commit(r.rings.orders_ctrl, seq, n)
    return cycle(r.book, r.ctl, r.out, r.rings, r.report_ctrls, r.report_records, r.hop_histogram, r.tick_to_order,
                 r.counters, r.batch, now_ns, wall_ns)


@njit(cache=True, nogil=True, _nrt=False)
def rehearse_when_due(r, idle_ns, now_ns, wall_ns):
    """``rehearse`` if the OMS has been idle ``every_ns`` and the last rehearsal is as old; 1 if it ran."""
    if not due(r.clock, r.every_ns, idle_ns, now_ns):
        return 0
    started_ns = monotonic_ns()
    rehearse(r, now_ns, wall_ns)
    rehearsed(r.clock, now_ns, started_ns)
    return 1
