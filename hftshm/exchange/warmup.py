"""Warm the exchange worker's kernels in ``on_start`` with the argument types of its steps.

``ExchangeSimulator`` calls its kernels only for non-empty batches, so a warm-up with empty
arrays compiles nothing. Here a scratch simulator takes one order and one market event built from
the rings' own layouts (the same numba types as ring views), is flushed, and the hop histogram's
``record_many`` runs once on a scratch histogram.
"""

from __future__ import annotations

import numpy as np

from hftshm.codes import Action, EventFlag, EventKind, OrderType, Side, TimeInForce
from hftshm.metrics.histogram import new_histogram
from hftshm.metrics.histogram_nb import record_many
from hftshm.runtime import warm_types

warm_types.install()  # the signatures every other process compiles and caches: one per argument type


def warm_exchange(sim, order_layout, event_layout) -> None:
    """Drive ``sim`` (a scratch ``ExchangeSimulator``, discarded afterwards) through every kernel."""
    orders = order_layout.zeros(2)
    for i, side in enumerate((Side.BUY, Side.SELL)):
        o = orders[i]
        o["market_ts_ns"], o["order_id"], o["client_order_id"] = 1, i + 1, i + 1
        o["price"], o["qty"], o["strategy_id"], o["symbol_id"] = 100.0, 1.0, 1, 1
        o["action"], o["side"], o["order_type"], o["tif"] = Action.NEW, side, OrderType.LIMIT, TimeInForce.GTC
    events = event_layout.zeros(2)
    for i, side in enumerate((Side.BUY, Side.SELL)):
        e = events[i]
        e["exch_ts_ns"], e["price"], e["qty"], e["symbol_id"] = 2, 100.0, 1.0, 1
        e["kind"], e["side"], e["flags"] = EventKind.TRADE if i else EventKind.DEPTH, side, EventFlag.LAST_IN_MESSAGE
    sim.on_orders(orders)
    sim.on_market(events)
    sim.advance_to(3)
    sim.flush()
    record_many(new_histogram(), np.zeros(1, dtype=np.int64))
