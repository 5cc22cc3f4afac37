"""hftbacktest npz both ways: the real spot day exported keeps hftbacktest's ordering rules and comes back
as the same book; a foreign dtype or a missing snapshot is a clear error with nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from hftshm.cli import app
from hftshm.feed.binance import FeedImportError, import_files
from hftshm.feed.hftbacktest_npz import (DEPTH_CLEAR_EVENT, DEPTH_SNAPSHOT_EVENT, EXCH_EVENT, HBT_EVENT_DTYPE,
                                         LOCAL_EVENT, import_npz, load_events)
from hftshm.feed.hftbacktest_npz_nb import merge_orders
from hftshm.feed.instruments import instruments_of
from tests.market_files import SPOT_FIRST, final_book


@pytest.fixture(scope="module")
def spot(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("npz")
    canonical = tmp / "spot.csv.gz"
    import_files([SPOT_FIRST], canonical)
    npz = tmp / "spot.npz"
    result = CliRunner().invoke(app, ["data", "export-hftbacktest", str(canonical), "-o", str(npz), "-q"])
    assert result.exit_code == 0, result.output
    return tmp, canonical, npz


def test_export_keeps_each_side_in_its_own_time_order(spot):
    _tmp, _canonical, npz = spot
    data = load_events(npz)
    assert data.dtype == HBT_EVENT_DTYPE and data.dtype.itemsize == 64
    ev = data["ev"]
    exch = data[(ev & np.uint64(EXCH_EVENT)) != 0]
    local = data[(ev & np.uint64(LOCAL_EVENT)) != 0]
    assert len(exch) == len(local) and len(exch) <= len(data) <= 2 * len(exch)  # each event once per side
    assert (np.diff(exch["exch_ts"]) >= 0).all() and (np.diff(local["local_ts"]) >= 0).all()
    kinds = local["ev"] & np.uint64(0xFF)
    first_snapshot = int(np.flatnonzero(kinds == DEPTH_SNAPSHOT_EVENT)[0])
    assert int(kinds[first_snapshot - 1]) == DEPTH_CLEAR_EVENT  # a per-side clear leads the snapshot levels


def test_round_trip_gives_back_the_same_book_and_instrument(spot):
    tmp, canonical, npz = spot
    back = tmp / "back.csv.gz"
    summary = import_npz([npz], back, symbol="ethusdt")
    assert summary.rejects == {} and summary.dropped.get("hftbacktest_bbo_event", 0) == 0
    assert summary.rows_by_kind["bbo"] == _rows_of_kind(canonical, "bbo") > 0, "best bid/offer rows come back"
    assert _bbo_rows(back) == _bbo_rows(canonical)
    (inst,) = instruments_of(back)
    (orig,) = instruments_of(canonical)
    assert (inst.symbol, inst.tick_size, inst.lot_size) == (orig.symbol, orig.tick_size, orig.lot_size)
    want, valid = final_book(canonical, "ETHUSDT", levels=200)
    got, valid_too = final_book(back, "ETHUSDT", levels=200)
    assert valid and valid_too and got == want


def _rows_of_kind(path, kind: str) -> int:
    import gzip

    with gzip.open(path, "rt") as handle:
        return sum(1 for line in handle if line.split(",", 4)[3:4] == [kind])


def _bbo_rows(path) -> list[tuple]:
    """(times, side, price, qty) of every bbo row; update ids are renumbered by the import."""
    import gzip
    from decimal import Decimal

    with gzip.open(path, "rt") as handle:
        return [(f[0], f[1], f[4], Decimal(f[5]), Decimal(f[6])) for f in (line.rstrip("\n").split(",")
                                                                           for line in handle) if f[3] == "bbo"]


def test_a_foreign_dtype_is_refused_by_the_import_command(tmp_path):
    foreign = np.zeros(4, np.dtype([("ev", "u8"), ("ts", "i8"), ("px", "f4")]))
    src = tmp_path / "foreign.npz"
    np.savez_compressed(src, data=foreign)
    out = tmp_path / "o.csv.gz"
    result = CliRunner().invoke(app, ["data", "import", "--format", "hftbacktest", str(src), "-o", str(out),
                                      "--symbol", "BTCUSDT"])
    assert result.exit_code == 2, result.output
    assert "foreign dtype" in " ".join(result.output.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.npz"]
    result = CliRunner().invoke(app, ["data", "import", "--format", "hftbacktest", str(src), "-o", str(out)])
    assert result.exit_code == 2 and "--symbol" in result.output


def test_depth_before_any_snapshot_is_refused(spot, tmp_path):
    _tmp, _canonical, npz = spot
    data = load_events(npz)
    kinds = data["ev"] & np.uint64(0xFF)
    cut = tmp_path / "nosnap.npz"
    np.savez_compressed(cut, data=data[(kinds != DEPTH_SNAPSHOT_EVENT) & (kinds != DEPTH_CLEAR_EVENT)])
    with pytest.raises(FeedImportError, match="before any depth snapshot"):
        import_npz([cut], tmp_path / "o.csv", symbol="ETHUSDT")
    assert not (tmp_path / "o.csv").exists()


def test_merge_orders_writes_an_event_once_when_both_orders_agree():
    exch = np.array([10, 30, 20], np.int64)
    local = np.array([11, 31, 32], np.int64)
    by_exch = np.argsort(exch, kind="stable")
    by_local = np.argsort(local, kind="stable")
    index, flags = merge_orders(exch, local, by_exch, by_local, np.uint64(2), np.uint64(1))
    # event 0 heads both orders: once, both flags; event 2 (exch 20) comes before event 1 on the exchange side
    assert index.tolist() == [0, 2, 1, 2]
    assert flags.tolist() == [3, 2, 3, 1]
