"""The OMS store on real PostgreSQL and SQLite: schema, idempotent batches, recovery reads, checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftshm.codes import OrderEventKind as E, OrderState as S
from hftshm.oms import oms_nb, states
from hftshm.oms.store import Store, StoreError
from hftshm.oms.testing import scripted_events

from tests.integration.oms_db import database  # noqa: F401  (fixture)


@pytest.fixture
def store(database):  # noqa: F811
    url, schema = database
    s = Store(url, schema=schema)
    yield s
    s.close()


def test_epochs_increase_and_respect_ids_already_used(store):
    first = store.new_epoch()
    second = store.new_epoch()
    assert second == first + 1
    events, _ = scripted_events(second + 10, 4)
    store.write_events(events)
    assert store.new_epoch() == second + 11, "ids already in the database are never reused"


def test_batch_writes_events_orders_and_fills(store):
    events, final = scripted_events(store.new_epoch(), 200)
    store.write_events(events)
    assert store.count("order_events") == len(events)
    assert store.count("orders") == len(final)
    fills = int(np.isin(events["kind"], [E.PARTIAL, E.FILL]).sum())
    assert store.count("fills") == fills
    for order_id, state in list(final.items())[:20]:
        row = store.get_order(order_id)
        assert row["state"] == state
        trail = store.events_of(order_id)
        assert trail[0]["kind"] == E.CREATED
        assert [e["event_id"] for e in trail] == sorted(e["event_id"] for e in trail)
        assert row["last_event_id"] == trail[-1]["event_id"]
    assert store.check_consistency() == []


def test_writes_are_idempotent_and_never_move_an_order_backwards(store):
    events, final = scripted_events(store.new_epoch(), 120)
    half = len(events) // 2
    store.write_events(events[:half])
    store.write_events(events)  # the first half again: a retry after an unacknowledged commit
    store.write_events(events[:half])  # an old batch replayed late must not roll orders back
    store.write_events(events[half:])
    fresh = Store(store.url, schema=store.schema)  # a new connection whose first write is a replay
    try:
        fresh.write_events(events)
    finally:
        fresh.close()
    assert store.count("order_events") == len(events)
    assert store.count("fills") == int(np.isin(events["kind"], [E.PARTIAL, E.FILL]).sum())
    for order_id, state in final.items():
        assert store.get_order(order_id)["state"] == state
    assert store.check_consistency() == []


def test_load_orders_returns_open_ones_and_recent_finished_ones(store):
    events, final = scripted_events(store.new_epoch(), 60)
    # leave the first 10 orders open: keep only their CREATED and ACK events
    open_ids = list(final)[:10]
    keep = ~np.isin(events["order_id"], open_ids) | np.isin(events["kind"], [E.CREATED, E.ACK])
    store.write_events(events[keep])
    rows = store.load_orders(recent_terminal=5)
    open_rows = rows[~np.isin(rows["state"], list(states.TERMINAL_STATES))]
    assert sorted(open_rows["order_id"].tolist()) == sorted(open_ids)
    assert set(open_rows["state"].tolist()) == {S.ACKNOWLEDGED}
    assert len(rows) == 15
    done = rows[np.isin(rows["state"], list(states.TERMINAL_STATES))]
    assert done["order_id"].tolist() == sorted(done["order_id"].tolist()), "oldest first"
    assert done["order_id"].min() > max(o for o in final if o not in open_ids) - 50
    acked = open_rows[0]
    assert acked["flags"] != 0, "the exchange had acknowledged it"
    assert acked["pending"] == 0
    assert not math.isnan(acked["price"])


def test_consistency_check_finds_a_tampered_order(store):
    events, final = scripted_events(store.new_epoch(), 10)
    store.write_events(events)
    victim = next(iter(final))
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE orders SET state = {int(S.NEW)} WHERE order_id = {victim}")
    problems = store.check_consistency()
    assert problems and str(victim) in problems[0]


def test_reconcile_open_orders_finds_a_row_behind_its_events(store):
    events, final = scripted_events(store.new_epoch(), 10)
    created_and_acked = events[np.isin(events["kind"], [E.CREATED, E.ACK])]
    store.write_events(created_and_acked)
    assert store.reconcile_open_orders() == []
    victim = int(created_and_acked[0]["order_id"])
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE orders SET state = {int(S.PENDING_CANCEL)} WHERE order_id = {victim}")
    problems = store.reconcile_open_orders()
    assert len(problems) == 1 and str(victim) in problems[0]


def test_list_orders_filters(store):
    events, final = scripted_events(store.new_epoch(), 30)
    store.write_events(events)
    filled = store.list_orders(states_in=[S.FILLED], limit=100)
    assert filled and all(r["state"] == S.FILLED for r in filled)
    assert len(filled) == sum(1 for s in final.values() if s == S.FILLED)
    assert store.list_orders(strategy_id=99) == []
    assert len(store.list_orders(limit=3)) == 3
    newest = store.list_orders(limit=1)[0]["order_id"]
    assert newest == max(final)
    assert newest >> oms_nb.ID_SHIFT == events[0]["event_id"] >> oms_nb.ID_SHIFT


def test_unreachable_database_is_a_clear_error():
    with pytest.raises(StoreError, match="cannot reach or prepare database postgresql"):
        Store("postgresql+psycopg://postgres@localhost:1/none", connect_timeout_s=1)
    with pytest.raises(StoreError, match="not a database URL"):
        Store("nonsense")
