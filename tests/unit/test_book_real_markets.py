"""Spot and COIN-M books on real recordings: each imported as its two files (a day's end with the REST
snapshot, then the continuation across midnight), the rebuilt book agrees with the exchange's own best
bid/offer (bookTicker) at every update id both share, on both sides of midnight; the import is
byte-for-byte stable; the continuation alone is refused (no snapshot, no book)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from hftshm.book.book import BookSet
from hftshm.codes import EventKind, Side
from hftshm.feed import cache
from hftshm.feed.binance import FeedImportError, import_files
from hftshm.feed.instruments import instruments_of, resolve

DATA = Path(__file__).resolve().parents[2] / "data"
MIDNIGHT_NS = 1_723_161_600_000_000_000  # 2024-08-09 00:00:00 UTC

MARKETS = {
    # name: (files, symbol, market, tick, lot, contract, bookTickers compared (before, after midnight)).
    # Spot's lot is the data's 0.00002, not the exchange's order lot 0.0001: three book levels hold
    # quantities like 47.50196 (the largest step dividing every quantity seen is what is inferred)
    "spot": (("binance_spot_ethusdt_20240808.gz", "binance_spot_ethusdt_20240809.gz"), "ETHUSDT", "spot",
             "0.01", "0.00002", "1", (577, 479)),
    "coinm": (("binance_coinm_ethusd_perp_20240808.gz", "binance_coinm_ethusd_perp_20240809.gz"), "ETHUSD_PERP",
              "inverse", "0.01", "1", "10", (1345, 933)),
}


def _digest(path: Path) -> str:
    with gzip.open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture(scope="module", params=sorted(MARKETS))
def imported(request, tmp_path_factory):
    files, *_ = MARKETS[request.param]
    sources = [DATA / f for f in files]
    for source in sources:
        if not source.exists():
            pytest.fail(f"{source} is missing: the project ships it (see data/README.md)")
    out = tmp_path_factory.mktemp(request.param) / f"{request.param}.csv.gz"
    summary = import_files(sources, out)
    return request.param, out, summary


def test_import_of_two_files_is_one_gapless_recording_with_its_instrument(imported):
    name, out, summary = imported
    _files, symbol, market, tick, lot, contract, *_ = MARKETS[name]
    assert summary.gaps == [] and summary.rejects == {} and summary.snapshots_applied == 1
    (inst,) = instruments_of(out)
    assert (inst.symbol, inst.market, inst.tick_size, inst.lot_size, inst.contract_size) == (
        symbol, market, tick, lot, contract)
    assert inst.inferred_tick_size == tick  # nothing overridden: all inferred from the rows


def test_import_is_byte_for_byte_stable(imported, tmp_path):
    name, out, _summary = imported
    files = MARKETS[name][0]
    again = tmp_path / "again.csv.gz"
    import_files([DATA / f for f in files], again)
    assert _digest(again) == _digest(out)
    assert again.read_bytes() == out.read_bytes()  # the .gz itself: no time stamp or file name in its header
    assert again.with_name(again.name + ".instruments.json").read_text().replace("again.csv.gz", "X") == \
        out.with_name(out.name + ".instruments.json").read_text().replace(out.name, "X")
    assert _digest(out) == PINNED[name]


PINNED = {
    "spot": "7997ff31e3ef7968cc501e9d13eac8c20a976a2b9a25486100282dfdb4e43f7c",
    "coinm": "763cbc30fdb03e7143536b08ae98b9544a93c32737f51cb601af07fdbf93044c",
}


def test_book_agrees_with_every_matching_bookticker_across_midnight(imported, tmp_path):
    name, out, _summary = imported
    symbol = MARKETS[name][1]
    symbols = resolve(None, instruments_of(out))
    events = np.array(cache.load(out, symbols, cache=tmp_path / "c.events.bin").events)
    tick = symbols.by_name(symbol).tick_size
    books = BookSet(symbols)
    after = {}  # depth update id -> (best bid ticks, best ask ticks) once that diff is applied
    for block in books.apply_top(events, levels=1):
        for r in range(len(block.meta)):
            if events[int(block.meta[r, 7])]["kind"] == EventKind.DEPTH:
                after[int(block.meta[r, 3])] = (int(block.bid_px[r, 0]), int(block.ask_px[r, 0]))
    bbo = events[events["kind"] == EventKind.BBO]
    bids, asks = bbo[bbo["side"] == Side.BUY], bbo[bbo["side"] == Side.SELL]
    assert np.array_equal(bids["update_id"], asks["update_id"])
    compared = {False: 0, True: 0}
    mismatched = 0
    for bid, ask in zip(bids, asks):
        state = after.get(int(bid["update_id"]))
        if state is None:
            continue
        compared[int(bid["local_ts_ns"]) >= MIDNIGHT_NS] += 1
        if state != (round(bid["price"] / tick), round(ask["price"] / tick)):
            mismatched += 1
    print(f"{name}: compared {compared} bookTickers (before, after midnight) with the rebuilt book")
    assert mismatched == 0
    assert (compared[False], compared[True]) == MARKETS[name][6]
    book = books[symbol]
    assert book.valid and not any(book.issues().get(i) for i in book.issues() if i < 20)


@pytest.mark.parametrize("name", sorted(MARKETS))
def test_continuation_alone_is_refused_not_turned_into_a_book(name, tmp_path):
    second = DATA / MARKETS[name][0][1]
    out = tmp_path / "alone.csv.gz"
    with pytest.raises(FeedImportError, match="no depth snapshot") as info:
        import_files([second], out)
    assert second.name in str(info.value) and "continuation" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
