"""Build the OMS's rehearsal twin (``rehearsal_nb``: why, and what a rehearsal does).

The twin is an ``OmsEngine`` of ``TWIN_ORDERS`` slots with private rings (``Ring.private``) in
place of the shared ones, histograms and counters of its own, and a scripted quote. Every array is
typed as the live OMS's (the same dtypes, ranks and ring count), so ``cycle_nb.cycle`` runs the
same compiled code on it; ``twin_of`` checks that, and a twin that does not match never rehearses
(it would warm code the live OMS never runs).
"""

from __future__ import annotations

import numpy as np

from hftshm.codes import Action, OrderType, Side, TimeInForce
from hftshm.oms import cycle_nb
from hftshm.oms.engine import ORDER, OmsEngine
from hftshm.oms.rehearsal_nb import OmsRehearsal
from hftshm.runtime.rehearsal import Twin, rehearse_ns, same_types
from hftshm.transport.ring import Ring

TWIN_ORDERS = 16  # a rehearsal resets the twin's table: small is cheap
TWIN_RING = 64  # records per private ring: a rehearsal's quote and what it produces fit many times


def quote(strategy_id: int = 1, symbol_id: int = 1) -> np.ndarray:
    """The scripted input: a new bid and a new ask, as a market maker's requote sends them."""
    script = ORDER.zeros(2)
    for i, (side, price) in enumerate(((Side.BUY, 100.0), (Side.SELL, 101.0))):
        rec = script[i]
        rec["action"] = Action.NEW
        rec["side"] = side
        rec["order_type"] = OrderType.LIMIT
        rec["tif"] = TimeInForce.GTC
        rec["price"] = price
        rec["qty"] = 1.0
        rec["strategy_id"] = strategy_id
        rec["symbol_id"] = symbol_id
        rec["client_order_id"] = i + 1
        rec["ts_ns"] = 1  # stamped as risk stamps: the hop and tick-to-order branches run too
        rec["origin_ts_ns"] = 1
    return script


def twin_of(live, every_ns: int | None = None) -> Twin:
    """A twin of ``live`` (an ``oms.stage_nb.OmsStage`` or anything with its fields). One whose
    arrays cannot be typed as the live OMS's never rehearses (``every_ns`` 0, ``matched`` False)."""
    engine = OmsEngine(max_orders=TWIN_ORDERS, timeouts_ns=live.ctl[5].copy(), epoch=1,
                       staging=min(live.out[0].shape[0], TWIN_RING))
    rings = [Ring.private("order", TWIN_RING), Ring.private("execution_report", TWIN_RING),
             Ring.private("order", TWIN_RING), Ring.private("order_event", TWIN_RING)]
    outs = [Ring.private("execution_report", TWIN_RING) for _ in live.report_ctrls]
    own = cycle_nb.OmsRings(*(array for ring in rings for array in (ring.ctrl, ring.records)))
    hop = np.zeros_like(live.hop_histogram)
    tick_to_order = np.zeros_like(live.tick_to_order)
    counters = np.zeros_like(live.counters)
    # what a rehearsal changes and reads back: the table, its words and statistics, the staging
    # counts, the ring cursors. Records and staged records are overwritten before they are read, and
    # the histograms and counters are only added to (nobody reads the twin's): no reset
    written = [*engine.book, *engine.ctl[:3], engine.out[3], *(ring.ctrl for ring in rings + outs)]
    resets = tuple((array, array.copy()) for array in _unique(written))
    bundle = OmsRehearsal(engine.book, engine.ctl, engine.out, own, tuple(r.ctrl for r in outs),
                          tuple(r.records for r in outs), hop, tick_to_order, counters, live.batch, resets,
                          quote(), np.zeros(2, np.int64), rehearse_ns() if every_ns is None else int(every_ns))
    live_args = (live.book, live.ctl, live.out, live.rings, live.report_ctrls, live.report_records,
                 live.hop_histogram, live.tick_to_order, live.counters)
    twin_args = bundle[:9]
    matched = same_types(live_args, twin_args)
    if not matched:  # a rehearsal would run another compilation of the cycle: of no use, never run
        bundle = bundle._replace(every_ns=0)
    return Twin(bundle, rings + outs, matched, engine)


def _unique(arrays):
    seen = set()
    for array in arrays:
        if id(array) not in seen:
            seen.add(id(array))
            yield array
