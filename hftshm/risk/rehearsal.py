"""Build risk's rehearsal twin (``rehearsal_nb``: why, and what a rehearsal does).

Private rings (``Ring.private``) for the mark, the intents, the orders and the rejects; a private
16-slot open-order table; private copies of the limits, marks, buckets and control words, synced
from the live ones before every rehearsal; the live stage's first mark ring and first intent ring
as the source of the script. ``runtime.rehearsal.same_types`` decides whether it may run.
"""

from __future__ import annotations

import numpy as np

from hftshm.risk import orders_nb
from hftshm.risk.rehearsal_nb import RiskRehearsal
from hftshm.runtime.rehearsal import Twin, rehearse_ns, same_types
from hftshm.transport.ring import Ring

TWIN_RING = 16  # records per private ring: a rehearsal publishes at most a mark's and two intents' worth
TWIN_TABLE = 16


def twin_of(live, every_ns: int | None = None) -> Twin:
    """A twin of ``live`` (a ``risk.stage_nb.RiskStage``). One whose arrays cannot be typed as the
    live risk's, or whose live stage has no mark or intent ring, never rehearses."""
    marks, intents, orders, rejects = (Ring.private(layout, TWIN_RING) for layout in
                                       ("book_snapshot", "order_intent", "order", "execution_report"))
    rings = [marks, intents, orders, rejects]
    table = orders_nb.new_table(TWIN_TABLE)
    symbols, strategies, account = live.symbols.copy(), live.strategies.copy(), live.account.copy()
    control_words = live.control_words.copy()
    resets = ((table, table.copy()), *((ring.ctrl, ring.ctrl.copy()) for ring in rings))
    # the strategies' table has a row per possible strategy id (1 MB): synced by row in the kernel
    syncs = ((symbols, live.symbols), (account, live.account), (control_words, live.control_words))
    has_inputs = len(live.mark_ctrls) > 0 and len(live.intent_ctrls) > 0
    source = (live.mark_ctrls[0], live.mark_records[0], live.intent_ctrls[0], live.intent_records[0]) if has_inputs \
        else (marks.ctrl, marks.records, intents.ctrl, intents.records)
    bundle = RiskRehearsal(marks.ctrl, marks.records, intents.ctrl, intents.records, orders.ctrl, orders.records,
                           rejects.ctrl, rejects.records, np.zeros_like(live.decisions), np.zeros_like(live.targets),
                           symbols, strategies, account, table, control_words, np.zeros_like(live.hop_histogram),
                           syncs, resets, *source, live.strategies, live.batch, np.zeros(2, np.int64),
                           rehearse_ns() if every_ns is None else int(every_ns))
    matched = has_inputs and same_types(
        (live.mark_ctrls[0], live.mark_records[0], live.intent_ctrls[0], live.intent_records[0], live.order_ctrl,
         live.order_records, live.reject_ctrl, live.reject_records, live.decisions, live.targets, live.symbols,
         live.strategies, live.account, live.table, live.control_words, live.hop_histogram),
        bundle[:16])
    if not matched:  # a rehearsal would run another compilation of the check: of no use, never run
        bundle = bundle._replace(every_ns=0)
    return Twin(bundle, rings, matched)
