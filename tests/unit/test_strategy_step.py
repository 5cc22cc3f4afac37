"""``step_nb.step``: the compiled strategies' per-batch step (the entry point for a fused compiled
trading cycle) queues the same intents as ``StrategyHost`` driving the same strategies from the same
inputs, for several strategies of different classes at once."""

from __future__ import annotations

import numpy as np

from hftshm.codes import ReportEvent
from hftshm.strategies.runtime import StrategyHost
from hftshm.strategies.slots import step_bundle
from hftshm.symbols import DEFAULT_SYMBOLS
from hftshm.transport.layout import load
from tests.unit.strategy_fixtures import T0, book_events, report, snapshot

KEYS = ("action", "side", "client_order_id", "target_client_order_id", "price", "qty", "strategy_id", "tif")
SPECS = [("mm", "market_maker", {}), ("taker", "tests.unit.compiled_fixtures:CompiledBuyOnce", {})]


def _hosts():
    hosts = []
    for _ in range(2):
        host = StrategyHost(DEFAULT_SYMBOLS)
        for name, spec, params in SPECS:
            host.add(name, spec, "BTCUSDT", params)
        hosts.append(host)
    return hosts


def _intents(records) -> list[tuple]:
    return [tuple(r[k].item() for k in KEYS) for r in records]


def test_the_compiled_step_queues_what_the_host_queues():
    by_host, by_step = _hosts()
    bundle, run = step_bundle([by_step.strategy(n) for n, _, _ in SPECS])
    empty_reports = load("execution_report").zeros(0)
    empty_events = load("market_event").zeros(0)
    empty_books = load("book_snapshot").zeros(0)

    def both(reports=empty_reports, events=empty_events, books=empty_books):
        if len(reports):
            by_host.on_reports(reports)
        if len(events):
            by_host.on_events(events)
        if len(books):
            by_host.on_books(books)
        expected = _intents(by_host.take_outbox())
        assert run(reports, events, books) == len(reports) + len(events) + len(books)
        got = _intents(bundle.intents[:bundle.icount[0]])
        bundle.icount[0] = 0
        assert got == expected
        return got

    first = both(events=book_events([(60000.0, 60000.1)]), books=snapshot(60000.0, 60000.1))
    assert len(first) == 3  # the maker's two quotes, the taker's buy
    mm_bid = next(i for i in first if i[6] == 1 and i[1] == 1)
    fill = report(ReportEvent.FILL, mm_bid[2], side=mm_bid[1], price=mm_bid[4], qty=mm_bid[5], strategy_id=1)
    both(reports=fill)  # the portfolio takes the fill on both sides (the requote throttle holds the maker)
    moved = book_events([(60010.0, 60010.1)], start_ns=T0 + 1_000_000_000)
    requotes = both(events=moved, books=snapshot(60010.0, 60010.1, ts_ns=T0 + 1_000_000_000))
    assert requotes  # a second later, ten dollars up, with inventory: cancels and new quotes
    for name, _, _ in SPECS:
        a, b = by_host.strategy(name).portfolio, by_step.strategy(name).portfolio
        assert np.array_equal(a.pf, b.pf, equal_nan=True)


def test_an_index_error_in_a_callback_pauses_that_strategy_in_the_compiled_step_and_the_other_trades():
    """The fused cycle's strategies step: a callback writing past its state array (bounds-checked by
    the runtime) leaves its strategy paused with the fault named, its intents of that call dropped,
    and the strategy beside it trading; nothing raises out of the step."""
    from hftshm.strategies import slots_nb as sn
    from hftshm.strategies.compiled import ERR_CALLBACK_RAISED, fault_text

    host = StrategyHost(DEFAULT_SYMBOLS)
    host.add("taker", "tests.unit.compiled_fixtures:CompiledBuyOnce", "BTCUSDT", {})
    host.add("index", "tests.unit.compiled_fixtures:IndexPastTheEnd", "BTCUSDT", {"slots": 2})
    taker, bad = host.strategy("taker"), host.strategy("index")
    bundle, run = step_bundle([taker, bad])
    run(load("execution_report").zeros(0), load("market_event").zeros(0), snapshot(60000.0, 60000.1))
    intents = bundle.intents[:bundle.icount[0]]
    assert [int(i["strategy_id"]) for i in intents] == [taker.strategy_id]  # the taker's buy only
    broken = bundle.slots[1]
    assert broken.ids[sn.ID_RUNNING] == 0 and broken.ids[sn.ID_FAULT] == ERR_CALLBACK_RAISED
    assert "raised" in fault_text(broken.ids[sn.ID_FAULT])
    assert bad.state["after"] == 7.0  # nothing written past the array
    assert bundle.slots[0].ids[sn.ID_RUNNING] == 1
