"""The bridge's batch header: what goes over NATS decodes to the same records and header."""

import numpy as np
import pytest

from hftshm.bridge import batch_header as bh
from hftshm.transport import layout
from tests.bridge_helpers import market_events


def test_round_trip_keeps_header_and_record_bytes():
    records = market_events(1000, 37)
    fingerprint = layout.load("market_event").fingerprint
    message = bh.encode(fingerprint, 1000, records, records.dtype.itemsize, epoch=42)
    assert len(message) == bh.HEADER_BYTES + records.nbytes
    header, payload = bh.decode(message)
    assert (header.fingerprint, header.first_seq, header.count, header.epoch, header.end) == (fingerprint, 1000, 37, 42, False)
    assert header.next_seq == 1037
    assert np.array_equal(np.frombuffer(payload, dtype=records.dtype), records)


def test_end_marker_carries_no_records():
    header, payload = bh.decode(bh.encode(7, 55, b"", 64, epoch=1, flags=bh.FLAG_END))
    assert header.end and header.count == 0 and header.first_seq == 55 and len(payload) == 0


@pytest.mark.parametrize("message, why", [
    (b"short", "shorter than"),
    (b"X" * 64, "not an hftshm bridge batch"),
])
def test_foreign_or_truncated_messages_are_clear_errors(message, why):
    with pytest.raises(bh.BatchError, match=why):
        bh.decode(message)


def test_size_mismatch_is_detected():
    message = bh.encode(7, 0, market_events(0, 4), 64, epoch=1)
    with pytest.raises(bh.BatchError, match="carries"):
        bh.decode(message[:-8])
    with pytest.raises(bh.BatchError, match="whole number"):
        bh.encode(7, 0, b"x" * 65, 64, epoch=1)
