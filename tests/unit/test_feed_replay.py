"""Replay: every event to every market ring in order, snapshots at consistent points, pacing by
exchange time, several sources merged, backpressure, repeat, fast-forward."""

from __future__ import annotations

import numpy as np
import pytest

from hftshm.codes import EventFlag, EventKind
from hftshm.feed import cache
from hftshm.feed.replay import Replayer
from hftshm.feed.testing import write_tick_csv
from hftshm.symbols import DEFAULT_SYMBOLS

T = 1_723_161_256_000_000_000
MS = 1_000_000


def _day(path, start_ms=0, symbol="BTCUSDT", messages=40, base=100.0):
    """A snapshot then depth diffs of 1..3 levels and trades, one message per ms."""
    rows = [(T + start_ms * MS, T + start_ms * MS - 7, symbol, "snapshot", "buy", f"{base:.1f}", "1.000", 1),
            (T + start_ms * MS, T + start_ms * MS - 7, symbol, "snapshot", "sell", f"{base + 1:.1f}", "1.000", 1)]
    for m in range(1, messages):
        ts = T + (start_ms + m) * MS
        if m % 5 == 0:
            rows.append((ts, ts - 3, symbol, "trade", "buy", f"{base + 1:.1f}", "0.010", 1000 + m))
            continue
        for k in range(m % 3 + 1):
            rows.append((ts, ts - 9, symbol, "depth", "buy", f"{base - 0.1 * k:.1f}", f"{m}.000", m + 1))
    return write_tick_csv(path, rows)


def _drain(ring, into):
    view = ring.poll(1 << 20)
    if len(view):
        into.append(view.copy())
    ring.release()


def test_every_event_and_snapshot_reaches_every_ring(tmp_path, rings):
    src = cache.load(_day(tmp_path / "d.csv"), DEFAULT_SYMBOLS)
    replayer = Replayer([src], DEFAULT_SYMBOLS, speed=0.0, batch_events=7)
    md1, md2, bk = rings("market_event"), rings("market_event"), rings("book_snapshot")
    for ring in (md1, md2, bk):
        replayer.add_output(ring)
    got = {id(r): [] for r in (md1, md2, bk)}
    while not replayer.done:
        replayer.step()
        for ring in (md1, md2, bk):
            _drain(ring, got[id(ring)])
    for ring in (md1, md2):
        events = np.concatenate(got[id(ring)])
        assert len(events) == src.count
        assert list(events["seq"]) == list(range(src.count))  # dense per ring
        keep = ("exch_ts_ns", "local_ts_ns", "price", "qty", "update_id", "kind", "side", "symbol_id")
        for name in keep:
            assert np.array_equal(events[name], np.asarray(src.events)[name])
        assert (events["publish_ts_ns"] > 0).all()
        assert events[-1]["flags"] & EventFlag.END_OF_DATA
        assert not (events[:-1]["flags"] & EventFlag.END_OF_DATA).any()
    snaps = np.concatenate(got[id(bk)])
    book_messages = int(np.count_nonzero((np.asarray(src.events)["flags"] & EventFlag.LAST_IN_MESSAGE)
                                         & (np.asarray(src.events)["kind"] != EventKind.TRADE)))
    assert len(snaps) == book_messages == replayer.snapshots_published
    assert snaps[0]["valid"] == 1 and snaps[0]["bid_px"][0] == 100.0 and snaps[0]["ask_px"][0] == 101.0
    assert list(snaps["seq"]) == list(range(len(snaps)))
    assert snaps[-1]["flags"] & EventFlag.END_OF_DATA
    assert replayer.clock_offset_ns == -9


def test_speed_paces_by_exchange_time(tmp_path):
    src = cache.load(_day(tmp_path / "d.csv", messages=100), DEFAULT_SYMBOLS)
    replayer = Replayer([src], DEFAULT_SYMBOLS, speed=2.0)
    wall0 = 10**12
    assert replayer.step(wall0) > 0  # the first message is due at once
    staged = replayer.events_published
    for wall_ms in (1, 10, 49):
        replayer.step(wall0 + wall_ms * MS)
        published = np.asarray(src.events)[: replayer.events_published]
        # at speed 2, wall ms w has released exchange ms <= 2w, and nothing later
        assert (published["exch_ts_ns"] <= T + 2 * wall_ms * MS).all()
        assert replayer.events_published > staged
        staged = replayer.events_published
    assert not replayer.done
    replayer.step(wall0 + 60 * MS)
    assert replayer.exhausted


def test_sources_merge_by_exchange_time(tmp_path):
    a = cache.load(_day(tmp_path / "a.csv", start_ms=0), DEFAULT_SYMBOLS)
    b = cache.load(_day(tmp_path / "b.csv", start_ms=1, symbol="ETHUSDT", base=2500.0), DEFAULT_SYMBOLS)
    replayer = Replayer([a, b], DEFAULT_SYMBOLS, speed=0.0, batch_events=5)
    out = []
    while not replayer.done:
        n_before = replayer.events_published
        replayer.step()
        out.append(replayer._staged[: replayer.events_published - n_before].copy())
    events = np.concatenate(out)
    assert len(events) == a.count + b.count
    # messages are whole and in exchange-time order across the two files
    heads = events[np.r_[0, np.flatnonzero(events["flags"] & EventFlag.LAST_IN_MESSAGE)[:-1] + 1]]
    assert (np.diff(heads["exch_ts_ns"]) >= 0).all()
    assert set(np.unique(events["symbol_id"])) == {1, 2}
    assert replayer.books["ETHUSDT"].best_bid == 2500.0 and replayer.books["BTCUSDT"].best_bid == 100.0


def test_block_mode_holds_the_batch_until_the_ring_has_room(tmp_path, rings):
    src = cache.load(_day(tmp_path / "d.csv"), DEFAULT_SYMBOLS)
    md = rings("market_event", capacity=8)
    replayer = Replayer([src], DEFAULT_SYMBOLS, speed=0.0, batch_events=16)
    replayer.add_output(md)
    got = []
    stalls = 0
    while not replayer.done:
        if replayer.step() == 0:
            stalls += 1
        if stalls % 3 == 0:  # a slow consumer
            _drain(md, got)
        if stalls > 10_000:
            pytest.fail("replay stalled")
    _drain(md, got)
    events = np.concatenate(got)
    assert len(events) == src.count and list(events["seq"]) == list(range(src.count))
    assert md.drops == 0


def test_drop_mode_loses_and_counts(tmp_path, rings):
    src = cache.load(_day(tmp_path / "d.csv"), DEFAULT_SYMBOLS)
    md = rings("market_event", capacity=8, backpressure="drop")
    replayer = Replayer([src], DEFAULT_SYMBOLS, speed=0.0, batch_events=16)
    replayer.add_output(md)
    got = []
    while not replayer.done:
        replayer.step()
        _drain(md, got)
    received = sum(len(g) for g in got)
    assert received < src.count and received + md.drops == src.count
    assert replayer.done


def test_repeat_shifts_time_forward_and_fast_forward_skips(tmp_path):
    src = cache.load(_day(tmp_path / "d.csv"), DEFAULT_SYMBOLS)
    replayer = Replayer([src], DEFAULT_SYMBOLS, speed=0.0, batch_events=10, repeat=3)
    staged = []
    while not replayer.done:
        before = replayer.events_published
        replayer.step()
        staged.append(replayer._staged[: replayer.events_published - before].copy())
    events = np.concatenate(staged)
    assert len(events) == 3 * src.count == replayer.events_total
    pass_starts = events["exch_ts_ns"][:: src.count]
    assert (np.diff(pass_starts) > 0).all()
    other = Replayer([cache.open_cache(src.path)], DEFAULT_SYMBOLS, speed=0.0, batch_events=10, repeat=3)
    assert other.fast_forward(src.count + 5) == src.count + 5
    rest = []
    while not other.done:
        before = other.events_published
        other.step()
        rest.append(other._staged[: other.events_published - before].copy())
    tail = np.concatenate(rest)
    assert np.array_equal(tail["exch_ts_ns"], events["exch_ts_ns"][src.count + 5:])
    assert other.books["BTCUSDT"].best_bid == replayer.books["BTCUSDT"].best_bid


def test_a_paced_replay_fast_forwards_and_carries_on_at_its_pace(tmp_path):
    """A restarted feed at speed > 0 (SIGKILLed mid-run) skips what it had published and goes on from
    there, the next event due at once: before, the fast-forward started the pacing clock at a
    far-future time and every step after it failed (int64 overflow), restart after restart."""
    src = cache.load(_day(tmp_path / "d.csv"), DEFAULT_SYMBOLS)
    plain = Replayer([cache.open_cache(src.path)], DEFAULT_SYMBOLS, speed=0.0, batch_events=10)
    plain.run()
    resumed = Replayer([cache.open_cache(src.path)], DEFAULT_SYMBOLS, speed=3.0, batch_events=10)
    half = src.count // 2
    assert resumed.fast_forward(half) == half
    assert resumed.step() > 0  # due now: no wait for the skipped span, no overflow
    resumed.speed = 0.0  # (the rest at full speed: the test is about where it resumed)
    resumed.run()
    assert resumed.events_published == src.count
    assert resumed.books["BTCUSDT"].best_bid == plain.books["BTCUSDT"].best_bid


def test_wrong_ring_layout_is_refused(tmp_path, rings):
    replayer = Replayer([cache.load(_day(tmp_path / "d.csv"), DEFAULT_SYMBOLS)], DEFAULT_SYMBOLS)
    with pytest.raises(ValueError, match="publishes market_event and book_snapshot"):
        replayer.add_output(rings("order_intent"))


def test_bad_options_are_clear_errors(tmp_path):
    src = cache.load(_day(tmp_path / "d.csv"), DEFAULT_SYMBOLS)
    for kw, text in (({"speed": -1}, "speed"), ({"batch_events": 0}, "batch_events"),
                     ({"book_levels": 11}, "book_levels"), ({"repeat": 0}, "repeat")):
        with pytest.raises(ValueError, match=text):
            Replayer([src], DEFAULT_SYMBOLS, **kw)


def test_next_due_is_the_next_events_exchange_time_scaled_by_speed(tmp_path):
    src = cache.load(_day(tmp_path / "d.csv", messages=100), DEFAULT_SYMBOLS)
    replayer = Replayer([src], DEFAULT_SYMBOLS, speed=2.0)
    assert replayer.next_due_ns() is None  # not started: nothing to wait for yet
    wall0 = 10**12
    replayer.step(wall0)
    replayer.step(wall0 + 10 * MS)  # exchange ms <= 20 are out; the next message is exchange ms 21
    published = np.asarray(src.events)[: replayer.events_published]
    next_ts = int(np.asarray(src.events)["exch_ts_ns"][replayer.events_published])
    assert next_ts > int(published["exch_ts_ns"].max())
    # due at wall0 + (next - first) / speed: the feed may sleep until just before it
    assert replayer.next_due_ns() == wall0 + (next_ts - T) // 2
    assert Replayer([src], DEFAULT_SYMBOLS, speed=0.0).next_due_ns() is None  # flood: never waits
