"""The headline latency histogram counts new orders with a feed stamp, nothing else."""

import time

from hftshm.codes import Action
from hftshm.metrics.histogram import new_histogram, summarize
from hftshm.oms import cycle_nb
from hftshm.transport.layout import load


def test_tick_to_order_counts_new_orders_with_an_origin_stamp_only():
    orders = load("order").zeros(4)
    now = time.monotonic_ns()
    orders["action"] = [Action.NEW, Action.NEW, Action.CANCEL, Action.NEW]
    orders["origin_ts_ns"] = [now - 5_000, now - 7_000, now - 1_000, 0]
    histogram = new_histogram()
    cycle_nb.record_tick_to_order(histogram, orders, 4)
    figures = summarize(histogram)
    assert figures.count == 2
    assert figures.max_ns >= 7_000 and figures.p50_ns >= 5_000
    cycle_nb.record_tick_to_order(histogram, orders, 1)  # only the first n records
    assert summarize(histogram).count == 3
