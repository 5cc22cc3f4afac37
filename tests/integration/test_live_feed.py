"""The live feed (hftshm.feed.live) against the fake Binance on 127.0.0.1: books and rings as the
replay publishes them; a gap or a stalled connection makes the book invalid until the resync."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hftshm.codes import EventKind
from hftshm.feed.live import LiveFeed
from hftshm.feed.live_client import Subscription, market_for
from hftshm.metrics import histogram_nb
from hftshm.symbols import DEFAULT_SYMBOLS
from tests.fake_binance import FakeBinance
from tests.live_helpers import SHIPPED, shipped_frames


def run_live(fake, *, rings_out=(), heartbeat_timeout_s=5.0, settle_s=0.3, market="usdm", symbol="BTCUSDT",
             symbols=DEFAULT_SYMBOLS, network="thread"):
    """Run the live feed until the fake's timeline ended and everything sent was taken; returns
    (feed, the symbol's book validity changes over time, records drained from the rings)."""
    sub = Subscription(market_for(market, fake.ws_url, fake.rest_url(market)), (symbol,))
    feed = LiveFeed([sub], symbols, heartbeat_timeout_s=heartbeat_timeout_s, backoff_initial_s=0.05,
                    batch_frames=256, network=network)
    for ring in rings_out:
        feed.add_output(ring)
    feed.warm_up()
    drained = {ring.name: [] for ring in rings_out}
    validity = [feed.book_valid(symbol)]
    feed.start()
    try:
        deadline = time.monotonic() + 120
        end = None
        while time.monotonic() < deadline:
            if feed.step() == 0:
                time.sleep(0.0005)
            for ring in rings_out:
                view = ring.poll(1 << 20)
                if len(view):
                    drained[ring.name].append(view.copy())
                ring.release()
            valid = feed.book_valid(symbol)
            if valid != validity[-1]:
                validity.append(valid)
            if end is None and fake.done.is_set() and feed.client.stats.frames >= fake.sent:
                end = time.monotonic() + settle_s
            if end is not None and time.monotonic() > end and feed.frames_waiting == 0 and not feed.pending:
                break
    finally:
        feed.close()
    return feed, validity, {k: np.concatenate(v) if v else None for k, v in drained.items()}


@pytest.mark.parametrize("network", ["process", "thread"])
def test_live_feed_publishes_books_and_events_like_the_replay(rings, network):
    md, books = rings("market_event"), rings("book_snapshot")
    with FakeBinance(SHIPPED, time_scale=8.0, max_frames=1500) as fake:
        feed, validity, out = run_live(fake, rings_out=(md, books), network=network)
    assert validity == [False, True]
    events, snaps = out[md.name], out[books.name]
    assert len(events) == feed.events_published > 5000
    assert np.array_equal(events["seq"], np.arange(len(events)))  # dense, nothing lost
    assert {int(k) for k in np.unique(events["kind"])} >= {EventKind.DEPTH, EventKind.TRADE, EventKind.BBO,
                                                          EventKind.SNAPSHOT}
    assert len(snaps) == feed.snapshots_published > 0
    last = snaps[-1]
    book = feed.books["BTCUSDT"]
    assert last["bid_px"][0] == pytest.approx(book.best_bid) and last["ask_px"][0] == pytest.approx(book.best_ask)
    assert book.best_bid < book.best_ask
    # latencies: recorded, never negative (exchange->receive is measured above the clock offset)
    for hist in (feed.hist_exch_to_recv, feed.hist_recv_to_publish):
        assert hist[histogram_nb.COUNT] > 0 and hist[histogram_nb.NEGATIVE] == 0
    assert feed.clock_offset_ns is not None


def _wait(condition, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_the_network_thread_publishes_each_read_without_the_feed_thread_stepping(rings):
    md = rings("market_event")
    with FakeBinance(SHIPPED, time_scale=8.0, max_frames=600) as fake:
        sub = Subscription(market_for("usdm", fake.ws_url, fake.rest_url("usdm")), ("BTCUSDT",))
        feed = LiveFeed([sub], DEFAULT_SYMBOLS, heartbeat_timeout_s=5.0, network="thread")
        feed.add_output(md)
        feed.warm_up()
        feed.start()  # and never step() here
        try:
            assert fake.done.wait(60)
            assert _wait(lambda: feed.client.stats.frames >= fake.sent and feed.frames_waiting == 0)
        finally:
            feed.close()
    assert feed.decoder.stats.frames == fake.sent + 1  # every frame and the snapshot
    events = md.poll(1 << 20)
    assert len(events) == feed.events_published > 1000 and feed.book_valid("BTCUSDT")
    assert np.array_equal(events["seq"], np.arange(len(events)))
    md.release()


def test_an_error_on_the_network_thread_is_raised_by_the_feed_thread_step():
    with FakeBinance(SHIPPED, time_scale=8.0, max_frames=300) as fake:
        sub = Subscription(market_for("usdm", fake.ws_url, fake.rest_url("usdm")), ("BTCUSDT",))
        feed = LiveFeed([sub], DEFAULT_SYMBOLS, heartbeat_timeout_s=5.0, network="thread")
        feed.warm_up()

        def broken(frames):
            raise RuntimeError("decoder broke")

        feed.decoder.rows = broken
        feed.start()
        try:
            assert _wait(lambda: feed._network_error is not None)
            with pytest.raises(RuntimeError, match="decoder broke"):
                feed.step()
        finally:
            feed.close()


def test_gap_marks_the_book_invalid_until_the_fresh_snapshot():
    with FakeBinance(SHIPPED, time_scale=8.0, max_frames=2000, script={900: ("gap", 2)}) as fake:
        feed, validity, _ = run_live(fake, network="process")  # the snapshot request crosses the pipe
    assert validity == [False, True, False, True]
    [gap] = feed.gaps()
    assert gap.symbol == "BTCUSDT" and gap.missing_ids > 0
    assert feed.client.stats.snapshots == 2 == fake.snapshot_requests
    assert feed.books["BTCUSDT"].issues()  # the clear is on the book's record


def test_stalled_connection_is_detected_and_reconnected():
    with FakeBinance(SHIPPED, time_scale=4.0, max_frames=2500, script={600: "stall"}) as fake:
        feed, validity, _ = run_live(fake, heartbeat_timeout_s=0.4, network="process")  # stall seen in the child
    stats = feed.client.stats
    assert stats.stalls >= 1 and stats.connects >= 2 and fake.connections >= 2
    # invalid from the stall until the snapshot after the reconnect, then valid again
    assert validity[:4] == [False, True, False, True]
    assert feed.decoder.stats.interruptions >= 1 and stats.snapshots >= 2


def test_malformed_and_unknown_frames_are_counted_not_fatal():
    script = {100: "malformed", 200: "unknown", 300: "stale_snapshot", 301: ("gap", 1)}
    with FakeBinance(SHIPPED, time_scale=8.0, max_frames=800, script=script) as fake:
        feed, validity, _ = run_live(fake)
    stats = feed.stats()
    assert stats["rejects"] == {"usdm": {"bad_json": 1}}
    assert stats["ignored_streams"] == {"usdm": {"kline": 1}}
    assert stats["dropped"]["usdm"]["snapshot_older_than_buffered_diffs"] == 1
    assert validity == [False, True, False, True]  # the stale snapshot was replaced by a fresh one


def test_feed_worker_with_source_binance_becomes_the_live_worker(rings):
    import logging
    from pathlib import Path

    from hftshm.feed.live_worker import LiveFeedWorker
    from hftshm.feed.worker import FeedWorker
    from hftshm.metrics.histogram import new_histogram
    from hftshm.runtime.worker import WorkerContext

    md = rings("market_event")
    with FakeBinance(SHIPPED, time_scale=8.0, max_frames=800) as fake:
        worker = FeedWorker(source="binance", ws_url={"usdm": fake.ws_url}, rest_url={"usdm": fake.rest_url()},
                            live_network="process")
        ctx = WorkerContext(name="feed", params={}, inputs={}, outputs={"md": md}, config=None,
                            counters=np.zeros(32, np.int64),
                            histograms={"exch_to_recv": new_histogram(), "recv_to_publish": new_histogram()},
                            run_dir=Path("."), log=logging.getLogger("test.live"))
        worker.on_start(ctx)
        try:
            assert isinstance(worker, LiveFeedWorker)
            assert worker.wake_rings == [worker.feed.net.ring]  # the process's park wakes on the frame ring
            deadline = time.monotonic() + 60
            while not (fake.done.is_set() and worker.feed.decoder.stats.frames >= fake.sent + 1):
                assert time.monotonic() < deadline
                if not worker.do_work():
                    time.sleep(0.001)
                md.poll(1 << 20)
                md.release()
            worker._counters()
        finally:
            worker.on_close()
    c = {name: int(ctx.counters[i]) for i, name in enumerate(LiveFeedWorker.COUNTER_NAMES)}
    assert c["frames"] == 801 and c["snapshots_fetched"] == 1 and c["book_valid_gauge"] == 1
    assert c["events_published"] == worker.feed.events_published > 0 and not worker.is_done()
    assert c["clock_offset_ms_gauge"] == round(worker.feed.clock_offset_ns / 1e6)


def test_spot_stream_without_pu_builds_a_valid_book():
    from pathlib import Path

    from hftshm.symbols import Symbol, SymbolTable

    spot = SymbolTable([Symbol("ETHUSDT", 2, 0.01, 0.0001)])  # spot's lot is 0.0001
    source = Path(__file__).resolve().parents[1] / "data" / "binance_spot_ethusdt_20240808_head.gz"
    with FakeBinance(source, time_scale=8.0, symbol="ETHUSDT", script={1200: ("gap", 1)}) as fake:
        feed, validity, _ = run_live(fake, market="spot", symbol="ETHUSDT", symbols=spot)
    assert validity == [False, True, False, True]
    book = feed.books["ETHUSDT"]
    assert book.best_bid < book.best_ask and not feed.books.rejected()
    [gap] = feed.gaps()
    assert gap.expected_id + gap.missing_ids == gap.got_id  # spot: U continues the previous u + 1


def test_killed_network_process_is_reported_restarted_and_the_book_resyncs(rings):
    """SIGKILL the feed's network process mid-stream: the feed notices, marks the market disconnected
    (book invalid), starts a new network process, which reconnects and snapshots: valid again; the
    market_event ring stays dense."""
    import os
    import signal

    md = rings("market_event")
    # the kill comes after frame 300; the fake waits at 1200 for the new process's connection (a
    # process spawned on a loaded machine can take longer than the rest of a timeline of 2,500 frames)
    script = {1200: ("await_connections", 2)}
    with FakeBinance(SHIPPED, time_scale=4.0, max_frames=2500, script=script) as fake:
        sub = Subscription(market_for("usdm", fake.ws_url, fake.rest_url()), ("BTCUSDT",))
        feed = LiveFeed([sub], DEFAULT_SYMBOLS, heartbeat_timeout_s=5.0, backoff_initial_s=0.05, batch_frames=256,
                        network="process")
        feed.add_output(md)
        feed.warm_up()
        validity = [feed.book_valid("BTCUSDT")]
        events = []
        killed = None
        feed.start()
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not (killed and len(validity) >= 4):
                if feed.step() == 0:
                    time.sleep(0.0005)
                view = md.poll(1 << 20)
                if len(view):
                    events.append(view.copy())
                md.release()
                valid = feed.book_valid("BTCUSDT")
                if valid != validity[-1]:
                    validity.append(valid)
                if killed is None and valid and feed.decoder.stats.frames > 300:
                    killed = feed.net.pid
                    os.kill(killed, signal.SIGKILL)
        finally:
            feed.close()
    assert killed is not None
    assert feed.net_restarts == 1 and feed.net.pid != killed
    assert validity == [False, True, False, True]
    assert feed.decoder.stats.interruptions >= 1 and fake.connections >= 2
    assert feed.client.stats.snapshots >= 1 and feed.stats()["net_restarts"] == 1
    events = np.concatenate(events)
    assert np.array_equal(events["seq"], np.arange(len(events)))


def _publish_queued(feed, frames, chunk, rings_out) -> dict:
    """Queue ``frames`` ``chunk`` at a time (as socket reads would) and step until all is published,
    draining the rings only when a step wrote nothing (a full ring holds the batch back meanwhile)."""
    out = {ring.name: [] for ring in rings_out}
    for k in range(0, len(frames), chunk):
        feed.queue.items.extend(frames[k:k + chunk])
        while feed.queue.items or feed.pending:
            if feed.step() == 0:
                for ring in rings_out:
                    out[ring.name].append(ring.poll(1 << 20).copy())
                    ring.release()
    for ring in rings_out:
        out[ring.name].append(ring.poll(1 << 20).copy())
        ring.release()
    return {name: np.concatenate(parts) for name, parts in out.items()}


@pytest.mark.parametrize("chunk", [7, 1])
def test_one_kernel_call_per_batch_publishes_what_ring_by_ring_publishing_does(rings, chunk):
    """Two rings of each kind (the platform's feed: events for the strategies and the exchange, books
    for the strategies and risk): a batch is parsed, staged and published by one kernel call, through
    small rings that hold batches back; with three event rings the step publishes ring by ring (and
    every frame takes the import's line path). The same records reach every ring, every event's
    receive -> publish latency is recorded once; batches of trades and best bid/asks alone went
    from their bytes to the rings in the one call (the import's scanner and row formatter), and the
    import's counts of them are what its line path counts."""
    frames = shipped_frames(3000)
    sub = Subscription(market_for("usdm", "ws://127.0.0.1:9/stream", "http://127.0.0.1:9/d"), ("BTCUSDT",))
    one_call = LiveFeed([sub], DEFAULT_SYMBOLS, batch_frames=64)
    one_call_rings = (rings("market_event", 256), rings("market_event"), rings("book_snapshot", 64),
                      rings("book_snapshot"))
    for ring in one_call_rings:
        one_call.add_output(ring)
    assert one_call._one_call is not None
    by_ring = LiveFeed([sub], DEFAULT_SYMBOLS, batch_frames=64)
    by_ring_rings = (rings("market_event"), rings("market_event"), rings("market_event"), rings("book_snapshot"))
    for ring in by_ring_rings:
        by_ring.add_output(ring)
    assert by_ring._one_call is None
    got = _publish_queued(one_call, frames, chunk, one_call_rings)
    want = _publish_queued(by_ring, frames, chunk, by_ring_rings)
    assert one_call.decoder.stats.compiled_frames > 100 and by_ring.decoder.stats.compiled_frames == 0
    got_summary, want_summary = one_call.decoder.summaries()["usdm"], by_ring.decoder.summaries()["usdm"]
    for field in ("lines", "rows_by_kind", "notes", "symbols", "gaps", "rejects", "dropped"):
        assert getattr(got_summary, field) == getattr(want_summary, field), field
    assert one_call.blocked > 0  # the small rings did hold batches back
    want_events, want_snaps = want[by_ring_rings[0].name], want[by_ring_rings[3].name]
    assert len(want_events) == one_call.events_published == by_ring.events_published > 10_000
    assert len(want_snaps) == one_call.snapshots_published > 0
    for ring in one_call_rings[:2]:
        events = got[ring.name]
        for field in events.dtype.names:
            if field != "publish_ts_ns":
                assert np.array_equal(events[field], want_events[field]), (ring.name, field)
    for ring in one_call_rings[2:]:
        snaps = got[ring.name]
        for field in ("bid_px", "ask_px", "bid_qty", "ask_qty"):
            assert np.array_equal(snaps[field], want_snaps[field]), (ring.name, field)
    n_latencies = int(np.count_nonzero(want_events["kind"] != EventKind.CLEAR))
    assert one_call.hist_recv_to_publish[histogram_nb.COUNT] == n_latencies
    assert by_ring.hist_recv_to_publish[histogram_nb.COUNT] == n_latencies


def _one_call_and_by_ring(rings, frames, chunk, market="usdm"):
    """The same frames through a feed taking the one kernel call and one publishing ring by ring
    (the import's Python synchronisation for every frame); both feeds and what their rings got."""
    sub = Subscription(market_for(market, "ws://127.0.0.1:9/stream", "http://127.0.0.1:9/d"), ("BTCUSDT",))
    one_call = LiveFeed([sub], DEFAULT_SYMBOLS, batch_frames=64)
    one_call_rings = (rings("market_event"), rings("book_snapshot"))
    by_ring = LiveFeed([sub], DEFAULT_SYMBOLS, batch_frames=64)
    by_ring_rings = (rings("market_event"), rings("market_event"), rings("market_event"), rings("book_snapshot"))
    for feed, outs in ((one_call, one_call_rings), (by_ring, by_ring_rings)):
        for ring in outs:
            feed.add_output(ring)
    got = _publish_queued(one_call, frames, chunk, one_call_rings)
    want = _publish_queued(by_ring, frames, chunk, by_ring_rings)
    return one_call, by_ring, got[one_call_rings[0].name], want[by_ring_rings[0].name]


def _assert_same(one_call, by_ring, got, want, market="usdm"):
    got_summary, want_summary = one_call.decoder.summaries()[market], by_ring.decoder.summaries()[market]
    for field in ("lines", "rows_by_kind", "notes", "symbols", "gaps", "rejects", "dropped"):
        assert getattr(got_summary, field) == getattr(want_summary, field), field
    assert len(got) == len(want) > 0
    for field in got.dtype.names:
        if field not in ("publish_ts_ns", "seq"):
            assert np.array_equal(got[field], want[field]), field
    # the synchronisation state the kernel advanced is the one the import's Python reached
    assert np.array_equal(one_call.decoder.sync_tables[0], by_ring.decoder.sync_tables[0])


@pytest.mark.parametrize("chunk", [1, 5])
def test_depth_diffs_continuing_a_live_book_take_the_one_call_and_gaps_stay_the_imports(rings, chunk):
    """Depth diffs on a live book go from their bytes to the rings in the one kernel call, checked
    by the import's own rule on the import's own state words; a gap (a diff lost) and a duplicate
    (a diff delivered twice) are left to the import's Python, which reports them as it always has:
    the same records, gaps, drops and state as a feed that never takes the kernel path."""
    frames = shipped_frames(2500)
    depth_at = [k for k, (_, frame, _) in enumerate(frames) if b"@depth@" in frame[:48]]
    repeated = depth_at[len(depth_at) // 4]
    lost = depth_at[len(depth_at) // 2]
    frames = frames[:repeated] + [frames[repeated]] + frames[repeated:lost] + frames[lost + 1:]
    one_call, by_ring, got, want = _one_call_and_by_ring(rings, frames, chunk)
    _assert_same(one_call, by_ring, got, want)
    summary = one_call.decoder.summaries()["usdm"]
    assert len(summary.gaps) == 1 and summary.dropped["depth_duplicate"] == 1
    assert one_call.decoder.stats.compiled_depth_frames > 50
    assert by_ring.decoder.stats.compiled_depth_frames == 0
    assert one_call.book_valid("BTCUSDT") is False  # the gap: invalid until a fresh snapshot


def test_spot_depth_diffs_continue_by_first_id_in_the_one_call(rings):
    """Spot diffs carry no pu: a diff continues the book when U = previous u + 1 (the import's rule,
    the same function in the kernel); a break there is a gap, then a snapshot resyncs."""
    from hftshm.feed.live_record import wrap_snapshot
    from hftshm.feed.testing import depth, snapshot, trade

    def frame(line, wrap=False):
        ts, _, payload = line.partition(" ")
        body = payload.encode()
        return int(ts), wrap_snapshot("BTCUSDT", body) if wrap else body, "spot"

    book = {"bids": [("60000.00", "1.0")], "asks": [("60000.10", "1.0")]}
    lines = [frame(depth(1, 98, 100, spot=True, bids=[("60000.00", "2.0")])),
             frame(snapshot(2, 99, **book), wrap=True)]
    u = 100
    for step in range(3, 40):
        lines.append(frame(depth(step, u + 1, u + 3, spot=True, bids=[("60000.00", f"{step}.0")],
                                 asks=[("60000.10", "1.5")])))
        lines.append(frame(trade(step, step, "60000.00", "0.01", step % 2 == 0)))
        u += 3
    lines.append(frame(depth(40, u + 5, u + 6, spot=True, bids=[("59999.90", "1.0")])))  # U skips 4 ids: a gap
    one_call, by_ring, got, want = _one_call_and_by_ring(rings, lines, 1, market="spot")
    _assert_same(one_call, by_ring, got, want, market="spot")
    assert one_call.decoder.stats.compiled_depth_frames >= 30
    gaps = one_call.decoder.summaries()["spot"].gaps
    assert len(gaps) == 1 and gaps[0].expected_id == u + 1 and gaps[0].got_id == u + 5
