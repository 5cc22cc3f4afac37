"""``hftshm data import|books|check`` end to end through the CLI."""

from __future__ import annotations

import gzip

import pytest
from typer.testing import CliRunner

from hftshm.cli import app
from hftshm.feed.instruments import Instrument, write_sidecar
from hftshm.feed.testing import book_ticker, depth, read_tick_csv, snapshot, trade, write_recording, write_tick_csv

T = 1_723_161_256_000_000_000


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def recording(tmp_path):
    return write_recording(tmp_path / "rec.gz", [
        depth(1, 10, 19, pu=9, bids=[("61800.10", "0.500")]),
        snapshot(2, 15, bids=[("61800.20", "2.909"), ("61800.10", "0.696")], asks=[("61800.30", "1.072")]),
        book_ticker(3, 19, ("61800.20", "2.909"), ("61800.30", "1.072")),
        depth(4, 20, 29, pu=19, bids=[("61800.20", "0.000"), ("58710.20", "0.014")], asks=[("61800.40", "0.250")]),
        trade(5, 7, "61800.30", "0.006", buyer_is_maker=False),
    ])


def test_import_books_check(runner, tmp_path, recording):
    out = tmp_path / "ticks.csv.gz"
    result = runner.invoke(app, ["data", "import", str(recording), "-o", str(out), "--format", "binance"])
    assert result.exit_code == 0, result.output
    assert "gaps: none" in result.output and "rows by kind: depth 4, snapshot 3, trade 1, bbo 2" in result.output
    rows = read_tick_csv(out)
    assert rows[0][3:] == ["snapshot", "buy", "61800.20", "2.909", "15"]

    books = tmp_path / "books.csv"
    result = runner.invoke(app, ["data", "books", str(out), "-o", str(books), "--levels", "3"])
    assert result.exit_code == 0, result.output
    lines = books.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:4] == ["exch_ts_ns", "local_ts_ns", "symbol", "bid_px_1"]
    assert header[-1] == "ask_qty_3" and len(header) == 3 + 4 * 3
    assert len(lines) == 1 + 3  # snapshot, the buffered diff, the live diff
    last = dict(zip(header, lines[-1].split(",")))
    # exact decimals from ticks and lots; missing levels empty
    bids = (last["bid_px_1"], last["bid_qty_1"], last["bid_px_2"], last["bid_px_3"])
    asks = (last["ask_px_1"], last["ask_px_2"], last["ask_qty_2"], last["ask_px_3"])
    assert bids == ("61800.1", "0.500", "58710.2", "")
    assert asks == ("61800.3", "61800.4", "0.250", "")

    result = runner.invoke(app, ["data", "check", str(out)])
    assert result.exit_code == 0, result.output
    assert "0 rejected" in result.output and "tick size: data 0.1" in result.output
    # the buffered diff's exchange time is before the REST snapshot's: noticed, not a failure
    assert "book BTCUSDT: exch_ts_backwards=1" in result.output


def test_books_fifty_levels_gzip(runner, tmp_path):
    rows = [(T, T, "BTCUSDT", "snapshot", "buy", f"{100 - k / 10:.1f}", "1.000", 1) for k in range(60)]
    rows.append((T, T, "BTCUSDT", "snapshot", "sell", "100.1", "1.000", 1))
    src = write_tick_csv(tmp_path / "t.csv", rows)
    out = tmp_path / "b.csv.gz"
    result = runner.invoke(app, ["data", "books", str(src), "-o", str(out), "--levels", "50"])
    assert result.exit_code == 0, result.output
    with gzip.open(out, "rt") as handle:
        header, row = handle.read().splitlines()
    cells = dict(zip(header.split(","), row.split(",")))
    assert cells["bid_px_50"] == "95.1" and cells["ask_px_1"] == "100.1" and cells["ask_px_2"] == ""


def test_check_reports_bad_rows_with_line_numbers_and_fails(runner, tmp_path):
    src = write_tick_csv(tmp_path / "t.csv", [
        (T, T, "BTCUSDT", "trade", "buy", "100.0", "1.000", 1),
        (T, T, "BTCUSDT", "trade", "buy", "NaN", "1.000", 2),
        (T, T, "NOPE", "trade", "buy", "100.0", "1.000", 3),
        "1,2,BTCUSDT,trade",
        (T - 5, T - 5, "BTCUSDT", "trade", "sell", "100.0", "1.000", 4),
    ])
    # the file's instruments know BTCUSDT only: NOPE rows are rows of an unknown symbol
    write_sidecar(src, [Instrument("BTCUSDT", 1, "linear", "0.1", "0.001")], {})
    result = runner.invoke(app, ["data", "check", str(src)])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "3 rejected" in out
    assert "nan_or_inf: 1 row(s)" in out and "lines 3" in out
    assert "unknown_symbol: 1 row(s)" in out and "lines 4" in out
    assert "wrong_column_count: 1 row(s)" in out and "lines 5" in out
    assert "local_ts_backwards: 1 row(s)" in out and "lines 6" in out

    result = runner.invoke(app, ["data", "check", str(src), "--strict"])
    assert result.exit_code == 2
    assert "t.csv:3" in result.output and "NaN" in result.output

    result = runner.invoke(app, ["data", "books", str(src), "-o", str(tmp_path / "b.csv"), "--strict"])
    assert result.exit_code == 2 and "t.csv:3" in result.output
    assert not (tmp_path / "b.csv").exists()


def test_import_rejects_and_strict(runner, tmp_path):
    src = write_recording(tmp_path / "r.txt", [trade(1, 1, "1.0", "1.0", False), "12 {broken"])
    result = runner.invoke(app, ["data", "import", str(src), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 1 and "r.txt:2: bad json" in result.output
    result = runner.invoke(app, ["data", "import", str(src), "-o", str(tmp_path / "o.csv"), "--strict"])
    assert result.exit_code == 2 and "r.txt:2" in result.output
    result = runner.invoke(app, ["data", "import", str(src), "-o", str(tmp_path / "o.csv"), "--format", "kraken"])
    assert result.exit_code == 2 and "not supported" in result.output


def test_progress_bar_shows_only_on_a_terminal_after_its_delay_and_not_with_quiet():
    from io import StringIO

    from rich.console import Console

    from hftshm.cli.data import _Progress

    def shown(terminal: bool, quiet: bool, delay_s: float) -> str:
        console = Console(file=StringIO(), force_terminal=terminal, width=100)
        with _Progress(console, "importing", 1 << 20, quiet, delay_s=delay_s) as progress:
            progress.update(1 << 19, rows=1000)
        return console.file.getvalue()

    bar = shown(terminal=True, quiet=False, delay_s=0)
    assert "importing" in bar and "rows/s" in bar and "MB" in bar
    assert shown(terminal=True, quiet=False, delay_s=60) == ""  # a short job: no bar
    assert shown(terminal=True, quiet=True, delay_s=0) == ""
    assert shown(terminal=False, quiet=False, delay_s=0) == ""
