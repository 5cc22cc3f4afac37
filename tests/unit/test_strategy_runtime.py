"""StrategyHost: dispatch, reports into portfolios, failure isolation, pause/resume, status table."""

import logging

import numpy as np
import pytest

from hftshm.codes import Action, ReportEvent, StrategyState
from hftshm.strategies import Strategy, StrategyError
from hftshm.strategies.runtime import StrategyHost, status_rows
from hftshm.symbols import DEFAULT_SYMBOLS
from tests.unit.strategy_fixtures import T0, bbo_events, report, snapshot

FIXTURES = "tests.unit.strategy_fixtures"


def host_with(*specs):
    host = StrategyHost(DEFAULT_SYMBOLS)
    ids = [host.add(name, spec, "BTCUSDT", params) for name, spec, params in specs]
    return host, ids


def test_dispatch_batches_books_and_reports():
    host, (sid,) = host_with(("buyer", f"{FIXTURES}:BuyOnce", {"qty": "0.002"}))
    host.on_events(bbo_events([(100.0, 100.1), (100.1, 100.2)]))
    strategy = host.strategy("buyer")
    assert strategy.ticks == 4 and strategy.now_ns == T0 + 100_000_000
    host.on_books(np.concatenate([snapshot(100.0, 100.1), snapshot(100.1, 100.2, T0 + 1)]))
    assert strategy.books == 1 and strategy.mid == pytest.approx(100.15)  # newest snapshot only
    intents = host.take_outbox()
    assert len(intents) == 1 and intents[0]["qty"] == 0.002 and intents[0]["strategy_id"] == sid
    coid = int(intents[0]["client_order_id"])
    host.on_reports(report(ReportEvent.FILL, coid, price=100.1, qty=0.002, strategy_id=sid))
    assert strategy.reports == [ReportEvent.FILL] and strategy.position == pytest.approx(0.002)
    host.on_reports(report(ReportEvent.ACK, 5, strategy_id=99))
    assert host.orphan_reports == 1


def test_a_raising_strategy_is_paused_and_the_others_keep_running(caplog):
    host, (bad, good) = host_with(("bad", f"{FIXTURES}:Raiser", {}), ("good", f"{FIXTURES}:BuyOnce", {}))
    with caplog.at_level(logging.ERROR, logger="hftshm.strategies"):
        for k in range(5):
            host.on_books(snapshot(100.0 + k, 100.1 + k, T0 + k))
    assert host.slot("bad").state == StrategyState.FAILED
    assert host.failures == [("bad", "RuntimeError: boom on the third book")]
    assert "bad" in caplog.text and "boom" in caplog.text
    assert host.strategy("good").books == 5  # kept going
    assert host.strategy("bad").books == 3  # no callbacks after the failure
    intents = host.take_outbox()
    bad_intents = intents[intents["strategy_id"] == bad]
    # its resting buy was cancelled; the sell queued in the raising callback was never sent
    assert list(bad_intents["action"]) == [Action.NEW, Action.CANCEL]
    rows = {r["name"]: r for r in status_rows(host.status)}
    assert rows["bad"]["state"] == "failed" and rows["bad"]["errors"] == 1
    assert rows["good"]["state"] == "running"
    # resume: it gets callbacks again
    host.resume("bad")
    host.on_books(snapshot(200.0, 200.1, T0 + 10))
    assert host.strategy("bad").books == 4


def test_bad_parameters_and_failing_initialize_name_the_strategy():
    host = StrategyHost(DEFAULT_SYMBOLS)
    with pytest.raises(StrategyError, match="'mm1'.*spread_bps"):
        host.add("mm1", "market_maker", "BTCUSDT", {"spread_bps": -1})
    with pytest.raises(StrategyError, match="'mm2'.*max_inventory"):
        host.add("mm2", "market_maker", "BTCUSDT", {"quantity": 1.0, "max_inventory": 0.1})
    with pytest.raises(StrategyError, match="'x'.*unknown symbol"):
        host.add("x", "market_maker", "DOGEUSDT", {})
    with pytest.raises(StrategyError, match="'y'.*initialize failed"):
        host.add("y", f"{FIXTURES}:Unconstructible", "BTCUSDT", {})
    with pytest.raises(StrategyError, match="'z'.*unknown strategy"):
        host.add("z", "nope", "BTCUSDT", {})
    assert host.slots == {}


def test_pause_cancels_open_orders_and_remove_frees_the_row():
    host, (sid,) = host_with(("buyer", f"{FIXTURES}:BuyOnce", {}))
    host.on_books(snapshot(100.0, 100.1))
    host.take_outbox()
    host.pause("buyer")
    cancels = host.take_outbox()
    assert list(cancels["action"]) == [Action.CANCEL]
    host.on_books(snapshot(100.0, 100.1))
    assert host.strategy("buyer").books == 1  # paused: no callbacks
    host.remove(sid)
    assert host.names() == []
    other = host.add("next", f"{FIXTURES}:BuyOnce", "BTCUSDT", {})
    assert status_rows(host.status)[0]["name"] == "next"  # the row is reused
    assert other == sid + 1  # the id is not: downstream may still know the old one's orders


def test_timer_runs_on_market_time():
    host, _ = host_with(("v", "vwap", {"target_qty": 0.01}))
    strategy = host.strategy("v")
    calls = []
    strategy.on_timer = calls.append
    host.on_events(bbo_events([(100.0, 100.1)] * 3, step_ns=200_000_000))
    host.on_timer(T0 + 2 * 10**9)
    assert calls[0] == T0 + 400_000_000 and calls[-1] == T0 + 2 * 10**9


class _Answerer(Strategy):
    """Buys on a book and again whenever a report arrives."""

    def on_book(self, book):
        self.buy(self.round_bid(float(book["mid"])) - 1.0, 0.001)

    def on_execution_report(self, report):
        self.buy(self.round_bid(float(report["price"])) - 1.0, 0.001)


def test_orders_sent_from_a_report_carry_no_feed_origin():
    """Tick-to-order runs from the feed's publish stamp of the tick behind an order; an order sent
    in reply to a report has no such tick, so it must not carry the last book's stamp (the time
    since that book would count as platform latency)."""
    host = StrategyHost(DEFAULT_SYMBOLS)
    sid = host.add("answerer", _Answerer, "BTCUSDT")
    book = snapshot(60000.0, 60000.1)
    book["publish_ts_ns"] = 123_456
    host.on_books(book)
    first = host.take_outbox()
    assert len(first) == 1 and first[0]["origin_ts_ns"] == 123_456
    host.on_reports(report(ReportEvent.ACK, int(first[0]["client_order_id"]), price=59999.0, strategy_id=sid))
    answer = host.take_outbox()
    assert len(answer) == 1 and answer[0]["origin_ts_ns"] == 0
    assert host.strategy("answerer").origin_ts_ns == 123_456  # restored for the next market callback


def test_vwap_backs_off_after_a_reject_until_its_next_timer():
    """Risk refuses the VWAP's child order (a limit, say): it must not send it again on every event
    (a storm of refusals) but wait for its next timer, and count the refusal."""
    host, (sid,) = host_with(("v", "vwap", {"target_qty": 0.01, "horizon_s": 0.05}))
    strategy = host.strategy("v")
    host.on_events(bbo_events([(100.0, 100.1)] * 2, step_ns=50_000_000))  # past the finish time: sends the rest
    (child,) = host.take_outbox()
    coid = int(child["client_order_id"])
    host.on_reports(report(ReportEvent.REJECT, coid, strategy_id=sid, reason=3, ts_ns=T0 + 50_000_000))
    # every event until the next timer (250 ms of market time from the first event)
    host.on_events(bbo_events([(100.0, 100.1)] * 20, start_ns=T0 + 60_000_000, step_ns=5_000_000))
    assert len(host.take_outbox()) == 0, "the refused order was sent again before the next timer"
    assert strategy.state["rejects"] == 1
    host.on_timer(T0 + 300_000_000)
    assert len(host.take_outbox()) == 1, "the next timer tries again"
