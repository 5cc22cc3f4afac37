"""The OMS kernels when the exchange restarts: a refused cancel that rejects the order itself."""

from __future__ import annotations

import numpy as np

from hftshm.codes import Action, OrderEventKind as E, OrderState as S, Reason, ReportEvent
from hftshm.oms.engine import OmsEngine
from hftshm.oms.testing import new_orders, reports

MS = 1_000_000


def engine(max_orders: int = 64, staging: int = 4096) -> OmsEngine:
    return OmsEngine(max_orders=max_orders, timeouts_ns=np.array([10, 20, 40], np.int64) * MS, epoch=1,
                     staging=staging)


def place(eng: OmsEngine, now: int = 0, **fields) -> int:
    eng.on_orders(new_orders(fields), now, 1)
    order_id = int(eng.staged().orders[-1]["order_id"])
    eng.clear()
    return order_id


def cancel(eng: OmsEngine, client_order_id: int, target_client_order_id: int, strategy_id: int = 1) -> None:
    eng.on_orders(new_orders({"action": Action.CANCEL, "client_order_id": client_order_id, "strategy_id": strategy_id,
                              "target_client_order_id": target_client_order_id}), 1, 1)
    eng.clear()


# -- a refused cancel of an unacknowledged order ----------------------------------------------------------


def test_unknown_order_reject_of_a_cancel_rejects_the_order_under_its_own_client_id():
    """An exchange that lost the order (it restarted before acking it) refuses our cancel with
    UNKNOWN_ORDER; the report names the cancel's client id. The OMS takes it as the order's reject,
    so risk and the strategies must hear of the order (client id 21), not of the cancel (22):
    both find orders by (strategy, client order id), and a reject under the cancel's id reads
    "cancel refused, the order still works" to them."""
    eng = engine()
    order_id = place(eng, client_order_id=21, strategy_id=3)
    cancel(eng, 22, 21, strategy_id=3)
    assert eng.state_of(order_id) == S.PENDING_CANCEL
    eng.on_reports(reports({"order_id": order_id, "client_order_id": 22, "strategy_id": 3, "event": ReportEvent.REJECT,
                            "reason": Reason.UNKNOWN_ORDER, "price": 61_000.0, "qty": 0.1}), 2, 1)
    assert eng.state_of(order_id) == S.REJECTED and eng.open_count == 0
    (forwarded,) = eng.staged().reports
    assert forwarded["event"] == ReportEvent.REJECT and forwarded["reason"] == Reason.UNKNOWN_ORDER
    assert forwarded["order_id"] == order_id and forwarded["strategy_id"] == 3
    assert forwarded["client_order_id"] == 21, "the reject ends the order: it must name the order, not the cancel"
    assert forwarded["leaves_qty"] == 0.0


def test_a_refused_cancel_of_an_acknowledged_order_still_names_the_cancel():
    eng = engine()
    order_id = place(eng, client_order_id=21)
    eng.on_reports(reports({"order_id": order_id, "client_order_id": 21}), 1, 1)
    eng.clear()
    cancel(eng, 22, 21)
    eng.on_reports(reports({"order_id": order_id, "client_order_id": 22, "event": ReportEvent.REJECT,
                            "reason": Reason.UNKNOWN_ORDER}), 2, 1)
    assert eng.state_of(order_id) == S.ACKNOWLEDGED, "the order still works"
    (forwarded,) = eng.staged().reports
    assert forwarded["client_order_id"] == 22
