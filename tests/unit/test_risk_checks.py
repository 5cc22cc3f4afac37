"""Each pre-trade check rejects exactly what it should, with its reason, and passes the rest."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftshm.codes import Action, OrderType, Reason, ReportEvent, Side, TradingState
from hftshm.risk.testing import BTC, ETH, engine, fill, intents, reports, snapshots

BUY, SELL = Side.BUY, Side.SELL
OK = Reason.NONE


def decide(eng, *rows, now_ns=0):
    return [Reason(d) for d in eng.check(intents(*rows), now_ns)]


# -- max order size -------------------------------------------------------------------------------


def test_max_order_size_boundary():
    eng = engine(max_order_size=1.0, max_position_per_symbol=100.0)
    assert decide(eng, {"qty": 1.0}, {"qty": 1.001}, {"qty": 0.999, "side": SELL}) == [
        OK, Reason.MAX_ORDER_SIZE, OK]


def test_max_order_size_per_symbol_override():
    eng = engine(max_order_size=1.0, symbols={"ETHUSDT": {"max_order_size": 10.0, "max_position_per_symbol": 20.0,
                                                       "price_band_min": 100.0}})
    eng.on_marks(snapshots((ETH, 2_600.0)))
    assert decide(eng, {"symbol_id": ETH, "price": 2_600.0, "qty": 10.0},
                  {"symbol_id": ETH, "price": 2_600.0, "qty": 10.001},
                  {"qty": 1.001}) == [OK, Reason.MAX_ORDER_SIZE, Reason.MAX_ORDER_SIZE]


# -- max position (with open-order exposure) ------------------------------------------------------


def test_position_exactly_at_limit_passes_one_lot_over_fails():
    eng = engine(max_position_per_symbol=5.0)
    eng.on_reports(reports(fill(100, BUY, 1.0, 61_000.0), fill(101, BUY, 1.0, 61_000.0),
                           fill(102, BUY, 1.0, 61_000.0), fill(103, BUY, 1.0, 61_000.0)))
    assert eng.state.position("BTCUSDT") == pytest.approx(4.0)
    assert decide(eng, {"qty": 1.0}) == [OK]  # 4 + 1 == 5
    assert decide(eng, {"qty": 0.001, "client_order_id": 2}) == [Reason.MAX_POSITION]


def test_two_orders_cannot_jointly_breach_in_one_batch():
    eng = engine(max_position_per_symbol=5.0, max_order_size=5.0)
    assert decide(eng, {"qty": 3.0}, {"qty": 3.0}, {"qty": 2.0}) == [OK, Reason.MAX_POSITION, OK]
    assert eng.state.pending("BTCUSDT") == (5.0, 0.0)


def test_open_order_exposure_is_released_by_cancel_reject_and_fill():
    eng = engine(max_position_per_symbol=5.0, max_order_size=5.0)
    assert decide(eng, {"qty": 5.0, "client_order_id": 1}) == [OK]
    assert decide(eng, {"qty": 1.0, "client_order_id": 2}) == [Reason.MAX_POSITION]
    eng.on_reports(reports({"client_order_id": 1, "event": ReportEvent.ACK, "order_id": 77, "leaves_qty": 5.0}))
    eng.on_reports(reports({"client_order_id": 1, "event": ReportEvent.CANCEL, "qty": 5.0}))
    assert eng.state.pending("BTCUSDT") == (0.0, 0.0)
    assert decide(eng, {"qty": 5.0, "client_order_id": 3}) == [OK]
    eng.on_reports(reports({"client_order_id": 3, "event": ReportEvent.REJECT, "reason": Reason.POST_ONLY_WOULD_CROSS}))
    assert eng.state.pending("BTCUSDT") == (0.0, 0.0)
    assert decide(eng, {"qty": 2.0, "client_order_id": 4}) == [OK]
    # a partial fill moves exposure from open to position; the sum stays the same
    eng.on_reports(reports(fill(4, BUY, 0.5, 61_000.0, leaves=1.5)))
    assert eng.state.position("BTCUSDT") == pytest.approx(0.5)
    assert eng.state.pending("BTCUSDT")[0] == pytest.approx(1.5)
    assert decide(eng, {"qty": 3.0, "client_order_id": 5}) == [OK]  # 0.5 + 1.5 + 3 == 5
    assert decide(eng, {"qty": 0.001, "client_order_id": 6}) == [Reason.MAX_POSITION]


def test_short_side_limit_and_reducing_sells():
    eng = engine(max_position_per_symbol=2.0, max_order_size=5.0)
    eng.on_reports(reports(fill(100, BUY, 2.0, 61_000.0)))
    # long 2: selling 4 ends short 2 (at the limit); selling 4.001 would end short 2.001
    assert decide(eng, {"side": SELL, "qty": 4.001}) == [Reason.MAX_POSITION]
    assert decide(eng, {"side": SELL, "qty": 4.0, "client_order_id": 2}) == [OK]
    assert decide(eng, {"side": SELL, "qty": 0.001, "client_order_id": 3}) == [Reason.MAX_POSITION]
    # buys are unaffected by open sells
    assert decide(eng, {"side": BUY, "qty": 0.001, "client_order_id": 4}) == [Reason.MAX_POSITION]  # long 2 + 0.001


# -- daily loss ---------------------------------------------------------------------------------


def test_daily_loss_boundary_halts_trading_once_breached():
    eng = engine(max_daily_loss=1_000.0, max_position_per_symbol=10.0)
    eng.on_reports(reports(fill(100, BUY, 1.0, 61_000.0)))
    eng.on_marks(snapshots((BTC, 60_000.0)))  # loss exactly 1,000: allowed
    assert eng.state.summary()["daily_pnl"] == pytest.approx(-1_000.0)
    assert decide(eng, {"price": 60_000.0, "qty": 0.1}) == [OK]
    assert eng.control.trading_state == TradingState.ACTIVE
    eng.on_marks(snapshots((BTC, 59_999.9)))  # 1,000.1 lost: halts
    assert eng.control.trading_state == TradingState.HALTED
    assert eng.control.snapshot()["halt_reason"] == "max_daily_loss"
    assert decide(eng, {"price": 60_000.0, "client_order_id": 2},
                  {"action": Action.CANCEL, "target_client_order_id": 1, "client_order_id": 3}) == [
        Reason.MAX_DAILY_LOSS, OK]


def test_daily_loss_counts_fees_and_realized():
    eng = engine(max_daily_loss=100.0)
    eng.on_reports(reports(fill(100, BUY, 0.1, 61_000.0, fee=10.0), fill(101, SELL, 0.1, 60_100.0, fee=10.0,
                                                                          strategy_id=2)))
    summary = eng.state.summary()
    assert summary["realized_pnl"] == pytest.approx(-90.0)
    assert summary["fees"] == pytest.approx(20.0)
    assert summary["daily_pnl"] == pytest.approx(-110.0)
    assert eng.control.trading_state == TradingState.HALTED


def test_after_a_loss_halt_the_operator_may_reduce_but_not_add():
    eng = engine(max_daily_loss=1_000.0, max_position_per_symbol=10.0)
    eng.on_reports(reports(fill(100, BUY, 1.0, 61_000.0)))
    eng.on_marks(snapshots((BTC, 59_000.0)))
    assert eng.control.trading_state == TradingState.HALTED
    eng.control.set_trading_state(TradingState.ACTIVE)  # operator override while still in breach
    assert decide(eng, {"price": 59_000.0, "side": BUY}, {"price": 59_000.0, "side": SELL, "client_order_id": 2}) == [
        Reason.MAX_DAILY_LOSS, OK]
    eng.on_marks(snapshots((BTC, 58_990.0)))  # still in breach: the halt is edge-triggered, it does not re-halt
    assert eng.control.trading_state == TradingState.ACTIVE


def test_new_day_resets_daily_pnl():
    eng = engine(max_daily_loss=1_000.0, max_position_per_symbol=10.0)
    eng.on_reports(reports(fill(100, BUY, 1.0, 61_000.0)))
    eng.on_marks(snapshots((BTC, 60_500.0)))  # -500 on day 0
    eng.state.roll_day(0, eng.control)
    assert not eng.state.roll_day(86_400 * 10**9 - 1, eng.control)
    assert eng.state.roll_day(86_400 * 10**9, eng.control)
    assert eng.state.summary()["daily_pnl"] == pytest.approx(0.0)
    eng.on_marks(snapshots((BTC, 59_700.0)))  # -1,300 in all, -800 today: fine
    assert eng.control.trading_state == TradingState.ACTIVE
    eng.on_marks(snapshots((BTC, 59_400.0)))  # -1,100 today: halts
    assert eng.control.trading_state == TradingState.HALTED


# -- throttle -----------------------------------------------------------------------------------


def test_throttle_per_strategy_then_global_on_market_clock():
    eng = engine(max_orders_per_second=10.0, max_orders_burst=5, max_orders_per_second_per_strategy=10.0,
                 max_orders_burst_per_strategy=3, max_position_per_symbol=100.0)
    t0 = 1_700_000_000 * 10**9
    batch = [{"strategy_id": 1, "client_order_id": i, "market_ts_ns": t0} for i in range(1, 5)]
    batch += [{"strategy_id": 2, "client_order_id": i, "market_ts_ns": t0} for i in range(1, 4)]
    assert decide(eng, *batch) == [OK, OK, OK, Reason.THROTTLE, OK, OK, Reason.THROTTLE]
    # 100 ms of market time refills one token per bucket; a rejected order spent none
    later = t0 + 100_000_000
    assert decide(eng, {"strategy_id": 1, "client_order_id": 10, "market_ts_ns": later},
                  {"strategy_id": 1, "client_order_id": 11, "market_ts_ns": later}) == [OK, Reason.THROTTLE]


def test_throttle_on_the_clock_passed_in():
    eng = engine(throttle_clock="monotonic", max_orders_per_second=1000.0, max_orders_burst=2,
                 max_position_per_symbol=100.0)
    assert decide(eng, {"client_order_id": 1}, {"client_order_id": 2}, {"client_order_id": 3}, now_ns=10**9) == [
        OK, OK, Reason.THROTTLE]
    assert decide(eng, {"client_order_id": 4}, {"client_order_id": 5}, now_ns=10**9 + 1_000_000) == [
        OK, Reason.THROTTLE]


def test_cancels_are_never_throttled():
    eng = engine(max_orders_burst=1, max_orders_burst_per_strategy=1)
    rows = [{"client_order_id": 1}] + [
        {"action": Action.CANCEL, "client_order_id": 100 + i, "target_client_order_id": 1} for i in range(5)]
    assert decide(eng, *rows) == [OK] * 6


# -- price band ---------------------------------------------------------------------------------


def test_price_band_around_mid_boundaries():
    eng = engine(price_band_bps=500.0, max_position_per_symbol=100.0)  # mid 61,000: +-3,050
    got = decide(eng, {"price": 64_050.0}, {"price": 64_050.1}, {"price": 57_950.0, "side": SELL},
                 {"price": 57_949.9, "side": SELL})
    assert got == [OK, Reason.PRICE_BAND, OK, Reason.PRICE_BAND]


def test_price_band_absolute_limits():
    eng = engine(mid=2_000.0, price_band_min=1_000.0, price_band_max=2_050.0, max_position_per_symbol=100.0)
    got = decide(eng, {"price": 2_050.0}, {"price": 2_050.1}, {"price": 1_999.0}, {"price": 1_000.0})
    # 1,000 is inside the absolute band but 5,000 bps from the mid
    assert got == [OK, Reason.PRICE_BAND, OK, Reason.PRICE_BAND]


def test_no_mark_no_trade_and_market_orders_need_a_mark_only():
    eng = engine(mid=None)
    assert decide(eng, {"price": 61_000.0}) == [Reason.PRICE_BAND]
    eng.on_marks(snapshots((BTC, math.nan)))  # a NaN mid is not a mark
    eng.on_marks(snapshots((BTC, 61_000.0), valid=0))  # nor is an unsynchronised book
    assert decide(eng, {"price": 61_000.0, "client_order_id": 2}) == [Reason.PRICE_BAND]
    eng.on_marks(snapshots((BTC, 61_000.0)))
    assert decide(eng, {"order_type": OrderType.MARKET, "price": math.nan, "client_order_id": 3}) == [OK]


# -- kill switch and trading state ----------------------------------------------------------------


def test_kill_switch_rejects_new_and_replace_but_passes_cancels():
    eng = engine()
    assert decide(eng, {"client_order_id": 1}) == [OK]
    eng.control.set_kill_switch(True)
    got = decide(eng, {"client_order_id": 2},
                 {"action": Action.REPLACE, "client_order_id": 3, "target_client_order_id": 1, "qty": 0.2},
                 {"action": Action.CANCEL, "client_order_id": 4, "target_client_order_id": 1})
    assert got == [Reason.KILL_SWITCH, Reason.KILL_SWITCH, OK]
    eng.control.set_kill_switch(False)
    assert decide(eng, {"client_order_id": 5}) == [OK]


def test_kill_switch_cancels_every_open_order_once():
    eng = engine(max_position_per_symbol=100.0)
    assert decide(eng, *[{"client_order_id": i, "strategy_id": 1 + i % 3} for i in range(1, 8)]) == [OK] * 7
    eng.on_reports(reports({"client_order_id": 1, "strategy_id": 2, "event": ReportEvent.ACK, "order_id": 501,
                            "leaves_qty": 0.1}))
    # the strategy already asked to cancel order 2 (strategy 3): no second cancel for it
    assert decide(eng, {"action": Action.CANCEL, "client_order_id": 90, "target_client_order_id": 2,
                        "strategy_id": 3}) == [OK]
    eng.control.set_kill_switch(True)
    cancels = eng.kill_cancels()
    assert len(cancels) == 6
    assert set(zip(cancels["strategy_id"].tolist(), cancels["target_client_order_id"].tolist())) == {
        (2, 1), (1, 3), (2, 4), (3, 5), (1, 6), (2, 7)}
    assert (cancels["action"] == Action.CANCEL).all() and (cancels["client_order_id"] < 0).all()
    assert len(set(cancels["client_order_id"].tolist())) == 6
    acked = cancels[cancels["target_client_order_id"] == 1][0]
    assert acked["target_order_id"] == 501
    assert len(eng.kill_cancels()) == 0  # each open order is cancelled once
    assert eng.control.array[0]["kill_cancels"] == 6


def test_reducing_state_passes_only_reducing_orders():
    eng = engine(max_position_per_symbol=10.0, max_order_size=5.0)
    eng.on_reports(reports(fill(100, BUY, 2.0, 61_000.0)))
    eng.control.set_trading_state(TradingState.REDUCING)
    got = decide(eng, {"side": SELL, "qty": 1.5}, {"side": SELL, "qty": 0.5},  # together exactly flat
                 {"side": SELL, "qty": 0.001},  # would go short: not reducing
                 {"side": BUY, "qty": 0.1})
    assert got == [OK, OK, Reason.REDUCE_ONLY, Reason.REDUCE_ONLY]


def test_halted_state_passes_only_cancels():
    eng = engine()
    eng.on_reports(reports(fill(100, BUY, 1.0, 61_000.0)))
    eng.control.set_trading_state(TradingState.HALTED)
    got = decide(eng, {"side": SELL, "qty": 0.5}, {"side": BUY},
                 {"action": Action.CANCEL, "client_order_id": 9, "target_client_order_id": 1})
    assert got == [Reason.TRADING_HALTED, Reason.TRADING_HALTED, OK]


# -- malformed input --------------------------------------------------------------------------------


@pytest.mark.parametrize("row, reason", [
    ({"symbol_id": 999}, Reason.UNKNOWN_SYMBOL),
    ({"symbol_id": 0}, Reason.UNKNOWN_SYMBOL),
    ({"symbol_id": 999, "action": Action.CANCEL, "target_client_order_id": 1}, Reason.UNKNOWN_SYMBOL),
    ({"qty": math.nan}, Reason.BAD_QTY),
    ({"qty": math.inf}, Reason.BAD_QTY),
    ({"qty": 0.0}, Reason.BAD_QTY),
    ({"qty": -1.0}, Reason.BAD_QTY),
    ({"price": math.nan}, Reason.BAD_PRICE),
    ({"price": math.inf}, Reason.BAD_PRICE),
    ({"price": 0.0}, Reason.BAD_PRICE),
    ({"price": -61_000.0}, Reason.BAD_PRICE),
    ({"side": 0}, Reason.MALFORMED_INTENT),
    ({"side": 7}, Reason.MALFORMED_INTENT),
    ({"action": 0}, Reason.MALFORMED_INTENT),
    ({"order_type": 9}, Reason.MALFORMED_INTENT),
])
def test_bad_input_is_rejected_with_its_reason(row, reason):
    eng = engine()
    assert decide(eng, row, {"client_order_id": 50}) == [reason, OK]


def test_rejects_are_counted_by_reason_in_the_control_block():
    eng = engine(max_order_size=1.0)
    eng.check(intents({"qty": 2.0}, {"qty": 3.0}, {"qty": math.nan}, {"client_order_id": 9}))
    snap = eng.control.snapshot()
    assert snap["checks"] == 4 and snap["approved"] == 1 and snap["rejected"] == 3
    assert snap["reject_counts"] == {"bad_qty": 1, "max_order_size": 2}


# -- replace and duplicates --------------------------------------------------------------------------


def test_replace_increase_is_reserved_now_decrease_on_confirmation():
    eng = engine(max_position_per_symbol=5.0, max_order_size=5.0)
    assert decide(eng, {"qty": 2.0, "client_order_id": 1}) == [OK]
    eng.on_reports(reports({"client_order_id": 1, "event": ReportEvent.ACK, "order_id": 11, "leaves_qty": 2.0}))
    # net +2: 2 -> 4 open; a replace to 5.001 would breach, to 5 is exactly the limit
    assert decide(eng, {"action": Action.REPLACE, "client_order_id": 2, "target_client_order_id": 1, "qty": 5.001}
                  ) == [Reason.MAX_ORDER_SIZE]
    orders, rejects = eng.process(intents({"action": Action.REPLACE, "client_order_id": 3,
                                           "target_client_order_id": 1, "qty": 4.0, "price": 61_100.0}))
    assert len(orders) == 1 and len(rejects) == 0
    assert orders[0]["target_order_id"] == 11 and orders[0]["target_client_order_id"] == 1
    assert eng.state.pending("BTCUSDT") == (4.0, 0.0)
    assert decide(eng, {"qty": 1.001, "client_order_id": 4}) == [Reason.MAX_POSITION]
    # shrink to 1: still reserved at 4 until the exchange confirms
    assert decide(eng, {"action": Action.REPLACE, "client_order_id": 5, "target_client_order_id": 1, "qty": 1.0}
                  ) == [OK]
    assert eng.state.pending("BTCUSDT") == (4.0, 0.0)
    eng.on_reports(reports({"client_order_id": 1, "event": ReportEvent.REPLACE, "order_id": 11, "qty": 1.0,
                            "leaves_qty": 1.0, "price": 61_000.0}))
    assert eng.state.pending("BTCUSDT") == (1.0, 0.0)


def test_replace_of_unknown_order_and_duplicate_new_are_rejected():
    eng = engine()
    assert decide(eng, {"client_order_id": 1}, {"client_order_id": 1},
                  {"action": Action.REPLACE, "client_order_id": 2, "target_client_order_id": 42}) == [
        OK, Reason.DUPLICATE_CLIENT_ORDER_ID, Reason.UNKNOWN_ORDER]
    # the same client id from another strategy is another order
    assert decide(eng, {"client_order_id": 1, "strategy_id": 2}) == [OK]


def test_process_emits_orders_for_the_oms_and_rejects_for_strategies():
    eng = engine(max_order_size=1.0)
    batch = intents({"client_order_id": 1, "origin_ts_ns": 111, "market_ts_ns": 222},
                    {"client_order_id": 2, "qty": 9.0},
                    {"action": Action.CANCEL, "client_order_id": 3, "target_client_order_id": 1})
    orders, rejects = eng.process(batch, publish_ns=999)
    assert orders["client_order_id"].tolist() == [1, 3]
    assert orders["order_id"].tolist() == [0, 0]
    assert orders["action"].tolist() == [Action.NEW, Action.CANCEL]
    assert orders[1]["target_client_order_id"] == 1
    assert orders[0]["origin_ts_ns"] == 111 and orders[0]["market_ts_ns"] == 222 and orders[0]["ts_ns"] == 999
    assert orders["seq"].tolist() == [0, 1]
    assert len(rejects) == 1
    r = rejects[0]
    assert (r["event"], r["reason"], r["client_order_id"], r["order_id"]) == (
        ReportEvent.REJECT, Reason.MAX_ORDER_SIZE, 2, 0)


def test_wrong_record_type_is_a_clear_error():
    eng = engine()
    with pytest.raises(TypeError, match="order_intent"):
        eng.check(np.zeros(3))
