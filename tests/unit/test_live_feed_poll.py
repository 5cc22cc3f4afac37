"""The live feed's ``poll`` (hftshm.feed.live): with "spin" the network thread busy-polls and rehearses
between reads, against the fake Binance, and publishes the same books as with "block"; the feed's
own thread waits in ``idle_wait`` until the network thread leaves it work; the live worker passes
``[feed] live_poll`` through and counts the rehearsals."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hftshm.feed.live import LiveFeed
from hftshm.feed.live_client import Subscription, market_for
from hftshm.feed.live_poll import BusyPollSelector
from hftshm.symbols import DEFAULT_SYMBOLS
from tests.fake_binance import FakeBinance
from tests.live_helpers import SHIPPED, shipped_frames


@pytest.fixture
def switch_interval():
    """As the live worker runs the thread (``LiveFeedWorker``): a thread waiting for the GIL (this one,
    the fake's) gets it within 50 us of asking, not CPython's default 5 ms, from a spinning loop."""
    import sys

    before = sys.getswitchinterval()
    sys.setswitchinterval(50e-6)
    yield
    sys.setswitchinterval(before)


def _fake_top(fake: FakeBinance, n: int = 10) -> tuple[list, list]:
    """The fake exchange's own book, best ``n`` levels a side, as floats."""
    fake._catch_up_book()
    bids = sorted(((float(p), float(q)) for p, q in fake.book.bids.items()), reverse=True)[:n]
    asks = sorted((float(p), float(q)) for p, q in fake.book.asks.items())[:n]
    return bids, asks


def _feed_top(feed: LiveFeed, n: int = 10) -> tuple[list, list]:
    bids, asks = feed.books["BTCUSDT"].levels_decimal(n)
    return [(float(p), float(q)) for p, q in bids], [(float(p), float(q)) for p, q in asks]


@pytest.mark.parametrize("poll", ["spin", "block"])
def test_the_feed_publishes_the_exchanges_book_with_either_poll(rings, switch_interval, poll):
    md, books = rings("market_event"), rings("book_snapshot")
    with FakeBinance(SHIPPED, time_scale=8.0, max_frames=1500) as fake:
        sub = Subscription(market_for("usdm", fake.ws_url, fake.rest_url()), ("BTCUSDT",))
        feed = LiveFeed([sub], DEFAULT_SYMBOLS, heartbeat_timeout_s=5.0, backoff_initial_s=0.05, batch_frames=256,
                        poll=poll)
        feed.add_output(md)
        feed.add_output(books)
        feed.warm_up()
        events = []
        feed.start()
        try:
            deadline = time.monotonic() + 60
            while not (fake.done.is_set() and feed.client.stats.frames >= fake.sent and feed.frames_waiting == 0
                       and not feed.pending):
                assert time.monotonic() < deadline, feed.stats()
                if feed.step() == 0:
                    if poll == "spin":
                        feed.idle_wait(0.001)
                    else:
                        time.sleep(0.0005)
                view = md.poll(1 << 20)
                if len(view):
                    events.append(view.copy())
                md.release()
                books.poll(1 << 20)
                books.release()
            time.sleep(0.05)  # a few idle periods after the last frame
            want = _fake_top(fake)
        finally:
            feed.close()
    stats = feed.stats()
    assert stats["frames"] == fake.sent + 1 and feed.book_valid("BTCUSDT")  # every frame and the snapshot
    assert _feed_top(feed) == want  # the exchange's book, level for level
    events = np.concatenate(events)
    assert len(events) == feed.events_published > 5000
    assert np.array_equal(events["seq"], np.arange(len(events)))
    assert stats["rejects"] == {} and stats["row_rejects"] == 0
    if poll == "spin":
        selector = feed.client.selector
        assert isinstance(selector, BusyPollSelector) and selector.idle == feed._idle_work
        assert stats["poll"] == "spin" and stats["rehearsals"] > 0 and stats["idle_errors"] == 0
        assert stats["polls"] > stats["idle_calls"] >= stats["rehearsals"]
        # the idle hook ran the live connection's read path with no bytes (touch) many times, and the
        # frames above all arrived once: touching delivers, takes and loses nothing
        assert feed.client.touches >= stats["rehearsals"] > 0
        # the steady state went from the socket read to the rings in one call (take_read)
        assert feed.decoder.stats.compiled_frames > 0.9 * stats["frames"]
        twin = feed.rehearsal.twin.stats()
        assert twin["rejects"] == {} and twin["row_rejects"] == 0 and feed.rehearsal.twin.book_valid("BTCUSDT")
    else:
        assert feed.client.selector is None and feed.rehearsal is None  # asyncio's own loop, as before
        assert stats["poll"] == "block" and stats["rehearsals"] == 0 and stats["polls"] == 0


def _nowhere_sub() -> Subscription:
    return Subscription(market_for("usdm", "ws://127.0.0.1:9/stream", "http://127.0.0.1:9/d"), ("BTCUSDT",))


def test_idle_wait_sleeps_until_the_network_thread_leaves_work():
    feed = LiveFeed([_nowhere_sub()], DEFAULT_SYMBOLS)  # thread + spin (the defaults); never started
    start = time.perf_counter()
    assert feed.idle_wait(0.03) is False  # nothing left: the whole timeout
    assert time.perf_counter() - start >= 0.025
    frames = shipped_frames(40)

    def network_thread():  # a read arrives while the feed's thread holds the step: its step finds 0
        time.sleep(0.05)
        feed.queue.items.extend(frames)
        feed._step_on_network_thread()

    assert feed._step_lock.acquire(blocking=False)  # the feed's thread is stepping
    helper = threading.Thread(target=network_thread)
    start = time.perf_counter()
    helper.start()
    try:
        assert feed.idle_wait(10.0) is True  # woken by the frames left, not the 10 s timeout
        waited = time.perf_counter() - start
    finally:
        feed._step_lock.release()
        helper.join()
    assert 0.04 <= waited < 5.0 and len(feed.queue.items) == 40
    while feed.queue.items:
        feed.step()
    assert feed.decoder.stats.frames == 40
    assert feed.idle_wait(0.0) is False  # taken: nothing left


def test_idle_wait_does_not_wait_unless_thread_and_spin():
    for feed in (LiveFeed([_nowhere_sub()], DEFAULT_SYMBOLS, poll="block"),
                 LiveFeed([_nowhere_sub()], DEFAULT_SYMBOLS, network="process")):
        try:
            start = time.perf_counter()
            assert feed.idle_wait(1.0) is False
            assert time.perf_counter() - start < 0.5
        finally:
            feed.close()  # (the network process's frame ring is made with the feed)


def test_a_bad_poll_is_refused():
    with pytest.raises(ValueError, match="poll must be one of block, spin"):
        LiveFeed([_nowhere_sub()], DEFAULT_SYMBOLS, poll="busy")


def test_the_live_worker_spins_rehearses_and_counts_them(rings):
    from hftshm.feed.live_worker import LiveFeedWorker
    from hftshm.feed.worker import FeedWorker
    from hftshm.metrics.histogram import new_histogram
    from hftshm.runtime.worker import WorkerContext

    md = rings("market_event")

    def context():
        return WorkerContext(name="feed", params={}, inputs={}, outputs={"md": md}, config=None,
                             counters=np.zeros(32, np.int64),
                             histograms={"exch_to_recv": new_histogram(), "recv_to_publish": new_histogram()},
                             run_dir=Path("."), log=logging.getLogger("test.live"))

    with FakeBinance(SHIPPED, time_scale=8.0, max_frames=800) as fake:
        endpoints = {"ws_url": {"usdm": fake.ws_url}, "rest_url": {"usdm": fake.rest_url()}}
        worker = FeedWorker(source="binance", **endpoints)  # live_network "thread", live_poll "spin": the defaults
        ctx = context()
        worker.on_start(ctx)
        calls = 0
        try:
            assert isinstance(worker, LiveFeedWorker) and worker.feed.poll == "spin"
            deadline = time.monotonic() + 60
            start = time.monotonic()
            while not (fake.done.is_set() and worker.feed.decoder.stats.frames >= fake.sent + 1):
                assert time.monotonic() < deadline
                worker.do_work()  # idle: waits up to 1 ms for the network thread's leftovers
                calls += 1
                md.poll(1 << 20)
                md.release()
            elapsed = time.monotonic() - start
            time.sleep(0.02)
            worker._counters()
        finally:
            worker.on_close()
        c = {name: int(ctx.counters[i]) for i, name in enumerate(LiveFeedWorker.COUNTER_NAMES)}
        assert c["frames"] == 801 and c["book_valid_gauge"] == 1 and c["rehearsals"] == worker.feed.rehearsals > 0
        assert calls < 2 * elapsed / 0.001 + 1000  # its idle steps waited (a spin makes ~10^5 calls a second)

        blocking = FeedWorker(source="binance", live_poll="block", **endpoints)
        blocking.on_start(context())
        try:
            assert blocking.feed.poll == "block" and blocking.feed.rehearsal is None
            assert blocking.feed.client.selector is None
            deadline = time.monotonic() + 30
            while blocking.feed.client.stats.connects == 0:  # (a handshake cut short upsets the fake)
                assert time.monotonic() < deadline
                time.sleep(0.01)
        finally:
            blocking.on_close()


def _ws_text(payload: bytes) -> bytes:
    from hftshm.feed.live_rehearsal import _ws_frame

    return _ws_frame(payload)


def test_a_read_taken_in_one_call_is_published_once_even_if_its_bookkeeping_fails(rings):
    """The one-call shortcut publishes before the feed's Python counts the read: if that Python fails,
    the read still counts as taken (the connection must not split and deliver it again) and the
    feed's thread raises the error at its next step, as for an error on the network thread."""
    md = rings("market_event")
    sub = Subscription(market_for("usdm", "ws://127.0.0.1:9/s", "http://127.0.0.1:9/d"), ("BTCUSDT",))
    feed = LiveFeed([sub], DEFAULT_SYMBOLS, poll="block")
    feed.add_output(md)
    feed.warm_up()
    trade = (b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":7,"p":"60000.0",'
             b'"q":"0.001","X":"MARKET","m":true}}')
    read = bytearray(_ws_text(trade) + b"\x81")  # a whole frame, then the first byte of the next
    taken = feed.take_read("usdm", read, time.time_ns())
    assert taken == (len(read) - 1, 1, len(trade))  # the whole frame, not the partial one
    assert len(md.poll(16)) == 1
    md.release()

    def broken(*args, **kwargs):
        raise RuntimeError("bookkeeping failed")

    feed.decoder.read_taken = broken
    read = bytearray(_ws_text(trade.replace(b'"t":7', b'"t":8')))
    assert feed.take_read("usdm", read, time.time_ns()) == (len(read), 1, len(trade))
    assert len(md.poll(16)) == 1  # published once
    md.release()
    with pytest.raises(RuntimeError, match="bookkeeping failed"):
        feed.step()
    assert feed.take_read("usdm", bytearray(b""), time.time_ns()) is None  # nothing whole: nothing taken
