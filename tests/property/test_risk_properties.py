"""Risk accounting and checks under random input.

- positions and PnL from random fills equal a plain-Python recomputation (average cost), and the
  cash-flow identity realized + unrealized = -sum(signed qty * price) + position * mark holds;
- random, malformed intents and reports never raise, every decision is a known Reason, and the
  open exposure always equals the sum of the open orders' reserved quantities.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hftshm.codes import Reason, ReportEvent, Side
from hftshm.risk.engine import INTENT, REPORT
from hftshm.risk.testing import BTC, engine, fill, reports, snapshots

LOT = 0.001
TICK = 0.1
EPS = LOT * 1e-6

fills_strategy = st.lists(
    st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 3000), st.integers(500_000, 700_000),
              st.integers(0, 500)),
    min_size=1, max_size=60)


def reference(fills):
    position = avg = realized = fees = 0.0
    for side, qty, price, fee in fills:
        signed = qty if side == Side.BUY else -qty
        if position == 0.0 or (position > 0) == (signed > 0):
            new = position + signed
            avg = (abs(position) * avg + qty * price) / abs(new)
        else:
            closed = min(qty, abs(position))
            realized += closed * (price - avg) * (1.0 if position > 0 else -1.0)
            new = position + signed
            if abs(new) <= EPS:
                new, avg = 0.0, 0.0
            elif (new > 0) != (position > 0):
                avg = price
        position = new
        fees += fee
    return position, avg, realized, fees


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fills=fills_strategy, mark_ticks=st.integers(500_000, 700_000))
def test_positions_and_pnl_match_a_plain_python_recomputation(fills, mark_ticks):
    rows = [(side, lots * LOT, ticks * TICK, cents / 100.0) for side, lots, ticks, cents in fills]
    eng = engine(mid=None, max_daily_loss=1e12)
    eng.on_reports(reports(*[fill(1000 + i, side, qty, price, fee=fee) for i, (side, qty, price, fee) in
                             enumerate(rows)]))
    mark = mark_ticks * TICK
    eng.on_marks(snapshots((BTC, mark)))
    position, avg, realized, fees = reference(rows)
    row = eng.state.symbols[BTC]
    assert math.isclose(row["position"], position, abs_tol=1e-9)
    assert math.isclose(row["avg_cost"], avg, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(row["realized"], realized, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(row["fees"], fees, rel_tol=1e-9, abs_tol=1e-9)
    # independent of the average-cost bookkeeping: all of PnL is cash flow plus the position's value
    cash = -sum((q if s == Side.BUY else -q) * p for s, q, p, _ in rows)
    summary = eng.state.summary()
    expected_total = cash + position * mark - fees
    assert math.isclose(summary["total_pnl"], expected_total, rel_tol=1e-9, abs_tol=1e-4)
    assert summary["fees"] == eng.state.symbols[BTC]["fees"]


weird_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(
    [0.0, -0.0, -1.0, 1e-300, 1e300, 61_000.0, 0.1, 1.0, math.nan, math.inf, -math.inf]))
intent_rows = st.fixed_dictionaries({
    "symbol_id": st.sampled_from([0, 1, 2, 3, 999, 65535]),
    "action": st.integers(0, 5),
    "side": st.integers(0, 4),
    "order_type": st.integers(0, 3),
    "price": weird_floats,
    "qty": weird_floats,
    "strategy_id": st.integers(0, 65535),
    "client_order_id": st.integers(-2**63, 2**63 - 1),
    "target_client_order_id": st.integers(-3, 40),
    "market_ts_ns": st.integers(-2**63, 2**63 - 1),
})
report_rows = st.fixed_dictionaries({
    "symbol_id": st.sampled_from([0, 1, 2, 999]),
    "event": st.integers(0, 8),
    "side": st.integers(0, 3),
    "price": weird_floats,
    "qty": weird_floats,
    "leaves_qty": weird_floats,
    "fee": weird_floats,
    "strategy_id": st.integers(0, 3),
    "client_order_id": st.integers(-3, 40),
    "order_id": st.integers(0, 5),
    "reason": st.integers(0, 65535),
})
_REASONS = {int(r) for r in Reason}


def _fill_records(layout, rows):
    out = layout.zeros(len(rows))
    for i, row in enumerate(rows):
        for key, value in row.items():
            out[i][key] = value
    return out


def _assert_exposure_consistent(eng):
    table = eng.state.table
    used = table[table["used"] == 1]
    assert eng.state.account[0]["open_orders"] == len(used)
    for sid in (1, 2):
        for side, field in ((Side.BUY, "pending_buy"), (Side.SELL, "pending_sell")):
            mine = used[(used["symbol_id"] == sid) & (used["side"] == side)]
            reserved = float(mine["leaves"].sum())
            pending = float(eng.state.symbols[sid][field])
            assert pending >= 0.0
            assert math.isclose(pending, reserved, rel_tol=1e-6, abs_tol=1e-6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.tuples(st.lists(intent_rows, max_size=12), st.lists(report_rows, max_size=12)),
                        min_size=1, max_size=4),
       kill=st.booleans())
def test_malformed_input_never_raises_and_exposure_stays_consistent(batches, kill):
    eng = engine(max_position_per_symbol=1e6, max_order_size=1e6, price_band_min=1e-9, price_band_max=1e300,
                 price_band_bps=1e9)
    for intents_rows, report_rows_ in batches:
        orders, rejects = eng.process(_fill_records(INTENT, intents_rows), now_ns=1)
        assert len(orders) + len(rejects) == len(intents_rows)
        assert set(rejects["reason"].tolist()) <= _REASONS - {0}
        eng.on_reports(_fill_records(REPORT, report_rows_))
        _assert_exposure_consistent(eng)
        if kill:
            eng.control.set_kill_switch(True)
            eng.kill_cancels()
    summary = eng.state.summary()
    assert set(summary) >= {"daily_pnl", "realized_pnl", "fees"}


def test_fill_for_an_unknown_symbol_or_nan_price_is_counted_not_applied():
    eng = engine()
    eng.on_reports(reports(fill(1, Side.BUY, 1.0, math.nan), fill(2, Side.BUY, 1.0, 61_000.0, symbol_id=77),
                           fill(3, Side.BUY, math.inf, 61_000.0), {"event": ReportEvent.FILL, "side": 9, "qty": 1.0,
                                                                  "price": 1.0}))
    assert eng.state.position("BTCUSDT") == 0.0
    assert eng.state.account[0]["reports_bad"] == 4
    assert np.isfinite(eng.state.summary()["total_pnl"])
