"""The write-behind writer on real PostgreSQL and SQLite: batches, lag, restart from the journal."""

from __future__ import annotations

import numpy as np
import pytest

from hftshm.oms.store import Store
from hftshm.oms.testing import scripted_events
from hftshm.oms.writer import EventWriter

from tests.integration.oms_db import database  # noqa: F401  (fixture)


def make_writer(url, schema, journal, **kwargs) -> EventWriter:
    return EventWriter(lambda: Store(url, schema=schema), journal, **kwargs)


def test_events_are_written_in_batches_and_nothing_is_lost(database, tmp_path):  # noqa: F811
    url, schema = database
    store = Store(url, schema=schema)
    events, final = scripted_events(store.new_epoch(), 1500)
    writer = make_writer(url, schema, tmp_path / "journal", batch_size=500)
    try:
        for start in range(0, len(events), 333):
            assert writer.accept(events[start:start + 333]) == len(events[start:start + 333])
        assert writer.flush(60), writer.last_error
        assert writer.events_written == len(events)
        assert writer.batches >= len(events) // 500
        assert writer.backlog_events == 0 and writer.lag_s == 0.0
        assert writer.db_up and writer.db_errors == 0
    finally:
        writer.close()
    assert store.count("order_events") == len(events)
    assert store.count("orders") == len(final)
    assert store.check_consistency() == []
    store.close()


def test_backlog_bound_refuses_instead_of_dropping(tmp_path):
    # a database that cannot be reached: everything waits in the journal, up to the bound
    writer = make_writer("postgresql+psycopg://postgres@localhost:1/none", "", tmp_path / "journal",
                         backlog_max_events=1000, reconnect_backoff_s=0.05, reconnect_backoff_max_s=0.1)
    events, _ = scripted_events(1, 400)
    try:
        taken = writer.accept(events[:600])
        taken += writer.accept(events[600:1200])
        assert taken == 1000, "exactly the bound is taken"
        assert writer.backlog_events == 1000 and writer.backlog_refusals == 1
        assert not writer.flush(0.3)
        assert writer.db_errors >= 1 and not writer.db_up and writer.last_error
        assert writer.lag_s > 0
    finally:
        assert not writer.close(0.1)
    # what was taken is still on disk for the next writer
    from hftshm.oms.journal import journal_pending_records

    assert journal_pending_records(tmp_path / "journal", events.itemsize) == 1000


def test_a_new_writer_writes_what_the_last_one_left_in_the_journal(database, tmp_path):  # noqa: F811
    url, schema = database
    store = Store(url, schema=schema)
    events, final = scripted_events(store.new_epoch(), 300)
    dead = make_writer("postgresql+psycopg://postgres@localhost:1/none", "", tmp_path / "journal",
                       reconnect_backoff_s=0.05)
    dead.accept(events[: len(events) // 2])
    dead.close(0.1)  # as if it crashed with the database unreachable
    store.write_events(events[:10])  # some made it before the crash: replayed rows must not double
    writer = make_writer(url, schema, tmp_path / "journal")
    try:
        writer.accept(events[len(events) // 2:])
        assert writer.flush(60), writer.last_error
    finally:
        writer.close()
    assert store.count("order_events") == len(events)
    assert sorted(r["order_id"] for r in store.list_orders(limit=10_000)) == sorted(final)
    assert store.check_consistency() == []
    store.close()


def test_copy_stream_matches_the_row_count():
    from hftshm.oms.store import EVENT_COPY

    events, _ = scripted_events(1, 10)
    payload = EVENT_COPY.payload(events)
    assert payload.startswith(b"PGCOPY\n\xff\r\n\x00")
    assert len(payload) == 19 + len(events) * EVENT_COPY.dtype.itemsize + 2
    rows = np.frombuffer(payload[19:-2], dtype=EVENT_COPY.dtype)
    assert (rows["event_id"] == events["event_id"]).all()
    assert (rows["count"] == len(EVENT_COPY.columns)).all()


@pytest.mark.parametrize("n", [0])
def test_empty_batch_is_a_no_op(n, tmp_path):
    store = Store(f"sqlite:///{tmp_path}/x.sqlite")
    events, _ = scripted_events(1, 1)
    assert store.write_events(events[:n]) == 0
    store.close()
