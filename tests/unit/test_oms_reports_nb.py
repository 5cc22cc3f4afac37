"""oms/reports_nb.write_report: the one writer of an execution_report record."""

from __future__ import annotations

import numpy as np
from numba import njit

from hftshm.oms.reports_nb import write_report
from hftshm.transport.layout import load


@njit
def _write(records, k, values_i, values_f):
    write_report(records, k, values_i[0], values_i[1], values_i[2], values_i[3], values_i[4], values_i[5],
                 values_i[6], values_f[0], values_f[1], values_f[2], values_f[3], values_f[4], values_i[7],
                 values_i[8], values_i[9], values_i[10], values_i[11], values_i[12])


def test_every_field_of_the_layout_is_written_over_a_dirty_slot():
    records = load("execution_report").zeros(4)
    records.view(np.uint8)[:] = 0xAB  # a ring slot still holding another record's bytes
    ints = np.array([7, 11, 12, 13, 14, 15, 16, 3, 1, 4, 2, 9, 5], dtype=np.int64)
    floats = np.array([61000.5, 0.25, 0.75, 0.5, 0.012], dtype=np.float64)
    _write(records, 2, ints, floats)
    expected = {"seq": 7, "exch_ts_ns": 11, "local_ts_ns": 12, "origin_ts_ns": 13, "order_id": 14,
                "client_order_id": 15, "contra_order_id": 16, "price": 61000.5, "qty": 0.25, "leaves_qty": 0.75,
                "cum_qty": 0.5, "fee": 0.012, "strategy_id": 3, "symbol_id": 1, "event": 4, "side": 2, "reason": 9,
                "flags": 5}
    assert set(expected) == set(records.dtype.names)  # the writer covers the whole layout
    assert {name: records[2][name].item() for name in records.dtype.names} == expected
    assert records.view(np.uint8).reshape(4, -1)[1].tolist() == [0xAB] * records.itemsize  # neighbours untouched
