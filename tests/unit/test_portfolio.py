"""Position, PnL and open-order bookkeeping from execution reports (portfolio_nb via Portfolio)."""

import math

import numpy as np
import pytest

from hftshm.codes import OrderState, ReportEvent, Side
from hftshm.strategies import intents_nb
from hftshm.strategies import portfolio_nb as nb
from hftshm.strategies.portfolio import Portfolio
from hftshm.transport.layout import load
from tests.unit.strategy_fixtures import report


def fill(pf, side, price, qty, fee=0.0):
    nb.apply_fill(pf, side, price, qty, fee, 0)


def test_average_cost_realizes_on_reduce_and_flips_at_fill_price():
    p = Portfolio()
    fill(p.pf, Side.BUY, 100.0, 1.0)
    fill(p.pf, Side.BUY, 110.0, 1.0)
    assert p.position == 2.0 and p.avg_price == pytest.approx(105.0)
    fill(p.pf, Side.SELL, 120.0, 0.5, fee=0.3)
    assert p.realized_pnl == pytest.approx(7.5)  # 0.5 * (120 - 105)
    assert p.avg_price == pytest.approx(105.0)  # reducing keeps the entry price
    fill(p.pf, Side.SELL, 90.0, 3.0)  # closes 1.5 at -15 each, opens 1.5 short at 90
    assert p.realized_pnl == pytest.approx(7.5 - 22.5)
    assert p.position == pytest.approx(-1.5) and p.avg_price == 90.0
    p.mark(80.0)
    assert p.unrealized_pnl == pytest.approx(15.0)
    assert p.fees == pytest.approx(0.3)
    assert p.net_pnl == pytest.approx(-15.0 + 15.0 - 0.3)
    assert p.traded_qty == pytest.approx(5.5)


def test_flat_after_many_lots_is_exactly_zero():
    p = Portfolio()
    for _ in range(10):
        fill(p.pf, Side.BUY, 100.0, 0.1)
    fill(p.pf, Side.SELL, 100.0, 1.0)
    assert p.position == 0.0
    assert math.isnan(p.avg_price)
    assert p.unrealized_pnl == 0.0


def _send(p, side=Side.BUY, price=100.0, qty=1.0):
    records = load("order_intent").zeros(8)
    count = np.zeros(1, dtype=np.int64)
    coid = intents_nb.send_new(p.pf, p.orders, records, count, 1, 1, int(side), 1, 1, price, qty, 0, 0)
    assert coid > 0
    return coid, records, count


def test_order_lifecycle_ack_partial_fill_frees_the_slot():
    p = Portfolio()
    coid, _, _ = _send(p, qty=1.0)
    assert p.open_orders()[0].state == OrderState.NEW
    p.apply_report(report(ReportEvent.ACK, coid, qty=1.0, leaves=1.0)[0])
    assert p.open_orders()[0].state == OrderState.ACKNOWLEDGED
    p.apply_report(report(ReportEvent.PARTIAL, coid, price=100.0, qty=0.4, leaves=0.6, fee=0.01)[0])
    (order,) = p.open_orders()
    assert order.state == OrderState.PARTIALLY_FILLED and order.leaves_qty == pytest.approx(0.6)
    assert p.position == pytest.approx(0.4) and p.open_qty(Side.BUY) == pytest.approx(0.6)
    p.apply_report(report(ReportEvent.FILL, coid, price=99.0, qty=0.6, leaves=0.0)[0])
    assert p.open_orders() == [] and p.count("open_orders") == 0
    assert p.position == pytest.approx(1.0) and p.avg_price == pytest.approx(99.4)
    assert p.count("fills") == 2


def test_cancel_and_its_reject_restore_the_order():
    p = Portfolio()
    coid, records, count = _send(p)
    cancel_id = intents_nb.send_cancel(p.pf, p.orders, records, count, 1, 1, coid, 0, 0)
    assert cancel_id > coid and records[1]["target_client_order_id"] == coid
    assert p.open_orders()[0].pending_cancel
    # a second cancel of an order already being cancelled is a no-op
    assert intents_nb.send_cancel(p.pf, p.orders, records, count, 1, 1, coid, 0, 0) == 0
    p.apply_report(report(ReportEvent.REJECT, cancel_id, reason=1)[0])  # cancel refused: order still works
    (order,) = p.open_orders()
    assert not order.pending_cancel and order.client_order_id == coid
    intents_nb.send_cancel(p.pf, p.orders, records, count, 1, 1, coid, 0, 0)
    p.apply_report(report(ReportEvent.CANCEL, coid, qty=1.0)[0])
    assert p.open_orders() == [] and p.count("cancels") == 1
    assert int(count[0]) == 3 and np.all(records["strategy_id"][:3] == 1)


def test_reject_of_a_new_order_frees_it_and_fill_of_unknown_order_still_moves_position():
    p = Portfolio()
    coid, _, _ = _send(p)
    p.apply_report(report(ReportEvent.REJECT, coid, reason=21)[0])
    assert p.open_orders() == [] and p.count("rejects") == 1
    p.apply_report(report(ReportEvent.FILL, 999, side=Side.SELL, price=50.0, qty=0.2)[0])
    assert p.position == pytest.approx(-0.2)


def test_bad_orders_and_full_tables_are_codes_not_crashes():
    p = Portfolio(order_capacity=2)
    records = load("order_intent").zeros(8)
    count = np.zeros(1, dtype=np.int64)
    args = (p.pf, p.orders, records, count, 1, 1, 1, 1, 1)
    assert intents_nb.send_new(*args, float("nan"), 1.0, 0, 0) == intents_nb.ERR_BAD_ORDER
    assert intents_nb.send_new(*args, 100.0, 0.0, 0, 0) == intents_nb.ERR_BAD_ORDER
    assert intents_nb.send_new(*args, 100.0, 1.0, 0, 0) > 0
    assert intents_nb.send_new(*args, 100.0, 1.0, 0, 0) > 0
    assert intents_nb.send_new(*args, 100.0, 1.0, 0, 0) == intents_nb.ERR_ORDERS_FULL
    assert int(count[0]) == 2
