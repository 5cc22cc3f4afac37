"""The audit journal and its table: rows are durable in the journal before the database sees them,
drained once (idempotent by id), filtered and paged newest first, and shown as pending while the
database is unreachable."""

from __future__ import annotations

import pytest

from hftshm.audit.log import AuditEntry, AuditLog


def entry(i: int, **fields) -> AuditEntry:
    return AuditEntry(**{"action": "kill_switch", "actor": f"user{i}", "source": "cli", "new": "on",
                         "ts_unix_ns": 1_000 + i, **fields})


def test_rows_go_through_the_journal_into_the_table_once(tmp_path):
    audit = AuditLog(tmp_path, f"sqlite:///{tmp_path / 'oms.sqlite'}")
    for i in range(3):
        audit.record(entry(i))
    assert len(audit.pending()) == 3
    assert audit.drain() == 3 and audit.pending() == []
    # a drain interrupted after the insert (journal not emptied) delivers nothing twice
    first = entry(9)
    audit.record(first)
    audit.db.insert([first.to_dict()])
    assert audit.drain() == 1
    rows, total = audit.rows()
    assert total == 4 and [r["actor"] for r in rows] == ["user9", "user2", "user1", "user0"]


def test_filters_and_pages(tmp_path):
    audit = AuditLog(tmp_path, f"sqlite:///{tmp_path / 'oms.sqlite'}")
    audit.record(entry(1, source="api", outcome="refused", detail="role 'dev' may not risk control"))
    audit.record(entry(2, action="strategy_pause", target="mm"))
    audit.record(entry(3, source="redis", actor="redis"))
    assert audit.rows(outcome="refused")[1] == 1
    assert [r["target"] for r in audit.rows(action="strategy_pause")[0]] == ["mm"]
    page, total = audit.rows(limit=1, offset=1)
    assert total == 3 and page[0]["actor"] == "user2"


def test_unreachable_database_keeps_the_journal_and_shows_pending_rows(tmp_path):
    audit = AuditLog(tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none")
    audit.record(entry(1))
    assert audit.try_drain() is False and "unreachable" in audit.last_error
    rows, total = audit.rows()
    assert total == 1 and rows[0]["pending"] is True
    assert audit.journal.read_text().count("\n") == 1


def test_bad_source_or_outcome_is_refused():
    with pytest.raises(ValueError, match="source"):
        entry(1, source="email")
    with pytest.raises(ValueError, match="outcome"):
        entry(1, outcome="maybe")
