"""The whole platform on the shipped real day (BTCUSDT 2024-08-08, 598,754 events) at full speed:
feed -> strategies -> risk -> oms (+ writer process) -> exchange, with a busier market maker and a
VWAP buyer so there are fills on both sides and realized PnL. One run; each test judges one
invariant of what it left: the rings, the database, the positions and PnL."""

from __future__ import annotations

import uuid

import pytest

from hftshm.platform import merge
from tests.e2e.platform_harness import (
    assert_holds,
    MARKET_MAKER_AND_VWAP,
    REAL_DAY_BOOK_SNAPSHOTS,
    REAL_DAY_EVENTS,
    books_from_fills,
    database_problems,
    delete_redis_namespace,
    e2e_config,
    event_delivery_problems,
    open_order_problems,
    pipeline_problems,
    position_problems,
    run_platform,
)

pytestmark = pytest.mark.slow

REDIS_URL = "redis://localhost:6379/0"


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("e2e-invariants") / "run"
    namespace = f"e2e-{uuid.uuid4().hex[:12]}"
    # Redis on: risk mirrors its per-symbol positions there, the only place they are readable from outside
    config = e2e_config(run_dir, merge(MARKET_MAKER_AND_VWAP, {"redis": {"url": REDIS_URL, "namespace": namespace}}))
    try:
        yield run_platform(config)
    finally:
        delete_redis_namespace(REDIS_URL, namespace)


def test_the_run_traded(result):
    """The invariants below are only worth something if the run had orders, fills on both sides and
    realized PnL."""
    assert result.quiesced
    assert len(result.orders) >= 20
    (book,) = books_from_fills(result.fills).values()
    assert book.bought > 0 and book.sold > 0
    assert abs(book.realized) > 0
    assert result.control["redis_status"] == 1  # the mirror the position comparison reads is healthy


def test_no_sequence_gap_on_any_ring(result):
    assert_holds(pipeline_problems(result))
    # nothing restarted, so every market event went to each consumer exactly once
    total = result.counters["feed"]["events_total"]
    assert total == REAL_DAY_EVENTS
    assert result.rings["md.strategies"].producer_position == total
    assert result.rings["md.exchange"].producer_position == total
    assert result.counters["strategies"]["events"] == total
    assert result.counters["exchange"]["events_in"] == total
    snapshots = result.counters["feed"]["snapshots_published"]
    assert snapshots == REAL_DAY_BOOK_SNAPSHOTS
    assert result.rings["book.strategies"].producer_position == snapshots == result.counters["strategies"]["books"]
    assert sum(r.drops for r in result.rings.values()) == 0
    assert all(restarts == 0 for restarts in result.restarts.values())


def test_every_order_is_terminal_with_a_consistent_history(result):
    """At the end of the data the strategies cancel what rests (on drain) and the exchange confirms
    it before anyone closes: no order is left open, and every history is legal."""
    assert_holds(database_problems(result))
    assert result.open_orders() == []
    assert result.counters["oms"]["open_orders_gauge"] == 0
    assert result.counters["exchange"]["open_orders_gauge"] == 0
    assert result.counters["exchange"]["pending_orders_gauge"] == 0
    assert_holds(open_order_problems(result))  # risk, strategies, exchange: nothing open either


def test_every_order_event_reached_the_database(result):
    assert_holds(event_delivery_problems(result))
    assert result.counters["oms_writer"]["backlog_events_gauge"] == 0


def test_positions_pnl_and_fees_agree_everywhere(result):
    """Risk (control block and Redis mirror), the OMS orders table, the strategies and an
    average-cost recomputation from the fills table."""
    assert_holds(position_problems(result))
    assert result.redis_risk is not None and result.redis_risk["positions"]
    # the summary figures the platform prints are the same numbers
    assert result.snapshot.risk.realized_pnl == pytest.approx(result.control["realized_pnl"], abs=1e-9)
    assert result.snapshot.risk.fees == pytest.approx(result.control["fees"], abs=1e-9)


def test_risk_and_oms_counted_the_same_orders(result):
    control = result.control
    assert control["checks"] == result.rings["intents"].producer_position
    assert control["approved"] + control["rejected"] == control["checks"]
    assert result.counters["oms"]["orders_in"] == result.rings["orders"].producer_position
    # every NEW the OMS accepted is an order row
    assert result.counters["oms"]["orders_created"] == len(result.orders)
