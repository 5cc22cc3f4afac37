"""Binance recordings -> tick CSV: book synchronisation, gaps, streams, bad lines."""

from __future__ import annotations

import pytest

from hftshm.book.issues import BookIssue
from hftshm.feed.binance import FeedImportError, import_files
from hftshm.feed.testing import book_ticker, depth, read_tick_csv, snapshot, trade, write_recording

BID = [("100.0", "1.000")]


def _import(tmp_path, lines, name="rec.gz", out="out.csv", **kw):
    src = write_recording(tmp_path / name, lines)
    summary = import_files([src], tmp_path / out, **kw)
    return summary, read_tick_csv(tmp_path / out)


def _day(gap_at: int | None = None):
    """Futures diffs 1..6 (ids 10k..10k+9), snapshot after diff 2; ``gap_at`` deletes that diff."""
    lines = []
    for k in range(1, 7):
        if k == gap_at:
            continue
        lines.append(depth(k, k * 10, k * 10 + 9, pu=k * 10 - 1, bids=[(f"{100 + k}.0", "1.000")]))
        if k == 2:
            lines.append(snapshot(3, 15, bids=[("99.0", "2.000")], asks=[("200.0", "3.000")]))
    return lines


def test_sync_drops_stale_diffs_and_applies_the_straddling_one(tmp_path):
    summary, rows = _import(tmp_path, _day())
    kinds = [r[3] for r in rows]
    # diff 1 (ids 10..19) straddles lastUpdateId 15 and is applied after the snapshot; nothing is stale here
    assert kinds[:2] == ["snapshot", "snapshot"]
    assert [r[7] for r in rows if r[3] == "depth"] == ["19", "29", "39", "49", "59", "69"]
    assert summary.gaps == []
    assert summary.snapshots_applied == 1
    # the buffered diffs carry the snapshot's receive time (when a live reader could apply them)
    snap_local = int(rows[0][1])
    assert all(int(r[1]) >= snap_local for r in rows[2:])


def test_diffs_ending_before_the_snapshot_are_dropped(tmp_path):
    lines = [depth(1, 10, 19, pu=9, bids=BID), depth(2, 20, 29, pu=19, bids=BID), snapshot(3, 25),
             depth(4, 30, 39, pu=29, bids=BID)]
    summary, rows = _import(tmp_path, lines)
    assert [r[7] for r in rows if r[3] == "depth"] == ["29", "39"]
    assert summary.dropped["depth_before_snapshot"] == 1


def test_gap_is_reported_and_book_marked_invalid_until_next_snapshot(tmp_path):
    lines = _day(gap_at=4)
    lines.append(depth(7, 70, 79, pu=69, bids=BID))
    lines.append(snapshot(8, 75, bids=[("98.0", "1.000")], asks=[("201.0", "1.000")]))
    lines.append(depth(9, 80, 89, pu=79, bids=BID))
    summary, rows = _import(tmp_path, lines)
    assert len(summary.gaps) == 1
    gap = summary.gaps[0]
    assert gap.symbol == "BTCUSDT" and gap.expected_id == 39 and gap.got_id == 49 and gap.missing_ids == 10
    assert gap.line == 5  # the diff after the missing one (line 3 holds the snapshot)
    kinds = [r[3] for r in rows]
    clear = kinds.index("clear")
    assert rows[clear][7] == "39"  # the last good update id
    # nothing between the clear and the next snapshot: diffs 5 and 6 cannot be applied
    assert kinds[clear + 1] == "snapshot"
    after = [r[7] for r in rows[clear + 1:] if r[3] == "depth"]
    assert after == ["79", "89"]  # diff 7 straddles the second snapshot (75), diff 8 continues
    assert summary.rows_by_kind["clear"] == 1


def test_spot_rules(tmp_path):
    lines = [depth(1, 10, 19, spot=True, bids=BID), snapshot(2, 19), depth(3, 20, 29, spot=True, bids=BID),
             depth(4, 30, 39, spot=True, bids=BID), depth(5, 41, 49, spot=True, bids=BID)]
    summary, rows = _import(tmp_path, lines)
    # spot drops u <= lastUpdateId (diff 10..19), the first applied has U <= 20 <= u, then U == prev u + 1
    assert [r[7] for r in rows if r[3] == "depth"] == ["29", "39"]
    assert len(summary.gaps) == 1 and summary.gaps[0].expected_id == 40 and summary.gaps[0].missing_ids == 1


def test_snapshot_older_than_the_buffer_is_not_used(tmp_path):
    lines = [depth(1, 30, 39, pu=29, bids=BID), snapshot(2, 20, bids=BID), depth(3, 40, 49, pu=39, bids=BID),
             snapshot(4, 35, bids=[("99.0", "1.000")])]
    summary, rows = _import(tmp_path, lines)
    # the first snapshot cannot connect to the diffs (ids 21..29 are missing): it is not emitted
    assert summary.dropped["snapshot_older_than_buffered_diffs"] == 1
    assert summary.gaps == []
    assert [(r[3], r[5]) for r in rows] == [("snapshot", "99.0"), ("depth", "100.0"), ("depth", "100.0")]


def test_diff_after_the_snapshot_that_does_not_straddle_is_a_gap(tmp_path):
    lines = [snapshot(1, 20, bids=BID), depth(2, 30, 39, pu=29, bids=BID)]
    summary, rows = _import(tmp_path, lines + [depth(3, 10, 12, pu=9, bids=BID)])
    assert [r[3] for r in rows] == ["snapshot", "clear"]
    assert len(summary.gaps) == 1 and summary.gaps[0].expected_id == 20 and summary.gaps[0].got_id == 30


def test_bbo_and_trades(tmp_path):
    lines = [book_ticker(1, 5, ("100.10", "1.500"), ("100.20", "0.250")),
             trade(2, 77, "100.20", "0.010", buyer_is_maker=False),
             trade(3, 78, "100.10", "0.020", buyer_is_maker=True),
             trade(4, 79, "100.10", "0.020", buyer_is_maker=True, kind="ADL")]
    summary, rows = _import(tmp_path, lines)
    assert rows[0][3:] == ["bbo", "buy", "100.10", "1.500", "5"]
    assert rows[1][3:] == ["bbo", "sell", "100.20", "0.250", "5"]
    assert rows[2][3:] == ["trade", "buy", "100.20", "0.010", "77"]  # buyer was taker: buy aggressor
    assert rows[3][3:] == ["trade", "sell", "100.10", "0.020", "78"]
    assert summary.dropped["trade_adl"] == 1
    # exchange time from E in ns; local time from the line
    assert int(rows[0][0]) - int(rows[0][1]) == 1_270_000_000


def test_prices_are_written_exactly_as_received(tmp_path):
    lines = [snapshot(1, 5, bids=[("61800.20", "2.909")], asks=[("61800.30", "0.000001")])]
    _, rows = _import(tmp_path, lines + [depth(2, 5, 9, pu=4, bids=[("58710.20", "0.014")])])
    assert [r[5] for r in rows] == ["61800.20", "61800.30", "58710.20"]
    assert rows[1][6] == "0.000001"


def test_malformed_lines_are_counted_with_line_numbers(tmp_path):
    lines = [book_ticker(1, 5, ("1.0", "1.0"), ("2.0", "1.0")), "123 {not json", "garbage", "456 {\"stream\":1}"]
    summary, rows = _import(tmp_path, lines)
    assert summary.rejects["bad_json"] == 1
    assert summary.rejects["bad_timestamp"] == 1
    assert summary.rejects["malformed_message"] == 1
    assert sorted((line, reason) for _, line, reason in summary.reject_lines) == [
        (2, "bad_json"), (3, "bad_timestamp"), (4, "malformed_message")]
    assert len(rows) == 2


def test_update_ids_past_int64_are_malformed_lines_not_a_crash(tmp_path):
    """The synchronisation keeps update ids in int64 words (binance_sync_nb): a diff or a snapshot with
    an id that does not fit is a counted, reported reject, and the lines around it are kept."""
    huge = 1 << 63
    lines = [depth(1, 10, 19, pu=9, bids=BID), snapshot(2, 15, bids=BID),
             depth(3, 20, huge, pu=19, bids=BID),  # u past int64
             snapshot(4, huge, bids=BID),  # lastUpdateId past int64
             depth(5, 20, 29, pu=19, bids=[("101.0", "2.000")])]
    summary, rows = _import(tmp_path, lines)
    assert summary.rejects["malformed_message"] == 2
    assert sorted(line for _, line, _ in summary.reject_lines) == [3, 4]
    assert not summary.gaps  # the diff after them continues the book
    assert [r[3] for r in rows].count("depth") == 2 and summary.snapshots_applied == 1


def test_strict_stops_at_the_first_bad_line(tmp_path):
    lines = [book_ticker(1, 5, ("1.0", "1.0"), ("2.0", "1.0")), "123 {not json"]
    with pytest.raises(FeedImportError, match=r"rec.gz:2: bad json"):
        _import(tmp_path, lines, strict=True)
    assert not (tmp_path / "out.csv").exists()  # no half-written output


def test_several_files_merge_by_local_time_and_gzip_or_plain(tmp_path):
    a = write_recording(tmp_path / "a.gz", [trade(1, 1, "1.0", "1.0", False), trade(5, 3, "1.0", "1.0", False)])
    b = write_recording(tmp_path / "b.txt", [trade(3, 2, "2.0", "1.0", False, symbol="ETHUSDT")])
    summary = import_files([a, b], tmp_path / "out.csv.gz")
    rows = read_tick_csv(tmp_path / "out.csv.gz")
    assert [r[7] for r in rows] == ["1", "2", "3"]
    assert summary.symbols == {"BTCUSDT", "ETHUSDT"}
    assert (tmp_path / "out.csv.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_snapshot_before_any_diff_waits_for_its_symbol(tmp_path):
    lines = [snapshot(1, 15, bids=[("99.0", "1.000")]), depth(2, 10, 19, pu=9, bids=BID)]
    summary, rows = _import(tmp_path, lines)
    assert [r[3] for r in rows] == ["snapshot", "depth"]
    assert summary.gaps == []


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(FeedImportError, match="does not exist"):
        import_files([tmp_path / "nope.gz"], tmp_path / "out.csv")


def test_a_gap_leaves_the_rebuilt_book_invalid_until_the_next_snapshot(tmp_path):
    """End to end: recording with a deleted diff -> CSV -> events -> book_snapshot records."""
    from hftshm.book.book import BookSet
    from hftshm.feed.tickcsv import iter_records
    from hftshm.symbols import DEFAULT_SYMBOLS

    lines = _day(gap_at=4)
    lines.append(snapshot(8, 75, bids=[("98.0", "1.000")], asks=[("201.0", "1.000")]))
    lines.append(depth(9, 75, 89, pu=74, bids=BID))
    _import(tmp_path, lines, out="out.csv")
    books = BookSet(DEFAULT_SYMBOLS)
    snaps = [books.apply_snapshots(block.copy()) for block in iter_records(tmp_path / "out.csv", DEFAULT_SYMBOLS)]
    valid = [int(v) for block in snaps for v in block["valid"]]
    # snapshot, diffs 1..3 valid; the gap clears and invalidates; the second snapshot and its diff valid again
    assert valid == [1, 1, 1, 1, 0, 1, 1]
    assert books["BTCUSDT"].issues().get(BookIssue.GAP_CLEAR) == 1
