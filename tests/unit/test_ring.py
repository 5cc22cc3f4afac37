"""Ring semantics in one process: claim/commit/poll/release, wrap-around, full ring in both
backpressure modes, attach errors, capacity validation, counters."""

from __future__ import annotations

import numpy as np
import pytest

from hftshm.transport import descriptor as d
from hftshm.transport import ring_nb
from hftshm.transport.layout import load
from hftshm.transport.ring import Ring, RingAttachError
from hftshm.transport.segment import Segment
from hftshm.transport.testing import no_segment_leaks, unique_name


@pytest.fixture(autouse=True)
def _no_leaks():
    with no_segment_leaks():
        yield


@pytest.fixture
def ring():
    r = Ring.create(unique_name("ring"), "market_event", 8)
    yield r
    r.unlink()
    r.close()


def test_create_then_attach_sees_same_records(ring):
    other = Ring.attach(ring.name, "market_event")
    try:
        assert ring.try_write({"seq": 7, "price": 101.5})
        record = other.try_read()
        assert record["seq"] == 7 and record["price"] == 101.5
        assert other.try_read() is None
    finally:
        other.close()


def test_header_is_initialised(ring):
    ctrl = ring.ctrl
    layout = load("market_event")
    assert ctrl[d.MAGIC_WORD] == d.MAGIC
    assert ctrl[d.VERSION_WORD] == d.FORMAT_VERSION
    assert ctrl[d.FINGERPRINT_WORD] == layout.fingerprint
    assert ctrl[d.CAPACITY_WORD] == 8 and ctrl[d.RECORD_SIZE_WORD] == 64
    assert ring.records.ctypes.data - ctrl.ctypes.data == d.HEADER_BYTES
    assert ring.records.dtype == layout.dtype and len(ring.records) == 8


def test_cursors_sit_on_their_own_128_byte_blocks():
    blocks = {word: word * d.WORD_BYTES // d.BLOCK_BYTES for word in
              (d.PRODUCER_CURSOR, d.CONSUMER_CURSOR, d.CACHED_CONSUMER_CURSOR, d.CACHED_PRODUCER_CURSOR,
               d.CONSUMER_PARKED, d.PRODUCER_PARKED, d.MAGIC_WORD)}
    assert len(set(blocks.values())) == len(blocks)
    assert d.HEADER_BYTES % d.BLOCK_BYTES == 0


@pytest.mark.parametrize("capacity", [0, 1, 3, 6, 100, -4, 2.0, True])
def test_capacity_must_be_power_of_two(capacity):
    with pytest.raises(ValueError, match="power of two"):
        Ring.create(unique_name("cap"), "market_event", capacity)


def test_backpressure_mode_is_validated():
    with pytest.raises(ValueError, match="block, drop"):
        Ring.create(unique_name("bp"), "market_event", 8, backpressure="spill")


def test_create_refuses_an_existing_name(ring):
    with pytest.raises(FileExistsError, match="already exists"):
        Ring.create(ring.name, "market_event", 8)
    replaced = Ring.create(ring.name, "market_event", 16, replace=True)
    assert replaced.capacity == 16
    replaced.close()


def test_claim_commit_poll_release_batches(ring):
    view = ring.claim(5)
    assert len(view) == 5
    view["seq"] = np.arange(5)
    assert ring.poll(8).size == 0, "claimed but uncommitted records must be invisible"
    ring.commit(3)
    got = ring.poll(8)
    assert list(got["seq"]) == [0, 1, 2]
    ring.release(2)
    assert ring.consumer_position == 2 and ring.producer_position == 3
    assert ring.occupancy() == 1
    assert list(ring.poll(8)["seq"]) == [2]
    ring.release()
    assert ring.occupancy() == 0


def test_claim_is_contiguous_and_shorter_at_the_wrap(ring):
    ring.claim(6)["seq"] = np.arange(6)
    ring.commit()
    ring.poll(4)
    ring.release()
    view = ring.claim(8)
    assert len(view) == 2, "6 slots free, but only indices 6 and 7 are contiguous before the wrap"
    ring.commit()
    view = ring.claim(8)
    assert len(view) == 4 and view.ctypes.data == ring.records.ctypes.data
    ring.commit()
    assert len(ring.claim(8)) == 0 and ring.full_events == 1


def test_wrap_around_preserves_order():
    with Ring.create(unique_name("wrap"), "market_event", 8) as r:
        try:
            next_write = next_read = 0
            rng = np.random.default_rng(1)
            while next_read < 1000:
                view = r.claim(int(rng.integers(1, 9)))
                view["seq"] = np.arange(next_write, next_write + len(view))
                r.commit()
                next_write += len(view)
                got = r.poll(int(rng.integers(1, 9)))
                assert list(got["seq"]) == list(range(next_read, next_read + len(got)))
                next_read += len(got)
                r.release()
        finally:
            r.unlink()


def test_poll_view_stops_at_the_wrap(ring):
    ring.claim(6)
    ring.commit()
    ring.poll(6)
    ring.release()
    for _ in range(2):  # 4 records at indices 6, 7, 0, 1
        ring.claim(2)["seq"] = [1, 2]
        ring.commit()
    assert len(ring.poll(4)) == 2
    ring.release()
    assert len(ring.poll(4)) == 2


def test_commit_and_release_reject_more_than_claimed(ring):
    ring.claim(2)
    with pytest.raises(ValueError, match="only 2 slots are claimed"):
        ring.commit(3)
    ring.commit(2)
    ring.poll(1)
    with pytest.raises(ValueError, match="only 1 records were polled"):
        ring.release(2)


def test_full_ring_block_mode_counts_one_event_per_episode(ring):
    assert all(ring.try_write((i, 0, 0, 0, 0.0, 0.0, 0, 0, 0, 0, 0)) for i in range(8))
    assert not ring.try_write({"seq": 8})
    assert not ring.try_write({"seq": 9})
    assert ring.full_events == 1 and ring.drops == 0
    assert ring.try_read()["seq"] == 0
    assert ring.try_write({"seq": 8})
    assert not ring.try_write({"seq": 9})
    assert ring.full_events == 2
    assert [ring.try_read()["seq"] for _ in range(8)] == list(range(1, 9)), "nothing lost in block mode"


def test_full_ring_drop_mode_drops_newest_and_counts():
    with Ring.create(unique_name("drop"), "market_event", 4, backpressure="drop") as r:
        try:
            results = [r.try_write({"seq": i}) for i in range(7)]
            assert results == [True] * 4 + [False] * 3
            assert r.drops == 3 and r.full_events == 1
            assert [r.try_read()["seq"] for _ in range(4)] == [0, 1, 2, 3]
            assert not r.write({"seq": 9}) or r.drops == 3
        finally:
            r.unlink()


def test_write_blocks_until_timeout_in_block_mode(ring):
    for i in range(8):
        ring.try_write({"seq": i})
    assert ring.write({"seq": 99}, timeout_s=0.01) is False
    ring.try_read()
    assert ring.write({"seq": 99}, timeout_s=0.01) is True


def test_try_write_accepts_tuple_void_and_dict(ring):
    layout = load("market_event")
    record = layout.zeros(1)[0]
    record["seq"] = 2
    record["flags"] = 0xFFFF_FFFF
    assert ring.try_write(tuple([1] + [0] * (len(layout.dtype.names) - 1)))
    assert ring.try_write(record)
    assert ring.try_write({"seq": 3, "kind": 2})
    got = [ring.try_read() for _ in range(3)]
    assert [g["seq"] for g in got] == [1, 2, 3]
    assert got[1]["flags"] == 0xFFFF_FFFF and got[2]["kind"] == 2 and got[2]["price"] == 0


def test_dict_with_unknown_field_is_a_clear_error(ring):
    with pytest.raises(ValueError, match="no field.*'prce'"):
        ring.try_write({"prce": 1.0})
    assert ring.producer_position == 0


def test_try_read_returns_a_copy(ring):
    ring.try_write({"seq": 1})
    got = ring.try_read()
    ring.records[:]["seq"] = -5
    assert got["seq"] == 1


def test_count_drops_for_batch_producers(ring):
    ring.count_drops(5)
    assert ring.drops == 5


def test_attach_with_other_layout_names_both():
    name = unique_name("orders")
    with Ring.create(name, "order", 8) as r:
        try:
            with pytest.raises(RingAttachError) as info:
                Ring.attach(name, "order_intent")
            message = str(info.value)
            theirs, ours = load("order"), load("order_intent")
            assert f"ring {name!r} has layout order v1 ({theirs.fingerprint:016x})" in message
            assert f"this process expects order_intent v1 ({ours.fingerprint:016x})" in message
            assert "restart the supervisor" in message
        finally:
            r.unlink()


def test_attach_missing_ring():
    with pytest.raises(RingAttachError, match="no ring 'hftshm-test-absent'.*does not exist"):
        Ring.attach("hftshm-test-absent", "order")


def test_attach_wrong_magic():
    name = unique_name("magic")
    segment = Segment.create(name, 4096)
    try:
        segment.buf[:8] = b"NOTARING"
        with pytest.raises(RingAttachError, match="not an hftshm ring"):
            Ring.attach(name, "order")
    finally:
        segment.unlink()
        segment.close()


def test_attach_not_ready_until_version_written():
    name = unique_name("ready")
    with Ring.create(name, "market_event", 8) as r:
        try:
            r.ctrl[d.VERSION_WORD] = 0  # as if the creator were still initialising
            with pytest.raises(RingAttachError, match="not ready"):
                Ring.attach(name, "market_event", ready_timeout_s=0.01)
            r.ctrl[d.VERSION_WORD] = d.FORMAT_VERSION
            Ring.attach(name, "market_event").close()
        finally:
            r.unlink()


def test_attach_wrong_header_format():
    name = unique_name("fmt")
    with Ring.create(name, "market_event", 8) as r:
        try:
            r.ctrl[d.VERSION_WORD] = 99
            with pytest.raises(RingAttachError, match="header format v99"):
                Ring.attach(name, "market_event")
        finally:
            r.unlink()


def test_second_live_consumer_is_refused(ring):
    ring.ctrl[d.CONSUMER_PID] = 1  # pid 1 is alive and is not this process
    with pytest.raises(RingAttachError, match=r"already has a live consumer \(pid 1\)"):
        Ring.attach(ring.name, "market_event", role="consumer")
    taken = Ring.attach(ring.name, "market_event", role="consumer", takeover=True)
    assert taken.consumer_pid != 1
    taken.close()


def test_dead_consumer_pid_is_replaced(ring):
    ring.ctrl[d.CONSUMER_PID] = 2**22 + 12345  # beyond pid_max: never alive
    attached = Ring.attach(ring.name, "market_event", role="consumer")
    assert attached.consumer_pid > 0 and attached.consumer_pid != 2**22 + 12345
    attached.close()
    assert ring.consumer_pid == 0, "close clears this process's registration"


def test_numba_kernels_claim_commit_poll_release(ring):
    ctrl, records = ring.ctrl, ring.records
    seq = ring_nb.try_claim(ctrl, 3)
    assert seq == 0
    records[ring_nb.slot(ctrl, seq)]["seq"] = 42
    assert ring_nb.try_poll(ctrl, 8) == ring_nb.NOTHING_AVAILABLE
    assert ring_nb.commit(ctrl, seq, 3) == 0, "no consumer parked: no wake"
    assert ring_nb.try_poll(ctrl, 8) == 3 and ring_nb.try_poll(ctrl, 2) == 2
    assert ring_nb.consumer_position(ctrl) == 0
    assert ring_nb.release(ctrl, 3) == 0
    assert ring_nb.try_claim(ctrl, 9) == ring_nb.INSUFFICIENT_CAPACITY
    assert ring_nb.try_claim(ctrl, 0) == ring_nb.INSUFFICIENT_CAPACITY
    assert ring_nb.try_claim(ctrl, 8) == 3
    ring_nb.commit(ctrl, 3, 8)
    assert ring_nb.try_claim(ctrl, 1) == ring_nb.INSUFFICIENT_CAPACITY
    assert ring_nb.offer(ctrl, 1) == ring_nb.INSUFFICIENT_CAPACITY, "block mode never drops"
    assert ring.drops == 0 and ring.full_events == 1
    assert ring_nb.slot(ctrl, 11) == 3


def test_claimable_counts_free_slots_up_to_the_ask(ring):
    ctrl = ring.ctrl
    assert ring_nb.claimable(ctrl, 5) == 5 and ring_nb.claimable(ctrl, 50) == 8
    ring_nb.commit(ctrl, ring_nb.try_claim(ctrl, 6), 6)
    assert ring_nb.claimable(ctrl, 8) == 2
    ring_nb.release(ctrl, ring_nb.try_poll(ctrl, 4))
    assert ring_nb.claimable(ctrl, 8) == 6, "re-reads the consumer cursor when the cache says too few"


def test_numba_offer_drops_in_drop_mode():
    with Ring.create(unique_name("offer"), "market_event", 2, backpressure="drop") as r:
        try:
            assert ring_nb.offer(r.ctrl, 2) == 0
            ring_nb.commit(r.ctrl, 0, 2)
            assert ring_nb.offer(r.ctrl, 1) == ring_nb.DROPPED
            assert ring_nb.offer(r.ctrl, 2) == ring_nb.DROPPED
            assert r.drops == 3 and r.full_events == 1
        finally:
            r.unlink()


def test_commit_rings_a_parked_consumer_once(ring):
    ctrl = ring.ctrl
    bell = ring_nb.arm_consumer_park(ctrl)
    seq = ring_nb.try_claim(ctrl, 1)
    assert ring_nb.commit(ctrl, seq, 1) == 1
    assert ctrl[d.CONSUMER_DOORBELL] == bell + 1 and ctrl[d.CONSUMER_PARKED] == 0
    assert ring_nb.commit(ctrl, ring_nb.try_claim(ctrl, 1), 1) == 0, "one wake per park"
    assert ring.consumer_wakes == 1


def test_release_rings_a_parked_producer(ring):
    ctrl = ring.ctrl
    ring_nb.commit(ctrl, ring_nb.try_claim(ctrl, 8), 8)
    ring_nb.arm_producer_park(ctrl)
    assert ring_nb.try_poll(ctrl, 1) == 1
    assert ring_nb.release(ctrl, 1) == 1
    assert ring.producer_wakes == 1 and ctrl[d.PRODUCER_PARKED] == 0


def test_stats_and_heartbeat(ring):
    ring.try_write({"seq": 1})
    ring.heartbeat(123)
    assert ring.heartbeat_ns == 123
    stats = ring.stats()
    assert stats["published"] == 1 and stats["occupancy"] == 1 and stats["capacity"] == 8


def test_unlink_name_removes_leftovers():
    name = unique_name("left")
    Ring.create(name, "market_event", 2).close()
    assert Ring.unlink_name(name) is True
    assert Ring.unlink_name(name) is False


def test_out_of_band_wake_only_when_parked(ring):
    assert ring.wake_consumer() is False and ring.consumer_wakes == 0
    ring_nb.arm_consumer_park(ring.ctrl)
    assert ring.wake_consumer() is True and ring.consumer_wakes == 1
    assert ring.wake_producer() is False


def test_has_records_and_the_empty_poll_follow_the_cursors():
    ring = Ring.private("market_event", capacity=8)
    assert not ring.has_records() and len(ring.poll(4)) == 0
    view = ring.claim(3)
    view["seq"] = [7, 8, 9]
    assert not ring.has_records()  # claimed is not published
    ring.commit(3)
    assert ring.has_records()
    got = ring.poll(8)
    assert list(got["seq"]) == [7, 8, 9]
    ring.release(2)
    assert ring.has_records() and list(ring.poll(8)["seq"]) == [9]
    ring.release()
    assert not ring.has_records() and len(ring.poll(8)) == 0
    ring.close()


def test_commit_quiet_publishes_without_ringing_a_parked_consumer():
    ring = Ring.private("market_event", capacity=8)
    ring_nb.arm_consumer_park(ring.ctrl)  # the consumer is about to sleep
    seq = ring_nb.try_claim(ring.ctrl, 2)
    ring_nb.commit_quiet(ring.ctrl, seq, 2)
    assert ring.has_records() and ring.consumer_wakes == 0 and ring.ctrl[d.CONSUMER_PARKED] == 1
    assert ring_nb.wake_consumer_if_parked(ring.ctrl) == 1  # the producer rings later, off its hot path
    assert ring.consumer_wakes == 1 and ring.ctrl[d.CONSUMER_PARKED] == 0
    ring.close()


def test_a_private_ring_has_the_shared_rings_types_and_no_segment():
    from numba import typeof

    with no_segment_leaks():
        private = Ring.private("order", capacity=16)
        shared = Ring.create(unique_name(), "order", 16)
        assert typeof(private.records) == typeof(shared.records) and typeof(private.ctrl) == typeof(shared.ctrl)
        shared.unlink()
        shared.close()
        private.close()
