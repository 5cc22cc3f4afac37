"""The live frame ring (hftshm.feed.live_frames_nb / live_net): frames of every length cross it whole
and in order, across the ring's wrap; an out-of-sequence record is counted and skipped, never read as
a frame; a full ring drops the frame and counts it."""

from __future__ import annotations

import numpy as np

from hftshm.codes import FrameKind
from hftshm.feed import live_frames_nb as fnb
from hftshm.feed.live_net import RingSink
from hftshm.transport.ring import Ring

LENGTHS = [0, 1, 200, fnb.PAYLOAD - 1, fnb.PAYLOAD, fnb.PAYLOAD + 1, 3 * fnb.PAYLOAD + 17, 5000]


def _read(ring, max_frames=1 << 10, out_bytes=1 << 16):
    out = np.zeros(out_bytes, np.uint8)
    meta = np.zeros((max_frames, fnb.N_META), np.int64)
    counts = np.zeros(4, np.int64)
    n = fnb.read_frames(ring.ctrl, ring.records, max_frames, out, meta, counts)
    frames = [(int(m[fnb.M_RECV_NS]), int(m[fnb.M_MARKET]), int(m[fnb.M_KIND]),
               out[m[fnb.M_START]:m[fnb.M_STOP]].tobytes()) for m in meta[:n]]
    return frames, counts


def _payload(k, n):
    return bytes((k * 7 + i) % 251 for i in range(n))


def test_frames_cross_the_ring_whole_in_order_across_the_wrap():
    ring = Ring.private("live_frame", 32)
    rng = np.random.default_rng(5)
    sent, got = [], []
    for k in range(400):  # many laps of a 32-record ring, reads interleaved at random
        n = LENGTHS[k % len(LENGTHS)]
        frame = (1000 + k, k % 3, int(FrameKind.FRAME), _payload(k, n))
        while fnb.write_frame(ring.ctrl, ring.records, np.frombuffer(frame[3], np.uint8), frame[0], frame[1],
                              frame[2]) != fnb.WRITTEN:  # full: the consumer catches up
            frames, counts = _read(ring)
            assert frames and counts[2] == 0
            got += frames
        sent.append(frame)
        if rng.random() < 0.5:
            frames, counts = _read(ring, max_frames=int(rng.integers(1, 5)))
            assert counts[2] == 0
            got += frames
    while True:
        frames, counts = _read(ring)
        if not frames:
            break
        got += frames
    assert got == sent
    # every record carried its ring position: dense from 0
    records = sum(max(-(-len(p) // fnb.PAYLOAD), 1) for *_, p in sent)
    assert ring.producer_position == ring.consumer_position == records


def test_out_of_sequence_record_is_counted_and_skipped():
    ring = Ring.private("live_frame", 16)
    for k in range(3):
        fnb.write_frame(ring.ctrl, ring.records, np.frombuffer(_payload(k, 100), np.uint8), k, 0, int(FrameKind.FRAME))
    ring.records[1]["seq"] = 99  # the middle frame's record is not at its position: not trusted
    frames, counts = _read(ring)
    assert [f[0] for f in frames] == [0, 2] and counts[2] == 1
    assert frames[1][3] == _payload(2, 100)


def test_a_frame_larger_than_the_buffer_is_reported_not_lost():
    ring = Ring.private("live_frame", 16)
    fnb.write_frame(ring.ctrl, ring.records, np.frombuffer(_payload(1, 3000), np.uint8), 7, 0, int(FrameKind.SNAPSHOT))
    frames, counts = _read(ring, out_bytes=1000)
    assert frames == [] and counts[3] == 3000 and ring.occupancy() > 0  # left in the ring for a bigger buffer
    frames, counts = _read(ring, out_bytes=4000)
    assert frames == [(7, 0, int(FrameKind.SNAPSHOT), _payload(1, 3000))]


def test_full_ring_drops_the_frame_and_counts_it():
    ring = Ring.private("live_frame", 4)
    sink = RingSink(ring, ["usdm", "spot"], full_wait_s=0.01)
    sink.on_frame("spot", 1, _payload(0, 3 * fnb.PAYLOAD))  # 3 of 4 records
    sink.on_frame("usdm", 2, _payload(1, 2 * fnb.PAYLOAD))  # needs 2: dropped
    sink.on_disconnect("usdm", 3, "closed")  # 1 record: fits
    assert sink.dropped == 1
    frames, _ = _read(ring)
    assert [(f[0], f[1], f[2], len(f[3])) for f in frames] == [
        (1, 1, int(FrameKind.FRAME), 3 * fnb.PAYLOAD), (3, 0, int(FrameKind.DISCONNECT), 0)]


def test_full_ring_waits_for_the_feed_before_dropping():
    import threading

    ring = Ring.private("live_frame", 4)
    sink = RingSink(ring, ["usdm"], full_wait_s=5.0)
    sink.on_frame("usdm", 1, _payload(0, 3 * fnb.PAYLOAD))
    taken = []
    reader = threading.Timer(0.05, lambda: taken.extend(_read(ring)[0]))  # the feed catches up later
    reader.start()
    sink.on_frame("usdm", 2, _payload(1, 2 * fnb.PAYLOAD))  # no room until the reader releases
    reader.join()
    assert sink.dropped == 0 and sink.waited == 1
    frames, _ = _read(ring)
    assert [f[0] for f in taken] == [1] and [(f[0], len(f[3])) for f in frames] == [(2, 2 * fnb.PAYLOAD)]


def test_frame_ring_is_named_for_the_stale_segment_sweep_and_unlinked_on_stop():
    from hftshm.feed.live_client import Subscription, market_for
    from hftshm.feed.live_net import NetworkProcess
    from hftshm.runtime.segments import _RUN_PATTERN
    from hftshm.transport.segment import Segment, SegmentNotFound

    sub = Subscription(market_for("usdm", "ws://127.0.0.1:9/stream", "http://127.0.0.1:9/d"), ("BTCUSDT",))
    net = NetworkProcess([sub])
    name = net.ring.name
    # a worker killed with its ring still named: the next run's sweep recognises the dead pid's segment
    assert _RUN_PATTERN.match(name) and name.startswith(f"hftshm_{__import__('os').getpid()}_")
    net.stop()  # never started: still unlinks
    try:
        Segment.attach(name)
        raise AssertionError("the frame ring outlived stop()")
    except SegmentNotFound:
        pass
