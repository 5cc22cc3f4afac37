"""The run summary per symbol: strategies on one symbol add up, risk's book and the OMS database sit
beside them, and only this run's orders count (the database keeps earlier runs)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, insert

from hftshm.codes import Side
from hftshm.metrics.snapshot import PlatformSnapshot, PositionSnapshot, StrategySnapshot
from hftshm.oms.emit_nb import ID_SHIFT
from hftshm.oms.models import Base, Epoch, Fill, Order
from hftshm.runtime.symbol_summary import by_symbol, oms_by_symbol


def _snapshot() -> PlatformSnapshot:
    return PlatformSnapshot(
        positions=[PositionSnapshot("mm_btc", "BTCUSDT", 0.02, 61000.0, 1.0, -0.5, 0.1, 61010.0),
                   PositionSnapshot("mr_btc", "BTCUSDT", -0.01, 61020.0, 0.5, 0.1, 0.05, 61010.0),
                   PositionSnapshot("mm_eth", "ETHUSDT", 0.3, 2680.0, -0.2, 0.3, 0.02, 2681.0)],
        strategies=[StrategySnapshot("mm_btc", symbol="BTCUSDT", intents=10, fills=3),
                    StrategySnapshot("mr_btc", symbol="BTCUSDT", intents=4, fills=1, rejects=2),
                    StrategySnapshot("mm_eth", symbol="ETHUSDT", intents=7, fills=2)])


def test_positions_and_pnl_add_up_per_symbol_never_across_symbols():
    rows = PlatformSnapshot.by_symbol(_snapshot())
    assert list(rows) == ["BTCUSDT", "ETHUSDT"]
    assert rows["BTCUSDT"]["quantity"] == pytest.approx(0.01) and rows["BTCUSDT"]["strategies"] == ["mm_btc", "mr_btc"]
    assert rows["BTCUSDT"]["pnl"] == pytest.approx(1.0 - 0.5 - 0.1 + 0.5 + 0.1 - 0.05)
    assert rows["ETHUSDT"]["quantity"] == pytest.approx(0.3)


def test_the_oms_part_counts_this_runs_orders_and_fills_per_symbol(tmp_path):
    url = f"sqlite:///{tmp_path / 'oms.sqlite'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    order = {"client_order_id": 1, "strategy_id": 1, "side": int(Side.BUY), "order_type": 0, "tif": 0, "price": 1.0,
             "qty": 1.0, "cum_qty": 0.0, "leaves_qty": 1.0, "state": 0, "attempt": 0, "flags": 0,
             "pending_price": None, "pending_qty": None, "request_client_order_id": 0, "created_ts_ns": 0,
             "updated_ts_ns": 0, "last_event_id": 0}
    fill = {"strategy_id": 1, "price": 1.0, "fee": 0.01, "cum_qty": 0.0, "leaves_qty": 0.0, "exch_ts_ns": 0,
            "local_ts_ns": 0}
    with engine.begin() as conn:
        conn.execute(insert(Epoch), [{"epoch": 1, "started_unix_ns": 100}, {"epoch": 2, "started_unix_ns": 200}])
        old, new = 1 << ID_SHIFT, 2 << ID_SHIFT
        conn.execute(insert(Order), [{**order, "order_id": old + 1, "symbol_id": 1},       # the last run's
                                     {**order, "order_id": new + 1, "symbol_id": 1},
                                     {**order, "order_id": new + 2, "symbol_id": 1},
                                     {**order, "order_id": new + 3, "symbol_id": 2}])
        conn.execute(insert(Fill), [
            {**fill, "event_id": old + 1, "order_id": old + 1, "symbol_id": 1, "side": int(Side.BUY), "qty": 5.0},
            {**fill, "event_id": new + 1, "order_id": new + 1, "symbol_id": 1, "side": int(Side.BUY), "qty": 0.03},
            {**fill, "event_id": new + 2, "order_id": new + 2, "symbol_id": 1, "side": int(Side.SELL), "qty": 0.01},
            {**fill, "event_id": new + 3, "order_id": new + 3, "symbol_id": 2, "side": int(Side.SELL), "qty": 0.2}])
    engine.dispose()
    oms = oms_by_symbol(url, {1: "BTCUSDT", 2: "ETHUSDT"}, since_unix_ns=150)
    assert oms["BTCUSDT"]["orders"] == 2 and oms["BTCUSDT"]["fills"] == 2
    assert oms["BTCUSDT"]["position"] == pytest.approx(0.02)  # the last run's 5.0 is not this run's
    assert oms["ETHUSDT"] == pytest.approx({"orders": 1, "fills": 1, "filled_qty": 0.2, "position": -0.2, "fees": 0.01})
    assert oms_by_symbol(url, {1: "BTCUSDT"}, since_unix_ns=300) == {}  # no epoch of this run yet
    missing = tmp_path / "elsewhere" / "oms.sqlite"
    missing.parent.mkdir()
    assert oms_by_symbol(f"sqlite:///{missing}", {}) == {} and not missing.exists()  # no OMS there: nothing created

    risk = {"BTCUSDT": {"symbol": "BTCUSDT", "position": 0.01, "avg_cost": 61000.0, "mid": 61010.0, "realized": 1.5,
                        "fees": 0.15, "pnl": 1.05, "open_buy": 0.0, "open_sell": 0.0}}
    rows = by_symbol(_snapshot(), risk, oms)
    assert rows["BTCUSDT"]["strategies"]["position"] == pytest.approx(0.01) == rows["BTCUSDT"]["risk"]["position"]
    assert rows["BTCUSDT"]["strategies"]["intents"] == 14 and rows["BTCUSDT"]["strategies"]["rejects"] == 2
    assert rows["ETHUSDT"]["oms"]["orders"] == 1 and "risk" not in rows["ETHUSDT"]
