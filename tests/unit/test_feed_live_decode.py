"""Live frames -> records (hftshm.feed.live_decode): the import's own code, batch by batch."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from hftshm.codes import EventFlag, EventKind
from hftshm.feed.binance import import_files
from hftshm.feed.live_decode import LiveDecoder
from hftshm.feed.live_record import wrap_snapshot
from hftshm.feed.testing import depth, local_ns, snapshot, trade
from hftshm.feed.tickcsv import iter_records
from hftshm.symbols import DEFAULT_SYMBOLS

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "binance_usdm_btcusdt_20240808.gz"
FIELDS = ("exch_ts_ns", "local_ts_ns", "symbol_id", "kind", "side", "price", "qty", "update_id", "flags")


def _frames(lines):
    out = []
    for line in lines:
        ts, _, payload = line.rstrip("\n").partition(" ")
        out.append((int(ts), payload.encode(), "usdm"))
    return out


def _decode_all(decoder, frames, batch):
    parts = [decoder.decode(frames[k:k + batch]).copy() for k in range(0, len(frames), batch)]
    return np.concatenate(parts)


def test_live_batches_give_the_records_the_import_gives(tmp_path):
    with gzip.open(SHIPPED, "rt") as handle:
        lines = [next(handle) for _ in range(3000)]
    source = tmp_path / "part.gz"
    with gzip.open(source, "wt") as out:
        out.writelines(lines)
    import_files([source], tmp_path / "part.csv")
    expected = np.concatenate(list(r.copy() for r in iter_records(tmp_path / "part.csv", DEFAULT_SYMBOLS)))
    for batch in (1, 5, 33, 97, 4096):  # the line path (<= 32 frames), the block path: the same records
        got = _decode_all(LiveDecoder(DEFAULT_SYMBOLS, ["usdm"]), _frames(lines), batch)
        assert len(got) == len(expected) > 10_000
        for name in FIELDS:
            assert np.array_equal(got[name], expected[name]), (batch, name)


def test_gap_marks_the_book_invalid_and_asks_for_a_snapshot():
    decoder = LiveDecoder(DEFAULT_SYMBOLS, ["usdm"])
    ok = [depth(1, 10, 19, pu=9, bids=[("101.0", "1.000")]), snapshot(2, 15, bids=[("99.0", "2.000")]),
          depth(3, 20, 29, pu=19, bids=[("102.0", "1.000")])]
    records = decoder.decode(_frames(ok)).copy()
    assert EventKind.SNAPSHOT in records["kind"] and decoder.snapshot_requests == []
    gap = decoder.decode(_frames([depth(4, 40, 49, pu=39, bids=[("103.0", "1.000")])])).copy()
    assert [int(k) for k in gap["kind"]] == [EventKind.CLEAR]
    assert gap["flags"][0] & EventFlag.BOOK_INVALID
    assert decoder.snapshot_requests == [("usdm", "BTCUSDT")]
    # the fresh snapshot (wrapped with its symbol, as the live feed queues it) resyncs the buffered diff
    body = snapshot(5, 45, bids=[("98.0", "1.000")]).partition(" ")[2].encode()
    resync = decoder.decode([(local_ns(5), wrap_snapshot("BTCUSDT", body), "usdm")]).copy()
    kinds = [int(k) for k in resync["kind"]]
    assert kinds[:2] == [EventKind.CLEAR, EventKind.SNAPSHOT] and kinds[-1] == EventKind.DEPTH
    assert int(resync["update_id"][-1]) == 49


def test_disconnect_clears_synced_books_and_bad_frames_are_counted():
    decoder = LiveDecoder(DEFAULT_SYMBOLS, ["usdm"])
    lines = [depth(1, 10, 19, pu=9, bids=[("101.0", "1.000")]), snapshot(2, 15, bids=[("99.0", "2.000")])]
    frames = _frames(lines) + [(local_ns(3), None, "usdm"), (local_ns(4), b'{"stream":"btcusdt@depth@0ms","data":{', "usdm"),
                               (local_ns(5), b'{"stream":"btcusdt@kline_1m","data":{"e":"kline","s":"BTCUSDT"}}', "usdm")]
    records = decoder.decode(frames)
    assert int(records["kind"][-1]) == EventKind.CLEAR and records["flags"][-1] & EventFlag.BOOK_INVALID
    assert decoder.stats.interruptions == 1
    summary = decoder.summaries()["usdm"]
    assert summary.rejects["bad_json"] == 1 and summary.ignored_streams["kline"] == 1
    # a symbol not in the platform's symbol table: the tick parser's reject, counted, nothing published
    other = decoder.decode(_frames([trade(6, 1, "0.1", "10", False, symbol="DOGEUSDT")]))
    assert decoder.stats.row_rejects == 1 and len(other) == 0
    assert decoder.row_issues() == {"unknown_symbol": 1}


def test_a_full_frame_queue_drops_and_counts_and_the_sync_sees_the_gap():
    from hftshm.feed.live import FrameQueue

    queue = FrameQueue(max_frames=2)
    lines = [depth(1, 10, 19, pu=9), snapshot(2, 15), depth(3, 20, 29, pu=19), depth(4, 30, 39, pu=29)]
    frames = _frames(lines)
    for ns, frame, market in frames[:1]:
        queue.on_frame(market, ns, frame)
    queue.on_snapshot("usdm", "BTCUSDT", frames[1][0], frames[1][1])
    for ns, frame, market in frames[2:]:
        queue.on_frame(market, ns, frame)  # the queue is full: both dropped, counted
    assert queue.dropped == 2 and len(queue.items) == 2
    decoder = LiveDecoder(DEFAULT_SYMBOLS, ["usdm"])
    decoder.decode(list(queue.items))
    decoder.decode(_frames([depth(5, 40, 49, pu=39)]))  # the next diff shows what was lost
    [gap] = decoder.summaries()["usdm"].gaps
    assert gap.expected_id == 19 and gap.got_id == 39
    assert decoder.snapshot_requests == [("usdm", "BTCUSDT")]


def test_warm_up_compiles_both_decode_paths_before_the_first_frame():
    """In a fresh process (nothing compiled yet): after warm_up, a burst of frames (the block path)
    and a frame on its own (the line path) find every kernel compiled; one compiled inside a live
    step holds the GIL for seconds and the network thread with it."""
    import subprocess
    import sys

    code = """
from hftshm.feed import binance_nb, binance_rows_nb, csv_nb, replay_nb
from hftshm.feed.live import LiveFeed
from hftshm.feed.live_client import Subscription, market_for
from hftshm.symbols import DEFAULT_SYMBOLS
kernels = (binance_nb.scan_lines, binance_nb.symbol_changes, binance_rows_nb.format_plan, csv_nb.parse_block,
           replay_nb.stage)
assert not any(k.signatures for k in kernels)
sub = Subscription(market_for("usdm", "ws://127.0.0.1:9/stream", "http://127.0.0.1:9/d"), ("BTCUSDT",))
LiveFeed([sub], DEFAULT_SYMBOLS).warm_up()
print([bool(k.signatures) for k in kernels])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[True, True, True, True, True]"
