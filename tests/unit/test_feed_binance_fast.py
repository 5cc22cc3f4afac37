"""The import's byte scanner: what it takes, what it leaves to the JSON path, and that both give the same output."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from hftshm.feed import binance_fast
from hftshm.feed import binance_nb as nb
from hftshm.feed.binance import import_files
from hftshm.feed.testing import book_ticker, depth, local_ns, snapshot, trade, write_recording

REPO = Path(__file__).resolve().parents[2]
SHIPPED_DAY = REPO / "data" / "btcusdt_20240808.csv.gz"
# the raw recording the shipped day was converted from (data/README.md)
RAW_RECORDING = REPO / "data" / "binance_usdm_btcusdt_20240808.gz"

TS = local_ns(0)
DEPTH = ('{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,"T":1723161256298,'
         '"s":"BTCUSDT","U":10,"u":19,"pu":9,"b":[["100.0","1.000"],["99.5","0.000"]],"a":[["101.0","2.000"]]}}')
BBO = ('{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":7,"s":"BTCUSDT","b":"100.0","B":"1.5",'
       '"a":"100.1","A":"2.5","T":1723161256313,"E":1723161256314}}')
TRADE = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT",'
         '"t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}')


def _scan(*payloads: str) -> np.ndarray:
    data = "".join(f"{TS} {p}\n" for p in payloads).encode()
    return nb.scan_lines(np.frombuffer(data, np.uint8), data.count(b"\n"))


def _kind(payload: str) -> int:
    return int(_scan(payload)[0, nb.C_KIND])


def _both_ways(tmp_path, lines, **kw):
    """Import the same recording through the scanner and through the JSON path; both outputs and summaries."""
    src = write_recording(tmp_path / "rec.gz", lines)
    results = []
    for fast in (True, False):
        out = tmp_path / f"out-{fast}.csv"
        summary = import_files([src], out, fast=fast, **kw)
        results.append((out.read_bytes(), summary))
    return results


def _same(results):
    (fast_out, fast), (slow_out, slow) = results
    assert fast_out == slow_out
    for name in ("lines", "rows_by_kind", "gaps", "rejects", "reject_lines", "dropped", "ignored_streams", "notes",
                 "snapshots_applied", "symbols"):
        assert getattr(fast, name) == getattr(slow, name), name
    return fast_out.decode().splitlines()[1:], fast


def test_scanner_takes_binance_message_shapes():
    table = _scan(DEPTH, BBO, TRADE)
    assert table[:, nb.C_KIND].tolist() == [nb.DEPTH, nb.BBO, nb.TRADE]
    d, b, t = table
    assert (d[nb.C_LOCAL], d[nb.C_EXCH], d[nb.C_FIRST], d[nb.C_UID], d[nb.C_PREV]) == (
        TS, 1723161256299 * 1_000_000, 10, 19, 9)
    assert (d[nb.C_NBIDS], d[nb.C_NASKS]) == (2, 1)
    assert b[nb.C_UID] == 7 and b[nb.C_EXCH] == 1723161256314 * 1_000_000 and b[nb.C_HAS_EXCH_KEY] == 1
    assert t[nb.C_TRADE_ID] == 5266583935 and t[nb.C_SIDE_SELL] == 0


@pytest.mark.parametrize("payload", [
    DEPTH.replace('"s":"BTCUSDT"', '"s":"BTC\\u0055SDT"'),  # escaped string
    TRADE.replace('"p":"61800.30"', '"p":"61800.3\\u0030"'),
    DEPTH.replace('"E":1723161256299', '"E":1.723161256299e12'),  # exponent number
    DEPTH.replace('"U":10', '"U":1e1'),
    DEPTH.replace('"U":10', '"U":-10'),
    BBO.replace('"u":7,', ''),  # missing fields
    DEPTH.replace('"pu":9,', '"pu":null,'),
    DEPTH.replace(',"a":[["101.0","2.000"]]', ''),
    TRADE.replace(',"m":false', ''),
    TRADE.replace('"X":"MARKET"', '"X":"INSURANCE_FUND"'),  # not a book trade: dropped by the JSON path
    DEPTH.replace('"u":19,', '"u":19,"u":20,'),  # duplicate key
    DEPTH.replace('["99.5","0.000"]', '["99.5","0.000","x"]'),  # a level of three
    DEPTH.replace('["99.5","0.000"]', '["99.5",0.0]'),
    BBO.replace('"b":"100.0"', '"b":100.0'),
    BBO.replace('BTCUSDT', 'BTCÜSDT'),  # non-ASCII
    BBO + " x",  # trailing garbage
    BBO[:-1],  # truncated
    '{"lastUpdateId":5,"bids":[],"asks":[]}',  # snapshots: the JSON path
    '{"stream":"btcusdt@markPrice","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1"}}',
    '[1,2]',
    '{"stream":"btcusdt@trade","data":{}}',
    '{"stream":"btcusdt@trade","data":[]}',
    TRADE.replace('"t":5266583935', '"t":12345678901234567890'),  # beyond int64
])
def test_scanner_leaves_unusual_lines_to_the_json_path(payload):
    assert _kind(payload) == nb.FALLBACK


def test_scanner_skips_unknown_keys_but_validates_them():
    nested = DEPTH.replace('"s":"BTCUSDT"', '"s":"BTCUSDT","x":{"y":[1,-2.5e3,{"z":null}],"w":true}')
    assert _kind(nested) == nb.DEPTH
    assert _kind(DEPTH.replace('"s":"BTCUSDT"', '"s":"BTCUSDT","x":[1,,2]')) == nb.FALLBACK
    assert _kind(DEPTH.replace('"s":"BTCUSDT"', '"s":"BTCUSDT","x":[1,2')) == nb.FALLBACK
    assert _kind(DEPTH.replace('"s":"BTCUSDT"', '"s":"BTCUSDT","x":01')) == nb.FALLBACK
    bare = BBO[BBO.index('"data":') + 7:-1]  # the event without the combined-stream wrapper
    assert _kind(bare) == nb.BBO
    assert _kind(bare[:-1] + ',"data":{"s":"X"}}') == nb.BBO  # a bare event's own "data" is just a key


def test_timestamps_the_scanner_does_not_take():
    data = f"9{TS} {BBO}\n+{TS} {BBO}\n{TS}  {BBO}\n".encode()
    table = nb.scan_lines(np.frombuffer(data, np.uint8), 3)
    assert table[0, nb.C_KIND] == nb.FALLBACK  # 20 digits
    assert table[1, nb.C_KIND] == nb.FALLBACK
    assert table[2, nb.C_KIND] == nb.BBO  # JSON may start after more whitespace


def test_same_output_for_odd_lines_with_line_numbers(tmp_path):
    lines = [
        snapshot(0, 15, bids=[("99.0", "2.000")], asks=[("200.0", "3.000")]),
        depth(1, 10, 19, pu=9, bids=[("100.0", "1.000")]),
        f"{local_ns(2)} {BBO}",
        f"{local_ns(3)} " + DEPTH.replace('"s":"BTCUSDT"', '"s":"BTC\\u0055SDT"').replace('"U":10,"u":19,"pu":9',
                                                                                       '"U":20,"u":29,"pu":19'),
        f"{local_ns(4)} " + TRADE.replace('"E":1723161256322', '"E":1.723161256322e12'),
        f"{local_ns(5)} " + BBO.replace('"u":7,', ''),
        f"{local_ns(6)} {BBO[:-3]}",
        "",
        "not-a-time " + BBO,
        f"{local_ns(7)} " + TRADE.replace('"X":"MARKET"', '"X":"ADL"'),
        f"{local_ns(8)} " + TRADE.replace('"e":"trade"', '"e":"aggTrade"').replace('"t":', '"a":'),
        f"{local_ns(9)} " + '{"e":"bookTicker","u":8,"s":"btcusdt","b":"1","B":"2","a":"3","A":"4"}',  # spot: no E
        f"{local_ns(10)} " + '{"u":9,"s":"ethusdt","b":"1","B":"2","a":"3","A":"4","E":0,"T":0}',
        f"{local_ns(11)} " + '{"stream":"x@markPrice","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT"}}',
        depth(12, 30, 39, pu=25, bids=[("100.0", "0.000")]),  # a gap
        depth(13, 40, 49, pu=39, asks=[("101.0", "1.000")]),
        trade(14, 77, "100.5", "0.5", True),
        book_ticker(15, 50, ("100.0", "1"), ("101.0", "2")),
    ]
    rows, summary = _same(_both_ways(tmp_path, lines))
    assert summary.rejects == {"malformed_message": 1, "bad_json": 1, "bad_timestamp": 1}
    assert [line for _, line, _ in summary.reject_lines] == [6, 7, 9]
    assert summary.dropped["trade_adl"] == 1
    assert summary.notes["bbo_without_exchange_time"] == 1
    assert summary.ignored_streams["markPriceUpdate"] == 1
    assert [g.line for g in summary.gaps] == [15]
    assert summary.symbols == {"BTCUSDT", "ETHUSDT"}
    assert any(r.split(",")[3] == "trade" and r.endswith(",77") for r in rows)


def test_same_output_with_crlf_and_tiny_blocks(tmp_path, monkeypatch):
    """Blocks and output chunks far smaller than a message: buffered diffs outlive their block."""
    monkeypatch.setattr(binance_fast, "BLOCK_BYTES", 300)
    monkeypatch.setattr(binance_fast, "CHUNK_BYTES", 64)
    lines = []
    for k in range(1, 9):
        lines.append(depth(k, k * 10, k * 10 + 9, pu=k * 10 - 1, bids=[(f"{100 + k}.0", "1.000")],
                           asks=[(f"{200 + k}.0", "1.000"), (f"{201 + k}.0", "2.000")]))
        lines.append(book_ticker(k, k * 10 + 9, (f"{100 + k}.0", "1"), (f"{200 + k}.0", "1")))
        if k == 5:
            lines.append(snapshot(5, 25, bids=[("99.0", "2.000")], asks=[("300.0", "3.000")]))
    rows, summary = _same(_both_ways(tmp_path, lines))
    assert summary.snapshots_applied == 1 and summary.dropped["depth_before_snapshot"] == 1
    # the diffs buffered before the snapshot are written after it, with its receive time
    kinds = [r.split(",")[3] for r in rows]
    assert kinds.index("snapshot") < kinds.index("depth")
    crlf = [line + "\r" for line in lines]
    _same(_both_ways(tmp_path, crlf))


def test_strict_stops_at_the_same_line(tmp_path):
    lines = [book_ticker(1, 1, ("1", "1"), ("2", "1")), f"{local_ns(2)} {BBO[:-3]}"]
    src = write_recording(tmp_path / "rec.gz", lines)
    messages = []
    for fast in (True, False):
        with pytest.raises(ValueError) as err:
            import_files([src], tmp_path / "out.csv", strict=True, fast=fast)
        messages.append(str(err.value))
    assert messages[0] == messages[1] and ":2:" in messages[0]
    import threading

    assert not any(t.name == "hftshm-import-reader" for t in threading.enumerate())  # stopped with the import


def test_real_recording_gives_the_shipped_day_both_ways(tmp_path):
    src = Path(RAW_RECORDING)
    outputs = []
    for fast in (True, False):
        out = tmp_path / f"day-{fast}.csv.gz"
        summary = import_files([src], out, fast=fast, compresslevel=1)
        with gzip.open(out, "rb") as handle:
            outputs.append((handle.read(), summary))
    rows, summary = _same(outputs)
    with gzip.open(SHIPPED_DAY, "rb") as handle:
        assert outputs[0][0] == handle.read()
    assert summary.rows == 598_753 and summary.gaps == [] and not summary.rejects


def test_a_truncated_gzip_fails_the_same_way_and_leaves_no_reader(tmp_path, monkeypatch):
    import threading

    monkeypatch.setattr(binance_fast, "BLOCK_BYTES", 256)
    src = write_recording(tmp_path / "rec.gz", [book_ticker(k, k, ("1", "1"), ("2", "1")) for k in range(200)])
    src.write_bytes(src.read_bytes()[:-40])
    errors = []
    for fast in (True, False):
        with pytest.raises(Exception) as err:
            import_files([src], tmp_path / "out.csv", fast=fast)
        errors.append(type(err.value))
        assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.partial").exists()
    assert errors[0] is errors[1]
    assert not any(t.name == "hftshm-import-reader" for t in threading.enumerate())
