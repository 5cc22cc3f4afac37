"""The writer's on-disk journal: append, read back, forget, roll segments, survive a crash."""

from __future__ import annotations

import os

import numpy as np

from hftshm.oms.journal import Journal, journal_pending_records

ITEM = 16


def records(start: int, n: int) -> bytes:
    return np.arange(start, start + 2 * n, dtype=np.int64).tobytes()


def test_append_peek_advance(tmp_path):
    journal = Journal(tmp_path / "j", ITEM)
    journal.append(records(0, 3))
    assert journal.pending_records == 3
    assert journal.peek(2 * ITEM + 5) == records(0, 2), "whole records only"
    assert journal.peek(10 * ITEM) == records(0, 3), "peek does not consume"
    journal.advance(2 * ITEM)
    assert journal.peek(10 * ITEM) == records(4, 1)
    journal.advance(ITEM)
    assert journal.pending_records == 0
    assert os.path.getsize(tmp_path / "j.00000001") == 0, "a fully written journal is truncated"
    journal.append(records(100, 1))
    assert journal.peek(ITEM) == records(100, 1)
    journal.close()


def test_segments_roll_and_consumed_ones_are_deleted(tmp_path):
    journal = Journal(tmp_path / "j", ITEM, segment_bytes=4 * ITEM)
    for i in range(10):
        journal.append(records(2 * i, 1))
    assert journal.segment_count == 3
    assert journal_pending_records(tmp_path / "j", ITEM) == 10
    seen = b""
    while journal.pending_records:
        chunk = journal.peek(3 * ITEM)
        seen += chunk
        journal.advance(len(chunk))
    assert seen == records(0, 10)
    assert journal.segment_count == 1
    assert journal_pending_records(tmp_path / "j", ITEM) == 0
    journal.close()


def test_reopen_replays_everything_and_drops_a_torn_tail(tmp_path):
    journal = Journal(tmp_path / "j", ITEM, segment_bytes=4 * ITEM)
    for i in range(6):
        journal.append(records(2 * i, 1))
    journal.advance(ITEM)  # consumed, but the process dies before the file shrinks
    journal.close()
    with open(tmp_path / "j.00000002", "ab") as f:
        f.write(b"\x01\x02\x03")  # a record cut short by the crash
    reopened = Journal(tmp_path / "j", ITEM, segment_bytes=4 * ITEM)
    assert reopened.pending_records == 6, "everything not known to be written is written again"
    data = b""
    while reopened.pending_records:
        chunk = reopened.peek(100 * ITEM)
        data += chunk
        reopened.advance(len(chunk))
    assert data == records(0, 6)
    reopened.close()


def test_missing_directory_has_nothing_pending(tmp_path):
    assert journal_pending_records(tmp_path / "nope" / "j", ITEM) == 0
