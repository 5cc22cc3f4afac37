"""``hftshm record`` against the fake Binance (tests/fake_binance.py, 127.0.0.1), then ``hftshm data
import`` of what it wrote: the same books as the original recording at every update id; forced
disconnects, injected gaps, stale snapshots and bad frames are reported, never papered over."""

from __future__ import annotations

import subprocess
from pathlib import Path
import sys

import pytest

from tests.fake_binance import FakeBinance
from tests.live_helpers import SHIPPED, books_by_update_id, import_csv, record_from, truncated_original, without_local_ts

FRAMES = 2500
SCALE = 8.0  # the first 2,500 frames span ~7 s of the day: under a second of test


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("original")
    summary, rows = import_csv(truncated_original(tmp, FRAMES), tmp)
    assert not summary.gaps and summary.snapshots_applied == 1
    return rows, books_by_update_id(rows)


def test_recording_imports_to_the_same_books_and_streams(tmp_path, original):
    rows0, books0 = original
    with FakeBinance(SHIPPED, time_scale=SCALE, max_frames=FRAMES) as fake:
        report, stats = record_from(fake, tmp_path / "rec")
    assert report.frames == fake.sent == FRAMES
    assert report.snapshots == 1 and not report.gaps and not report.interruptions
    [path] = report.files
    assert path.name.startswith("binance_usdm_btcusdt_") and path.name.endswith(".gz")
    summary, rows = import_csv(path, tmp_path)
    assert not summary.gaps and not summary.rejects and summary.snapshots_applied == 1
    books = books_by_update_id(rows)
    common = set(books) & set(books0)
    assert set(books) <= set(books0) and len(common) > 0.95 * len(books0)
    assert all(books[uid] == books0[uid] for uid in common)
    # the fake serves the frames after the recorded snapshot; its own snapshot comes after the first
    # diff it served, so the recording's depth starts a few diffs later: the rest is the same rows
    for kind, short_by in (("trade", 60), ("bbo", 120), ("depth", 1000)):
        mine, theirs = without_local_ts(rows, kind), without_local_ts(rows0, kind)
        assert mine and mine == theirs[len(theirs) - len(mine):] and len(mine) >= len(theirs) - short_by, kind


def test_disconnect_and_gap_resync_with_fresh_snapshots_and_are_reported(tmp_path, original):
    _, books0 = original
    # the injected gap must come after the resync that follows the reconnect: a gap while the book
    # still waits for its snapshot is superseded by that snapshot (no second gap, rightly), which is
    # what a slow snapshot request on a loaded machine used to turn this test into
    script = {800: "disconnect", 1200: ("await_snapshots", 2), 1600: ("gap", 3)}
    with FakeBinance(SHIPPED, time_scale=SCALE, max_frames=FRAMES, script=script) as fake:
        report, stats = record_from(fake, tmp_path / "rec")
    assert stats.connects == 2 and len(report.interruptions) == 1
    assert len(report.gaps) == 2 and all(g.missing_ids > 0 for g in report.gaps)
    assert report.snapshots == 3 == fake.snapshot_requests  # first, after the reconnect, after the gap
    summary, rows = import_csv(report.files[0], tmp_path)
    # the import sees the same two gaps: the book is invalid (a clear row) until each resync
    assert len(summary.gaps) == 2 and summary.rows_by_kind["clear"] == 2 and summary.snapshots_applied == 3
    books = books_by_update_id(rows)
    clear_ids = [int(r["update_id"]) for r in rows if r["kind"] == "clear"]
    assert set(books) <= set(books0)
    common = set(books) & set(books0)
    assert all(books[uid] == books0[uid] for uid in common)
    # after each gap the book comes back (resynced) and agrees with the original again
    assert all(any(uid > cleared for uid in common) for cleared in clear_ids)
    assert len(common) > 0.8 * len(books0)


def test_bad_frames_and_stale_snapshot_are_counted_not_fatal(tmp_path):
    script = {100: "malformed", 200: "unknown", 300: "stale_snapshot", 301: ("gap", 2)}
    with FakeBinance(SHIPPED, time_scale=SCALE, max_frames=600, script=script) as fake:
        report, _ = record_from(fake, tmp_path / "rec")
    assert report.rejects["bad_json"] == 1
    assert report.ignored_streams["kline"] == 1
    assert report.stale_snapshots == 1 and len(report.gaps) == 1
    assert report.snapshots == 3  # first, the stale one after the gap, the one that replaced it
    summary, _ = import_csv(report.files[0], tmp_path)
    assert summary.rejects["bad_json"] == 1 and summary.ignored_streams["kline"] == 1
    assert summary.dropped["snapshot_older_than_buffered_diffs"] == 1 and summary.snapshots_applied == 2


def test_record_command_writes_a_recording_and_reports(tmp_path):
    with FakeBinance(SHIPPED, time_scale=SCALE, max_frames=400, script={50: "unknown"}) as fake:
        proc = subprocess.run(
            [sys.executable, "-m", "hftshm.cli", "record", "usdm:BTCUSDT", "--out", str(tmp_path),
             "--ws-url", f"usdm={fake.ws_url}", "--rest-url", f"usdm={fake.rest_url('usdm')}",
             "--max-frames", "401", "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "recorded 401 frames and 1 snapshot(s)" in proc.stdout and "gaps: 0" in proc.stdout
    assert "kline" in proc.stdout
    [path] = tmp_path.glob("binance_usdm_btcusdt_*.gz")
    summary, _ = import_csv(path, tmp_path)
    assert summary.snapshots_applied == 1 and summary.rows_by_kind["depth"] > 0


def test_record_command_without_a_server_fails_clearly(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hftshm.cli", "record", "BTCUSDT", "--out", str(tmp_path),
         "--ws-url", "usdm=ws://127.0.0.1:9/stream", "--rest-url", "usdm=http://127.0.0.1:9/fapi/v1/depth",
         "--duration", "1", "--quiet"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "no data received" in proc.stderr
    bad = subprocess.run([sys.executable, "-m", "hftshm.cli", "record", "nasdaq:AAPL", "--duration", "1"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown Binance market" in bad.stderr


HEADS = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize("market, name, symbol", [
    ("spot", "binance_spot_ethusdt_20240808_head.gz", "ETHUSDT"),  # no pu: U == previous u + 1
    ("coinm", "binance_coinm_ethusd_perp_20240808_head.gz", "ETHUSD_PERP"),
])
def test_spot_and_coinm_recordings_import_to_the_same_books(tmp_path, market, name, symbol):
    source = HEADS / name
    summary0, rows0 = import_csv(source, tmp_path)
    books0 = books_by_update_id(rows0)
    with FakeBinance(source, time_scale=SCALE, symbol=symbol, script={1200: ("gap", 1)}) as fake:
        report, _ = record_from(fake, tmp_path / "rec", market=market)
    [path] = report.files
    assert path.name.startswith(f"binance_{market}_{symbol.lower()}_")
    assert len(report.gaps) == 1 and report.snapshots == 2
    summary, rows = import_csv(path, tmp_path)
    assert len(summary.gaps) == 1 and summary.snapshots_applied == 2 and not summary.rejects
    books = books_by_update_id(rows)
    common = set(books) & set(books0)
    assert set(books) <= set(books0) and len(common) > 0.8 * len(books0)
    assert all(books[uid] == books0[uid] for uid in common)
