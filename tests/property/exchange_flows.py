"""Hypothesis strategies for random order flows against one BTCUSDT-like book (tick 0.1, lot 0.001).

Prices sit on a narrow ladder so orders cross often; a few values are poison (NaN, zero, negative,
off-grid, huge) so the reject paths run inside realistic flows, not only in unit tests.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from hftshm.codes import Action, OrderType, ReportEvent, Reason, Side, TimeInForce
from hftshm.transport.layout import load

ORDER_DTYPE = load("order").dtype

good_price = st.integers(min_value=995, max_value=1005).map(lambda t: t / 10)
bad_price = st.sampled_from([math.nan, 0.0, -100.0, 100.05, 1e300, math.inf])
good_qty = st.integers(min_value=1, max_value=40).map(lambda lots: lots / 1000)
bad_qty = st.sampled_from([math.nan, 0.0, -0.001, 0.0005, 1e300])


@st.composite
def order_flows(draw, max_orders: int = 60, poison: bool = True, owners: int = 3) -> np.ndarray:
    n = draw(st.integers(min_value=1, max_value=max_orders))
    orders = np.zeros(n, dtype=ORDER_DTYPE)
    used_ids: list[int] = []
    first_price: dict[int, float] = {}  # replaces often keep the price: that is where time priority matters
    for k in range(n):
        o = orders[k]
        o["seq"] = k
        o["ts_ns"] = k + 1
        o["owner"] = draw(st.integers(min_value=1, max_value=owners))
        o["symbol_id"] = 1
        action = draw(st.sampled_from([Action.NEW] * 6 + [Action.CANCEL] * 2 + [Action.REPLACE] * 2))
        if not used_ids:
            action = Action.NEW
        price_strategy = st.one_of(good_price, bad_price) if poison and draw(st.integers(0, 14)) == 0 else good_price
        qty_strategy = st.one_of(good_qty, bad_qty) if poison and draw(st.integers(0, 14)) == 0 else good_qty
        o["action"] = action
        if action == Action.NEW:
            order_id = k + 1
            if poison and draw(st.integers(0, 30)) == 0 and used_ids:
                order_id = draw(st.sampled_from(used_ids))  # reuse: duplicate while live
            o["order_id"] = order_id
            used_ids.append(order_id)
            o["side"] = draw(st.sampled_from([Side.BUY, Side.SELL]))
            market = draw(st.integers(0, 9)) == 0
            o["order_type"] = OrderType.MARKET if market else OrderType.LIMIT
            o["tif"] = draw(st.sampled_from([TimeInForce.GTC] * 4 + [TimeInForce.IOC, TimeInForce.FOK,
                                                                       TimeInForce.POST_ONLY, TimeInForce.POST_ONLY]))
            o["price"] = math.nan if market else draw(price_strategy)
            first_price.setdefault(order_id, float(o["price"]))
            o["qty"] = draw(qty_strategy)
            if poison and draw(st.integers(0, 40)) == 0:
                o["symbol_id"] = 7  # not configured
        else:
            target = draw(st.sampled_from(used_ids)) if draw(st.integers(0, 9)) else 10_000 + k
            o["order_id"] = target
            o["target_order_id"] = target
            if action == Action.REPLACE:
                same = first_price.get(target, math.nan)
                o["price"] = same if same == same and draw(st.booleans()) else draw(price_strategy)
                o["qty"] = draw(qty_strategy)
            else:
                o["price"] = o["qty"] = math.nan
    return orders


def _num(x: float):
    return None if x != x else float(x)


def report_tuples(reports: np.ndarray) -> list[tuple]:
    """Engine reports as (order_id, event, price, qty, leaves, contra, reason) with NaN -> None."""
    out = []
    for r in reports:
        reason = int(r["reason"])
        out.append((int(r["order_id"]), ReportEvent(int(r["event"])).name.lower(), _num(r["price"]), _num(r["qty"]),
                    _num(r["leaves_qty"]), int(r["contra_order_id"]), Reason(reason).name.lower() if reason else ""))
    return out


def normalise(rows: list[tuple]) -> list[tuple]:
    return [tuple(None if isinstance(v, float) and v != v else v for v in row) for row in rows]
