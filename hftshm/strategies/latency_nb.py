"""Latency samples the strategy worker records, so tick-to-order splits into its hops.

    book_age        feed publish of the oldest book snapshot in a polled batch -> the poll:
                    how long market data waited for the strategies (queueing + wake-up)
    tick_to_intent  feed publish of the tick behind a new order -> its intent published to risk:
                    book_age plus the strategies' own time

With ``risk.hop`` (intent -> order published to the OMS) and ``oms.hop`` (order -> OMS publish to
the exchange) they add up to ``oms.tick_to_order``.
"""

from __future__ import annotations

from numba import njit

from hftshm.codes import Action
from hftshm.metrics.histogram_nb import record
from hftshm.transport.clock_nb import monotonic_ns


@njit(cache=True)
def record_age(histogram, records):
    """Now minus the first record's ``publish_ts_ns`` (one sample per polled batch)."""
    if histogram.shape[0] == 0 or records.shape[0] == 0 or records[0].publish_ts_ns <= 0:
        return
    record(histogram, monotonic_ns() - records[0].publish_ts_ns)


@njit(cache=True)
def record_intents(histogram, intents, now_ns):
    """``now_ns`` (the publish stamp) minus ``origin_ts_ns`` of each new-order intent that has one."""
    if histogram.shape[0] == 0:
        return
    for i in range(intents.shape[0]):
        if intents[i].action == Action.NEW and intents[i].origin_ts_ns > 0:
            record(histogram, now_ns - intents[i].origin_ts_ns)
