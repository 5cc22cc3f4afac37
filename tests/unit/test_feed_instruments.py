"""Instruments learned from the data: exact inference, market kinds, overrides, the sidecar, merging with
[symbols], and the commands that use them (data import/info/books/check, run's PlatformConfig)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hftshm.cli import app
from hftshm.config import ConfigError, read_toml
from hftshm.feed import instruments as inst
from hftshm.feed.binance import FeedImportError, import_files
from hftshm.feed.testing import book_ticker, depth, snapshot, trade, write_recording, write_tick_csv
from hftshm.platform import PlatformConfig
from hftshm.symbols import DEFAULT_SYMBOLS, Symbol, SymbolTable

T = 1_723_161_256_000_000_000
ROOT = Path(__file__).resolve().parents[2]


def spot_recording(path, symbol="BTCUSDT"):
    """A spot day (no pu; 8 printed decimals; tick 0.01, lot 0.00001): the issue's spot BTCUSDT case."""
    return write_recording(path, [
        snapshot(1, 100, bids=[("61800.01000000", "0.50000000")], asks=[("61800.02000000", "1.00010000")]),
        depth(2, 99, 101, bids=[("61800.01000000", "0.70000000")], symbol=symbol, spot=True),
        depth(3, 102, 103, asks=[("61800.05000000", "0.00001000")], symbol=symbol, spot=True),
        trade(4, 7, "61800.02000000", "0.00030000", False, symbol=symbol),
    ])


def test_inference_is_exact_on_decimals_not_floats(tmp_path):
    # 0.3 and 0.7 as floats have no common float step; as decimals their gcd is 0.1
    src = write_tick_csv(tmp_path / "t.csv", [
        (T, T, "XYZ", "trade", "buy", "0.3", "1.5", 1),
        (T, T, "XYZ", "trade", "buy", "0.7", "2.25", 2),
        (T, T, "XYZ", "trade", "buy", "1.1", "0", 3),  # a zero quantity says nothing about the lot
    ])
    stats, _ = inst.scan_csv(src)
    (found,) = inst.build_instruments(stats, {})
    assert (found.tick_size, found.lot_size, found.price_decimals, found.qty_decimals) == ("0.1", "0.75", 1, 2)
    assert inst.step_from_e8(30_000_000) == Decimal("0.3")


def test_market_kind_from_the_recording():
    assert inst.market_from_recording("ETHUSD_PERP", True, False) == "inverse"
    assert inst.market_from_recording("BTCUSD_240927", False, False) == "inverse"
    assert inst.market_from_recording("BTCUSDT_240927", True, False) == "linear"  # USD-M delivery
    assert inst.market_from_recording("ETHUSDT", True, True) == "spot"
    assert inst.market_from_recording("ETHUSDT", True, False) == "linear"
    assert inst.default_contract_size("BTCUSD_PERP", "inverse") == 100
    assert inst.default_contract_size("ETHUSD_PERP", "inverse") == 10
    assert inst.default_contract_size("ETHUSDT", "spot") == 1


def test_import_records_the_spot_instrument_in_a_sidecar(tmp_path):
    out = tmp_path / "spot.csv.gz"
    summary = import_files([spot_recording(tmp_path / "r.gz")], out)
    (found,) = summary.instruments
    assert (found.symbol, found.market, found.tick_size, found.lot_size) == ("BTCUSDT", "spot", "0.01", "0.00001")
    assert inst.instruments_of(out) == [found]
    body = inst.read_sidecar(out)
    assert body["data"] == "spot.csv.gz" and body["sources"] == ["r.gz"]
    assert body["symbols"]["BTCUSDT"]["rows"]["trade"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.gz", "spot.csv.gz", "spot.csv.gz.instruments.json"]


def test_overrides_and_an_override_the_data_is_not_on(tmp_path):
    rec = spot_recording(tmp_path / "r.gz")
    out = tmp_path / "o.csv"
    summary = import_files([rec], out, overrides={"tick_size": {"BTCUSDT": "0.001"}, "lot_size": {"*": "0.000001"}})
    assert (summary.instruments[0].tick_size, summary.instruments[0].lot_size) == ("0.001", "0.000001")
    assert summary.instruments[0].inferred_tick_size == "0.01"
    with pytest.raises(FeedImportError) as info:
        import_files([rec], tmp_path / "bad.csv", overrides={"tick_size": {"BTCUSDT": "0.1"}})
    text = str(info.value)
    # file, line, value and grid
    assert "r.gz:2" in text and "61800.01000000" in text and "grid 0.1" in text and "nothing written" in text
    assert not (tmp_path / "bad.csv").exists() and not (tmp_path / "bad.csv.partial").exists()
    assert not (tmp_path / "bad.csv.instruments.json").exists()
    with pytest.raises(FeedImportError, match="not in the data"):
        import_files([rec], tmp_path / "bad.csv", overrides={"tick_size": {"DOGEUSDT": "0.1"}})
    with pytest.raises(FeedImportError, match="inverse"):
        import_files([rec], tmp_path / "bad.csv", overrides={"contract_size": {"BTCUSDT": "100"}})


def test_resolve_config_overrides_and_contradictions():
    data = [inst.Instrument("BTCUSDT", 1, "spot", "0.01", "0.00001"),
            inst.Instrument("ETHUSD_PERP", 2, "inverse", "0.01", "1", "10")]
    # no config: the data's own
    table = inst.resolve(None, data)
    assert [(s.name, s.symbol_id, s.market) for s in table] == [("BTCUSDT", 1, "spot"), ("ETHUSD_PERP", 2, "inverse")]
    assert table.by_name("ETHUSD_PERP").contract_size == 10
    # the configured futures BTCUSDT (tick 0.1) is a grid the spot data is not on: an error, not 99% off-tick
    futures = SymbolTable.from_section({"BTCUSDT": {"id": 1, "tick_size": 0.1, "lot_size": 0.001}})
    with pytest.raises(inst.InstrumentError, match=r"\[symbols.BTCUSDT\] tick_size = 0.1 disagrees"):
        inst.resolve(futures, data)
    # a finer configured grid is fine and wins; ids: configured keep theirs, data-only ones move if taken
    finer = SymbolTable.from_section({"BTCUSDT": {"id": 2, "tick_size": 0.001, "lot_size": 0.000001}})
    table = inst.resolve(finer, data)
    btc, eth = table.by_name("BTCUSDT"), table.by_name("ETHUSD_PERP")
    assert (btc.symbol_id, btc.tick_size, btc.market) == (2, 0.001, "spot")
    assert eth.symbol_id == 3
    wrong_market = SymbolTable.from_section({"BTCUSDT": {"id": 1, "tick_size": 0.01, "lot_size": 0.00001,
                                                          "market": "linear"}})
    with pytest.raises(inst.InstrumentError, match="market = 'linear' disagrees"):
        inst.resolve(wrong_market, data)
    # the built-in defaults (no config at all) give way to the data
    assert inst.resolve(DEFAULT_SYMBOLS, data).by_name("BTCUSDT").tick_size == 0.01


def test_platform_config_knows_the_data_symbols(tmp_path):
    out = tmp_path / "spot.csv.gz"
    import_files([spot_recording(tmp_path / "r.gz", symbol="SOLUSDT")], out)
    raw = read_toml(ROOT / "config" / "platform.toml")
    raw["feed"]["data"] = [str(out)]
    config = PlatformConfig.from_raw(raw)
    sol = config.symbols.by_name("SOLUSDT")
    assert (sol.symbol_id, sol.market, sol.tick_size) == (2, "spot", 0.01)
    raw["symbols"]["SOLUSDT"] = {"id": 5, "tick_size": 1.0, "lot_size": 0.001}
    with pytest.raises(ConfigError, match="SOLUSDT"):
        PlatformConfig.from_raw(raw)


def test_data_books_of_spot_data_with_the_futures_config_stops(tmp_path):
    """The issue's case: spot BTCUSDT with the configured futures BTCUSDT wrote 340 rows and exited 0."""
    out = tmp_path / "spot.csv"
    import_files([spot_recording(tmp_path / "r.gz")], out)
    config = tmp_path / "c.toml"
    config.write_text('[symbols.BTCUSDT]\nid = 1\ntick_size = 0.1\nlot_size = 0.001\n')
    runner = CliRunner()
    books = tmp_path / "b.csv"
    for command in (["data", "books", str(out), "-o", str(books)], ["data", "check", str(out)],
                    ["data", "info", str(out)]):
        result = runner.invoke(app, [*command, "-c", str(config)])
        assert result.exit_code == 2, result.output
        assert "tick_size = 0.1 disagrees" in result.output
    assert not books.exists()


def test_data_books_stops_at_an_off_grid_row_naming_it(tmp_path):
    src = write_tick_csv(tmp_path / "t.csv", [
        (T, T, "BTCUSDT", "snapshot", "buy", "100.0", "1.000", 1),
        (T, T, "BTCUSDT", "snapshot", "sell", "100.1", "1.000", 1),
        (T, T, "BTCUSDT", "depth", "buy", "100.05", "1.000", 2),
    ])
    # the sidecar claims a 0.1 grid; row 4 is not on it
    inst.write_sidecar(src, [inst.Instrument("BTCUSDT", 1, "linear", "0.1", "0.001")], {})
    books = tmp_path / "b.csv"
    result = CliRunner().invoke(app, ["data", "books", str(src), "-o", str(books), "-c", str(tmp_path / "none")])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "t.csv:4: BTCUSDT price 100.05 is off the tick size grid 0.1" in text and "not written" in text
    assert not books.exists() and not (tmp_path / "b.csv.partial").exists()
    result = CliRunner().invoke(app, ["data", "check", str(src), "-c", str(tmp_path / "none")])
    assert result.exit_code == 1 and "t.csv:4" in result.output


def test_data_info_and_import_options(tmp_path):
    rec = spot_recording(tmp_path / "r.gz", symbol="ETHUSDT")
    out = tmp_path / "o.csv.gz"
    runner = CliRunner()
    result = runner.invoke(app, ["data", "import", str(rec), "-o", str(out), "--lot-size", "ETHUSDT=0.000001",
                                 "--market", "ETHUSDT=spot", "-q"])
    assert result.exit_code == 0, result.output
    assert "instrument ETHUSDT (id 1): spot, tick 0.01, lot 0.000001" in " ".join(result.output.split())
    result = runner.invoke(app, ["data", "info", str(out), "-c", str(tmp_path / "none")])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "ETHUSDT (id 1): spot, tick 0.01, lot 0.000001" in text and "2024-08-08 23:54:16" in text
    assert "4 rows" not in text and "depth 2, snapshot 2, trade 1" in text
    result = runner.invoke(app, ["data", "import", str(rec), "-o", str(tmp_path / "x.csv"), "--tick-size",
                                 "ETHUSDT=0.1"])
    assert result.exit_code == 2 and "off the tick size grid 0.1" in " ".join(result.output.split())
    assert not (tmp_path / "x.csv").exists()


def test_symbol_table_reads_market_and_contract_size():
    table = SymbolTable.from_section({"ETHUSD_PERP": {"id": 3, "tick_size": 0.01, "lot_size": 1,
                                                      "market": "inverse", "contract_size": 10}})
    assert table.by_name("ETHUSD_PERP") == Symbol("ETHUSD_PERP", 3, 0.01, 1.0, "inverse", 10.0)
    with pytest.raises(ConfigError):
        SymbolTable.from_section({"X": {"id": 3, "tick_size": 0.01, "market": "options"}})


def test_data_info_writes_the_instruments_of_a_csv_without_them(tmp_path):
    src = write_tick_csv(tmp_path / "t.csv", [(T, T, "SOLUSDT", "trade", "buy", "150.25", "0.5", 1),
                                               (T, T, "SOLUSDT", "trade", "sell", "150.5", "1.5", 2)])
    result = CliRunner().invoke(app, ["data", "info", str(src), "--write", "--market", "SOLUSDT=spot",
                                      "-c", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    (found,) = inst.instruments_of(src)
    assert (found.market, found.tick_size, found.lot_size) == ("spot", "0.25", "0.5")
