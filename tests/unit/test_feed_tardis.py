"""Tardis.dev CSV import: files derived from the real spot recording rebuild the same book; snapshots
(is_snapshot turning true, book_snapshot_25) replace the book; a missing snapshot is a clear error."""

from __future__ import annotations

import gzip

import pytest
from typer.testing import CliRunner

from hftshm.cli import app
from hftshm.feed.binance import FeedImportError, import_files
from hftshm.feed.instruments import instruments_of
from hftshm.feed.tardis import import_tardis
from hftshm.feed.testing import read_tick_csv
from tests.market_files import SPOT_FIRST, canonical_rows, final_book, tardis_from_canonical

ROWS = 60_000  # the snapshot, then some 300 diff messages, trades and quotes of the real spot day
T_US = 1_723_161_256_000_000


@pytest.fixture(scope="module")
def spot(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tardis")
    full = tmp / "binance.csv.gz"
    import_files([SPOT_FIRST], full)
    rows = canonical_rows(full, ROWS)
    # cut at a message boundary: the original's first ROWS rows and the Tardis files hold the same messages
    while rows[-1][:4] == rows[-2][:4] and rows[-1][7] == rows[-2][7]:
        rows.pop()
    rows.pop()
    original = tmp / "original.csv"
    original.write_text("exch_ts_ns,local_ts_ns,symbol,kind,side,price,qty,update_id\n"
                        + "".join(",".join(r) + "\n" for r in rows))
    return tmp, rows, original


def test_tardis_files_from_the_real_day_rebuild_the_same_book(spot):
    tmp, rows, original = spot
    out = tmp / "from_tardis.csv.gz"
    summary = import_tardis(tardis_from_canonical(rows, tmp / "t"), out)
    assert summary.rejects == {} and summary.snapshots_applied == 1
    kinds = [r[3] for r in rows]
    assert summary.rows_by_kind["depth"] == kinds.count("depth") and summary.rows_by_kind["trade"] == kinds.count("trade")
    assert summary.rows_by_kind["bbo"] == kinds.count("bbo")
    (inst,) = instruments_of(out)
    assert (inst.symbol, inst.market, inst.tick_size) == ("ETHUSDT", "spot", "0.01")  # exchange "binance" is spot
    want, valid = final_book(original, "ETHUSDT")
    got, valid_too = final_book(out, "ETHUSDT")
    assert valid and valid_too and got == want and len(want[0]) == 50


def test_a_missing_snapshot_is_a_clear_error_and_nothing_is_written(spot):
    tmp, rows, _ = spot
    files = tardis_from_canonical(rows, tmp / "nosnap", with_snapshot=False)
    out = tmp / "nosnap.csv.gz"
    result = CliRunner().invoke(app, ["data", "import", "--format", "tardis", *map(str, files), "-o", str(out)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "book.csv.gz:2: ETHUSDT: incremental_book_L2 update before any snapshot" in text
    assert not out.exists() and not (tmp / "nosnap.csv.gz.partial").exists()
    assert not (tmp / "nosnap.csv.gz.instruments.json").exists()


def _write(path, header, rows):
    with gzip.open(path, "wt") as handle:
        handle.write(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def test_is_snapshot_turning_true_resets_the_book_and_one_local_timestamp_is_one_message(tmp_path):
    header = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
    src = _write(tmp_path / "b.csv.gz", header, [
        ("binance-futures", "BTCUSDT", T_US, T_US, "true", "bid", "100.0", "1"),
        ("binance-futures", "BTCUSDT", T_US, T_US, "true", "bid", "99.9", "2"),
        ("binance-futures", "BTCUSDT", T_US, T_US, "true", "ask", "100.1", "1"),
        ("binance-futures", "BTCUSDT", T_US + 5, T_US + 9, "false", "bid", "99.9", "0"),
        ("binance-futures", "BTCUSDT", T_US + 5, T_US + 9, "false", "ask", "100.2", "3"),
        ("binance-futures", "BTCUSDT", T_US + 7, T_US + 11, "false", "ask", "100.1", "0"),
        # a new snapshot (e.g. after a reconnect): the book is what it says, nothing of the old one
        ("binance-futures", "BTCUSDT", T_US + 20, T_US + 30, "true", "bid", "98.0", "4"),
        ("binance-futures", "BTCUSDT", T_US + 20, T_US + 30, "true", "ask", "98.5", "5"),
    ])
    out = tmp_path / "o.csv"
    summary = import_tardis([src], out)
    assert summary.snapshots_applied == 2
    rows = read_tick_csv(out)
    assert [(r[3], r[7]) for r in rows] == [("snapshot", "1")] * 3 + [("depth", "2")] * 2 + [("depth", "3")] + \
        [("snapshot", "4")] * 2
    assert rows[3][:2] == [str((T_US + 5) * 1000), str((T_US + 9) * 1000)]  # microseconds -> ns
    (bids, asks), valid = final_book(out, "BTCUSDT")
    assert valid and bids == [("98.0", "4")] and asks == [("98.5", "5")]
    assert instruments_of(out)[0].market == "linear"  # binance-futures


def test_book_snapshot_25_trades_and_quotes_merge_by_local_time(tmp_path):
    snap_header = "exchange,symbol,timestamp,local_timestamp," + ",".join(
        f"{side}[{k}].{f}" for k in range(2) for side in ("asks", "bids") for f in ("price", "amount"))
    snap = _write(tmp_path / "s.csv.gz", snap_header, [
        ("binance-delivery", "ETHUSD_PERP", T_US, T_US + 1, "2600.01", "5", "2600.00", "7", "2600.02", "1", "2599.99", "2"),
        ("binance-delivery", "ETHUSD_PERP", T_US + 10, T_US + 11, "2600.02", "4", "2600.01", "9", "", "", "", ""),
    ])
    trades = _write(tmp_path / "t.csv.gz", "exchange,symbol,timestamp,local_timestamp,id,side,price,amount", [
        ("binance-delivery", "ETHUSD_PERP", T_US + 4, T_US + 5, "77", "sell", "2600.00", "3"),
        ("binance-delivery", "ETHUSD_PERP", T_US + 6, T_US + 7, "78", "unknown", "2600.00", "1"),
    ])
    out = tmp_path / "o.csv"
    summary = import_tardis([snap, trades], out)
    assert summary.dropped["trade_without_aggressor_side"] == 1
    rows = read_tick_csv(out)
    assert [r[3] for r in rows] == ["snapshot"] * 4 + ["trade"] + ["snapshot"] * 2
    (bids, asks), _ = final_book(out, "ETHUSD_PERP")
    assert bids == [("2600.01", "9")] and asks == [("2600.02", "4")]
    (inst,) = instruments_of(out)
    assert (inst.market, inst.contract_size, inst.lot_size) == ("inverse", "10", "1")


def test_not_a_tardis_file_and_malformed_rows(tmp_path):
    bad = _write(tmp_path / "x.csv.gz", "a,b,c", [(1, 2, 3)])
    with pytest.raises(FeedImportError, match="not a Tardis CSV"):
        import_tardis([bad], tmp_path / "o.csv")
    header = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
    src = _write(tmp_path / "t.csv.gz", header, [("binance", "ETHUSDT", T_US, T_US, "1", "buy", "nan", "1"),
                                                  ("binance", "ETHUSDT", T_US, T_US, "2", "buy", "2600.01", "1")])
    summary = import_tardis([src], tmp_path / "o.csv")
    assert summary.rejects == {"malformed_row": 1} and summary.reject_lines == [(str(src), 2, "malformed_row")]
    with pytest.raises(FeedImportError, match=r"t.csv.gz:2: malformed row"):
        import_tardis([src], tmp_path / "o.csv", strict=True)


def test_a_tick_size_the_data_is_not_on_names_the_row(tmp_path):
    header = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
    src = _write(tmp_path / "t.csv.gz", header, [("binance", "ETHUSDT", T_US, T_US, "1", "buy", "2600.10", "1"),
                                                  ("binance", "ETHUSDT", T_US, T_US, "2", "buy", "2600.15", "1")])
    result = CliRunner().invoke(app, ["data", "import", "--format", "tardis", str(src), "-o", str(tmp_path / "o.csv"),
                                      "--tick-size", "ETHUSDT=0.1"])
    assert result.exit_code == 2
    assert "t.csv.gz:3: ETHUSDT price 2600.15 is off the tick size grid 0.1" in " ".join(result.output.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv.gz"]
