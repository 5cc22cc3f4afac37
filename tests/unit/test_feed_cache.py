"""The event cache: built once, reopened without parsing, rebuilt when stale, memory-mapped flat."""

from __future__ import annotations

import os
import time

import numpy as np
import psutil
import pytest

from hftshm.feed import cache
from hftshm.feed.testing import write_tick_csv
from hftshm.feed.tickcsv import TickCsvError
from hftshm.symbols import DEFAULT_SYMBOLS, Symbol, SymbolTable
from hftshm.transport.layout import load as load_layout

T = 1_723_161_256_000_000_000


def _csv(path, n=50, bad=False):
    rows = [(T + i, T + i - 5, "BTCUSDT", "trade", "buy", f"{100 + i % 7}.5", "0.010", i) for i in range(n)]
    if bad:
        rows.insert(3, "1,2,BTCUSDT,trade,buy,NaN,1,3")
    return write_tick_csv(path, rows)


def test_build_then_reuse_without_parsing(tmp_path, monkeypatch):
    src = _csv(tmp_path / "x.csv.gz")
    first = cache.load(src, DEFAULT_SYMBOLS)
    assert first.path == tmp_path / "x.events.bin" and first.count == 50
    assert first.min_local_minus_exch_ns == -5
    assert list(first.events["seq"][:3]) == [0, 1, 2]
    monkeypatch.setattr(cache, "build", lambda *a, **k: pytest.fail("a fresh cache must not be rebuilt"))
    again = cache.load(src, DEFAULT_SYMBOLS)
    assert np.array_equal(np.asarray(again.events), np.asarray(first.events))
    assert not again.events.flags.writeable


@pytest.mark.parametrize("change", ["touch", "rewrite", "symbols", "fingerprint", "truncate", "garbage"])
def test_stale_cache_is_rebuilt(tmp_path, monkeypatch, change):
    src = _csv(tmp_path / "x.csv")
    built = cache.load(src, DEFAULT_SYMBOLS)
    symbols = DEFAULT_SYMBOLS
    if change == "touch":
        os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    elif change == "rewrite":
        _csv(src, n=60)
    elif change == "symbols":
        symbols = SymbolTable([Symbol("BTCUSDT", 1, 0.5, 0.001)])
    elif change == "fingerprint":
        layout = load_layout("market_event")
        monkeypatch.setattr(type(layout), "fingerprint", property(lambda self: 12345))
    elif change == "truncate":
        with open(built.path, "r+b") as handle:
            handle.truncate(cache.HEADER_BYTES + 64)
    elif change == "garbage":
        built.path.write_bytes(b"not a cache at all")
    assert cache.staleness(built.path, src, symbols) is not None
    rebuilt = cache.load(src, symbols)
    assert rebuilt.count == (60 if change == "rewrite" else 50)
    assert cache.staleness(rebuilt.path, src, symbols) is None


def test_rejects_are_kept_in_the_header(tmp_path):
    built = cache.load(_csv(tmp_path / "x.csv", bad=True), DEFAULT_SYMBOLS)
    assert built.report["issues"] == {"nan_or_inf": 1}
    assert built.report["issue_lines"] == [[5, "nan_or_inf"]]
    assert "nan_or_inf: 1 row(s)" in cache.describe_issues(built.header)[0]


def test_strict_refuses_a_cache_with_rejects(tmp_path):
    src = _csv(tmp_path / "x.csv", bad=True)
    cache.load(src, DEFAULT_SYMBOLS)
    from hftshm.feed.tickcsv import TickCsvError

    with pytest.raises(TickCsvError, match=r"x\.csv:5"):
        cache.load(src, DEFAULT_SYMBOLS, strict=True)


def test_missing_source_is_a_clear_error(tmp_path):
    from hftshm.feed.tickcsv import TickCsvError

    with pytest.raises(TickCsvError, match="does not exist"):
        cache.load(tmp_path / "nope.csv.gz", DEFAULT_SYMBOLS)


def _big_cache(path, n):
    """A cache file of ``n`` synthetic trades, written directly (no CSV)."""
    header = {"layout": "market_event", "fingerprint": load_layout("market_event").fingerprint, "count": n,
              "source": {}, "symbols": [], "min_local_minus_exch_ns": 0, "report": {}}
    block = load_layout("market_event").zeros(1 << 16)
    block["kind"] = 2
    block["side"] = 1
    block["symbol_id"] = 1
    block["price"] = 100.0
    block["qty"] = 1.0
    block["flags"] = 1
    with open(path, "wb") as handle:
        handle.write(cache._encode_header(header))
        for start in range(0, n, len(block)):
            part = block[: min(len(block), n - start)]
            part["exch_ts_ns"] = T + np.arange(start, start + len(part))
            part["local_ts_ns"] = part["exch_ts_ns"]
            handle.write(part.tobytes())
    return path


@pytest.mark.parametrize("release", [True, False])
def test_replay_memory_stays_flat_over_a_long_file(tmp_path, monkeypatch, release):
    """Replaying a 128 MB cache: RSS grows by far less than the file when passed pages are released
    (and by about the file size when they are not, which shows the measurement can see it)."""
    from hftshm.feed import replay

    n = 2_000_000  # 128 MB of records
    path = _big_cache(tmp_path / "long.events.bin", n)
    if not release:
        monkeypatch.setattr(cache.EventCache, "release", lambda self, upto: None)
    replayer = replay.Replayer([cache.open_cache(path)], DEFAULT_SYMBOLS, speed=0.0, batch_events=1 << 15)
    process = psutil.Process()
    start = peak = process.memory_info().rss
    while not replayer.done:
        replayer.step()
        peak = max(peak, process.memory_info().rss)
    replayer.close()
    assert replayer.events_published == n
    growth_mb = (peak - start) / 2**20
    if release:
        assert growth_mb < 48, f"RSS grew {growth_mb:.0f} MB replaying a 128 MB file"
    else:
        assert growth_mb > 100


def test_rows_off_their_symbols_grid_stop_the_cache_build_naming_the_row(tmp_path):
    t = 1_723_161_256_000_000_000
    src = write_tick_csv(tmp_path / "t.csv", [(t, t, "BTCUSDT", "trade", "buy", "100.0", "1.000", 1),
                                              (t, t, "BTCUSDT", "trade", "buy", "100.05", "1.000", 2)])
    with pytest.raises(TickCsvError, match=r"t.csv:3: BTCUSDT price 100.05 is off the tick size grid 0.1"):
        cache.load(src, SymbolTable([Symbol("BTCUSDT", 1, 0.1, 0.001)]))
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no cache, no partial
    assert cache.load(src, SymbolTable([Symbol("BTCUSDT", 1, 0.05, 0.001)])).count == 2
