"""The replay fill model on small hand-made markets: taking liquidity, queue position, trade-through and
book-cross fills, latency in market time, rejects, replace, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftshm.codes import Action, EventFlag, EventKind, OrderType, Reason as R, ReportEvent, Side, TimeInForce
from hftshm.exchange import fill_model_nb as fm
from hftshm.exchange.config import ExchangeConfig, LatencyConfig
from hftshm.exchange.simulator import EVENT_DTYPE, ORDER_DTYPE, ExchangeSimulator
from hftshm.symbols import Symbol, SymbolTable

SYMBOLS = SymbolTable([Symbol("BTCUSDT", 1, 0.1, 0.001)])
US = 1000
T0 = 1_700_000_000_000_000_000


def config(model="risk_averse", entry_us=100.0, response_us=50.0, **kw):
    return ExchangeConfig(fill_model=model, entry_latency=LatencyConfig("constant", constant_us=entry_us),
                          response_latency=LatencyConfig("constant", constant_us=response_us),
                          maker_fee_bps=2.0, taker_fee_bps=5.0, **kw)


def ev(ts_us, kind, side, price, qty, uid=0, last=True):
    e = np.zeros(1, dtype=EVENT_DTYPE)
    e["exch_ts_ns"], e["kind"], e["side"], e["price"], e["qty"] = T0 + ts_us * US, kind, side, price, qty
    e["update_id"], e["symbol_id"], e["flags"] = uid, 1, EventFlag.LAST_IN_MESSAGE if last else 0
    return e


def depth(ts_us, side, price, qty, uid=0, last=True):
    return ev(ts_us, EventKind.DEPTH, side, price, qty, uid, last)


def trade(ts_us, aggressor, price, qty):
    return ev(ts_us, EventKind.TRADE, aggressor, price, qty)


def new(order_id, side, price, qty, ts_us, tif=TimeInForce.GTC, order_type=OrderType.LIMIT):
    o = np.zeros(1, dtype=ORDER_DTYPE)
    o["order_id"], o["client_order_id"], o["action"], o["side"], o["price"], o["qty"] = \
        order_id, order_id, Action.NEW, side, price, qty
    o["order_type"], o["tif"], o["symbol_id"], o["market_ts_ns"] = order_type, tif, 1, T0 + ts_us * US
    return o


def act(action, order_id, ts_us, price=math.nan, qty=math.nan):
    o = new(order_id, Side.BUY, price, qty, ts_us)
    o["action"], o["target_order_id"] = action, order_id
    return o


def book(sim, ts_us=0):
    """A two-sided market: bids 100.0 x2, 99.9 x1; asks 100.1 x1, 100.2 x3."""
    return sim.on_market(np.concatenate([depth(ts_us, Side.BUY, 100.0, 2.0, 1, False),
                                         depth(ts_us, Side.BUY, 99.9, 1.0, 1, False),
                                         depth(ts_us, Side.SELL, 100.1, 1.0, 1, False),
                                         depth(ts_us, Side.SELL, 100.2, 3.0, 1, True)]))


def rows(reports):
    return [(int(r["order_id"]), ReportEvent(int(r["event"])).name, float(r["price"]), round(float(r["qty"]), 9),
             int(r["flags"])) for r in reports]


def test_marketable_order_takes_visible_levels_and_consumed_liquidity_is_gone_until_refreshed():
    sim = ExchangeSimulator(config(), SYMBOLS)
    book(sim)
    assert len(sim.on_orders(new(1, Side.BUY, 100.2, 1.5, 10, TimeInForce.IOC))) == 0  # not arrived yet
    reports = sim.on_market(trade(200, Side.SELL, 99.0, 0.001))  # any later event lets it arrive first
    assert rows(reports) == [(1, "ACK", 100.2, 1.5, 0), (1, "PARTIAL", 100.1, 1.0, fm.LIQ_TAKER),
                             (1, "FILL", 100.2, 0.5, fm.LIQ_TAKER)]
    assert reports[1]["fee"] == pytest.approx(100.1 * 1.0 * 5e-4)
    sim.on_orders(new(2, Side.BUY, 100.2, 5.0, 300, TimeInForce.IOC))
    reports = sim.on_market(trade(500, Side.SELL, 99.0, 0.001))
    assert rows(reports) == [(2, "ACK", 100.2, 5.0, 0), (2, "PARTIAL", 100.2, 2.5, fm.LIQ_TAKER),
                             (2, "CANCEL", 100.2, 2.5, 0)]
    # the market's own update of 100.1 refreshes it: that quantity is there again
    sim.on_market(depth(600, Side.SELL, 100.1, 0.7, 2))
    sim.on_orders(new(3, Side.BUY, 100.1, 1.0, 600, TimeInForce.IOC))
    assert rows(sim.flush())[1] == (3, "PARTIAL", 100.1, 0.7, fm.LIQ_TAKER)


def test_market_time_latency_stamps_and_fifo_arrival():
    sim = ExchangeSimulator(config(entry_us=100, response_us=50), SYMBOLS)
    book(sim)
    sim.on_orders(new(1, Side.BUY, 99.0, 0.1, 0))
    assert sim.pending == 1 and sim.next_arrival_ns() == T0 + 100 * US
    assert len(sim.on_market(depth(99, Side.BUY, 99.5, 1.0, 2))) == 0  # before the arrival: still in flight
    ack = sim.on_market(depth(100, Side.BUY, 99.4, 1.0, 3))  # at the arrival time: the order goes first
    assert rows(ack) == [(1, "ACK", 99.0, 0.1, 0)]
    assert ack[0]["exch_ts_ns"] == T0 + 100 * US and ack[0]["local_ts_ns"] == T0 + 150 * US
    sim.on_orders(new(2, Side.BUY, 99.0, 0.1, 150))
    assert rows(sim.advance_to(T0 + 250 * US)) == [(2, "ACK", 99.0, 0.1, 0)]
    assert sim.clock_ns == T0 + 250 * US
    # an order stamped in the past applies at once, at the current clock, and is counted as late
    sim.on_market(depth(400, Side.BUY, 99.3, 1.0, 4))
    late = sim.on_orders(new(3, Side.BUY, 99.0, 0.1, 0))
    assert rows(late) == [(3, "ACK", 99.0, 0.1, 0)] and late[0]["exch_ts_ns"] == sim.clock_ns
    assert sim.stats["late_orders"] == 1


def test_queue_position_advances_by_trades_then_fills_risk_averse():
    sim = ExchangeSimulator(config("risk_averse"), SYMBOLS)
    book(sim)
    sim.on_orders(new(1, Side.BUY, 100.0, 0.5, 0))
    sim.advance_to(T0 + 100 * US)
    assert sim.open_order(1)["queue_ahead_qty"] == 2.0  # the visible 2.0 at 100.0 is ahead
    assert rows(sim.on_market(trade(200, Side.SELL, 100.0, 1.5))) == []
    assert sim.open_order(1)["queue_ahead_qty"] == pytest.approx(0.5)
    # a cancel at the level: risk-averse assumes it was behind us, unless the level got smaller than our queue
    sim.on_market(depth(300, Side.BUY, 100.0, 0.8, 2))
    assert sim.open_order(1)["queue_ahead_qty"] == pytest.approx(0.5)
    sim.on_market(depth(310, Side.BUY, 100.0, 0.3, 3))
    assert sim.open_order(1)["queue_ahead_qty"] == pytest.approx(0.3)
    reports = sim.on_market(trade(400, Side.SELL, 100.0, 0.5))
    assert rows(reports) == [(1, "PARTIAL", 100.0, 0.2, fm.LIQ_QUEUE)]
    assert reports[0]["fee"] == pytest.approx(100.0 * 0.2 * 2e-4)
    assert rows(sim.on_market(trade(500, Side.SELL, 100.0, 0.7))) == [(1, "FILL", 100.0, 0.3, fm.LIQ_QUEUE)]
    assert sim.open_order(1) is None and sim.stats["open_orders"] == 0


def test_probabilistic_queue_moves_forward_on_cancels():
    queue = {}
    for model in ("risk_averse", "probabilistic"):
        sim = ExchangeSimulator(config(model), SYMBOLS)
        book(sim)
        sim.on_orders(new(1, Side.BUY, 100.0, 0.5, 0))
        sim.advance_to(T0 + 100 * US)
        sim.on_market(depth(150, Side.BUY, 100.0, 4.0, 2))  # 2.0 joined behind us
        sim.on_market(depth(200, Side.BUY, 100.0, 3.0, 3))  # 1.0 cancelled: from the front or the back?
        queue[model] = sim.open_order(1)["queue_ahead_qty"]
        assert queue[model] >= 0
    assert queue["risk_averse"] == 2.0
    assert queue["probabilistic"] == pytest.approx(2.0 - 1.0 * 0.5)  # front 2, back 2: half of it was ahead


def test_trade_through_fills_up_to_the_trade_and_book_cross_fills_at_our_price():
    sim = ExchangeSimulator(config(), SYMBOLS)
    book(sim)
    sim.on_orders(np.concatenate([new(1, Side.BUY, 99.9, 5.0, 0), new(2, Side.SELL, 100.3, 5.0, 0)]))
    sim.advance_to(T0 + 200 * US)
    # a sell aggressor printed below our bid: it would have hit us first, for at most its own size
    assert rows(sim.on_market(trade(300, Side.SELL, 99.8, 0.4))) == [(1, "PARTIAL", 99.9, 0.4,
                                                                         fm.LIQ_TRADE_THROUGH)]
    # the asks move through our 100.3 offer? no: bids move up through it
    reports = sim.on_market(np.concatenate([depth(400, Side.BUY, 100.4, 0.6, 2, False),
                                            depth(400, Side.BUY, 100.3, 0.5, 2, True)]))
    assert rows(reports) == [(2, "PARTIAL", 100.3, 1.1, fm.LIQ_BOOK_CROSS)]
    # the crossing liquidity is used: the next message (not refreshing it) fills nothing more
    assert rows(sim.on_market(depth(500, Side.BUY, 99.0, 1.0, 3))) == []


def test_mid_message_levels_do_not_cross_until_the_message_ends():
    sim = ExchangeSimulator(config(), SYMBOLS)
    book(sim)
    sim.on_orders(new(1, Side.SELL, 100.3, 1.0, 0))
    sim.advance_to(T0 + 200 * US)
    assert rows(sim.on_market(depth(300, Side.BUY, 100.5, 1.0, 2, last=False))) == []
    assert rows(sim.on_market(depth(300, Side.BUY, 100.5, 0.0, 2, last=True))) == []  # gone again by the end


def test_rejects_post_only_fok_duplicate_unknown():
    sim = ExchangeSimulator(config(max_open_orders=2), SYMBOLS)
    book(sim)
    sim.on_orders(np.concatenate([
        new(1, Side.BUY, 100.1, 0.1, 0, TimeInForce.POST_ONLY),
        new(2, Side.BUY, 100.2, 9.0, 0, TimeInForce.FOK),
        new(3, Side.BUY, 99.0, 0.1, 0), new(3, Side.BUY, 99.0, 0.1, 0),
        new(4, Side.BUY, 99.0, 0.1, 0), new(5, Side.BUY, 99.0, 0.1, 0),
        new(6, Side.BUY, math.nan, 0.1, 0), new(7, Side.BUY, 99.0, -1.0, 0),
        act(Action.CANCEL, 42, 0), act(Action.REPLACE, 43, 0, 99.0, 1.0),
    ]))
    reasons = [(int(r["order_id"]), int(r["reason"])) for r in sim.flush() if r["event"] == ReportEvent.REJECT]
    assert reasons == [(1, R.POST_ONLY_WOULD_CROSS), (2, R.FOK_CANNOT_FILL), (3, R.DUPLICATE_ORDER_ID),
                       (5, R.BOOK_FULL), (6, R.BAD_PRICE), (7, R.BAD_QTY), (42, R.UNKNOWN_ORDER),
                       (43, R.UNKNOWN_ORDER)]


def test_replace_keeps_queue_on_decrease_requeues_on_price_change_and_cancel_reports():
    sim = ExchangeSimulator(config(), SYMBOLS)
    book(sim)
    sim.on_orders(new(1, Side.BUY, 100.0, 1.0, 0))
    sim.advance_to(T0 + 100 * US)
    sim.on_market(trade(150, Side.SELL, 100.0, 1.5))
    assert sim.open_order(1)["queue_ahead_qty"] == pytest.approx(0.5)
    sim.on_orders(act(Action.REPLACE, 1, 200, 100.0, 0.4))
    assert rows(sim.advance_to(T0 + 300 * US)) == [(1, "REPLACE", 100.0, 0.4, 0)]
    assert sim.open_order(1)["queue_ahead_qty"] == pytest.approx(0.5)
    sim.on_orders(act(Action.REPLACE, 1, 300, 99.9, 0.4))
    sim.advance_to(T0 + 400 * US)
    assert sim.open_order(1)["queue_ahead_qty"] == pytest.approx(1.0) and sim.open_order(1)["price"] == 99.9
    sim.on_orders(act(Action.REPLACE, 1, 400, 100.2, 0.4))  # crossing: takes at once
    assert rows(sim.advance_to(T0 + 500 * US)) == [(1, "REPLACE", 100.2, 0.4, 0), (1, "FILL", 100.1, 0.4, 1)]
    sim.on_orders(new(2, Side.SELL, 101.0, 0.3, 500))
    sim.on_orders(act(Action.CANCEL, 2, 500))
    assert rows(sim.flush()) == [(2, "ACK", 101.0, 0.3, 0), (2, "CANCEL", 101.0, 0.3, 0)]


def random_market(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    events = [depth(0, Side.BUY, 100.0, 2.0, 1, False), depth(0, Side.SELL, 100.1, 2.0, 1)]
    for k in range(1, n):
        if rng.random() < 0.3:
            events.append(trade(k * 50, rng.choice([Side.BUY, Side.SELL]), 100.0 + 0.1 * rng.integers(-1, 3),
                                0.001 * rng.integers(1, 500)))
        else:
            side = rng.choice([Side.BUY, Side.SELL])
            price = (100.0 - 0.1 * rng.integers(0, 3)) if side == Side.BUY else (100.1 + 0.1 * rng.integers(0, 3))
            events.append(depth(k * 50, side, round(price, 1), 0.001 * rng.integers(0, 3000), k + 1))
    return np.concatenate(events)


def strategy_orders(events: np.ndarray, k: int) -> np.ndarray | None:
    """A toy strategy reacting to event k: every 20th event, quote at that moment's event price."""
    if k % 20 or k == 0:
        return None
    side = Side.BUY if (k // 20) % 2 else Side.SELL
    price = 100.0 if side == Side.BUY else 100.1
    o = new(k, side, price, 0.2, 0)
    o["market_ts_ns"] = events[k]["exch_ts_ns"]
    return o


def in_process(events: np.ndarray, config_: ExchangeConfig) -> np.ndarray:
    """A backtest loop: one event, then the strategy's orders for it."""
    sim = ExchangeSimulator(config_, SYMBOLS)
    out = []
    for k in range(len(events)):
        out.append(sim.on_market(events[k:k + 1]).copy())
        orders = strategy_orders(events, k)
        if orders is not None:
            out.append(sim.on_orders(orders).copy())
    out.append(sim.flush().copy())
    return np.concatenate(out)


def worker_like(events: np.ndarray, config_: ExchangeConfig, seed: int) -> np.ndarray:
    """A multi-process shape: the strategy runs ahead by random amounts; the exchange applies events in
    batches, but only below the safe horizon of what the strategy has confirmed."""
    rng = np.random.default_rng(seed)
    sim = ExchangeSimulator(config_, SYMBOLS)
    out = []
    strategy_at = 0  # events the strategy has processed (and sent orders for)
    applied = 0
    while applied < len(events):
        for k in range(strategy_at, min(len(events), strategy_at + int(rng.integers(1, 60)))):
            orders = strategy_orders(events, k)
            if orders is not None:
                out.append(sim.on_orders(orders).copy())
            strategy_at = k + 1
        watermark = int(events["exch_ts_ns"][:strategy_at].max())
        horizon = sim.safe_horizon_ns(watermark) if strategy_at < len(events) else np.iinfo(np.int64).max
        stop = applied
        batch = int(rng.integers(1, 100))
        while stop < len(events) and stop - applied < batch and \
                max(int(events["exch_ts_ns"][stop]), sim.clock_ns) < horizon:
            stop += 1
        out.append(sim.on_market(events[applied:stop]).copy())
        applied = stop
    out.append(sim.flush().copy())
    return np.concatenate(out)


@pytest.mark.parametrize("model", ["risk_averse", "probabilistic"])
def test_in_process_and_worker_shaped_runs_give_identical_reports(model):
    events = random_market(5, 600)
    cfg = ExchangeConfig(fill_model=model, seed=3)  # uniform 50-500 us latencies
    reference = in_process(events, cfg)
    fills = np.isin(reference["event"], [ReportEvent.PARTIAL, ReportEvent.FILL]).sum()
    assert fills > 5 and (reference["event"] == ReportEvent.ACK).sum() == 30
    for seed in (1, 2, 3):
        assert worker_like(events, cfg, seed).tobytes() == reference.tobytes()  # bit for bit
    assert in_process(events, cfg).tobytes() == reference.tobytes()
    other = in_process(events, ExchangeConfig(fill_model=model, seed=4))
    assert not np.array_equal(other["exch_ts_ns"], reference["exch_ts_ns"])  # the seed drives the latencies
