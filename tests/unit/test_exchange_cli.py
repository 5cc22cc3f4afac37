"""``hftshm exchange replay``: golden CSV in, golden CSV out, one test per sentence of the contract."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hftshm.cli import app

HEADER = "ts,order_id,owner,symbol,action,side,type,tif,price,qty"
OUT_HEADER = "order_id,event,price,qty,leaves_qty,contra_order_id,reason"


def replay(tmp_path: Path, rows: str, *extra: str) -> tuple[str, str, int]:
    orders = tmp_path / "orders.csv"
    orders.write_text(HEADER + "\n" + textwrap.dedent(rows).strip() + "\n")
    reports = tmp_path / "reports.csv"
    result = CliRunner().invoke(app, ["exchange", "replay", str(orders), "-o", str(reports), *extra])
    text = reports.read_text() if reports.exists() else ""
    return text, result.output, result.exit_code


def golden(rows: str) -> str:
    return OUT_HEADER + "\n" + textwrap.dedent(rows).strip() + "\n"


def test_accepted_orders_are_acked_first_refused_ones_only_rejected(tmp_path):
    out, _, code = replay(tmp_path, """
        1,1,1,BTCUSDT,new,sell,limit,gtc,100.0,1
        2,2,2,BTCUSDT,new,buy,market,,,0.5
        3,3,2,BTCUSDT,new,buy,limit,ioc,100.0,0.2
        4,4,2,BTCUSDT,new,buy,limit,fok,100.0,0.3
        5,5,2,BTCUSDT,new,buy,limit,gtc,-1,1
    """)
    assert code == 0
    assert out == golden("""
        1,ack,100,1,1,0,
        2,ack,,0.5,0.5,0,
        2,partial,100,0.5,0,1,
        1,partial,100,0.5,0.5,2,
        3,ack,100,0.2,0.2,0,
        3,fill,100,0.2,0,1,
        1,partial,100,0.2,0.3,3,
        4,ack,100,0.3,0.3,0,
        4,fill,100,0.3,0,1,
        1,fill,100,0.3,0,4,
        5,reject,-1,1,0,0,bad_price
    """.replace("2,partial,100,0.5,0,1,", "2,fill,100,0.5,0,1,"))


def test_each_execution_reports_both_sides_at_the_resting_price(tmp_path):
    out, _, _ = replay(tmp_path, """
        1,10,1,BTCUSDT,new,sell,limit,gtc,101.5,0.4
        2,11,1,BTCUSDT,new,sell,limit,gtc,101.7,0.4
        3,12,2,BTCUSDT,new,buy,limit,gtc,102.0,1
    """)
    assert out == golden("""
        10,ack,101.5,0.4,0.4,0,
        11,ack,101.7,0.4,0.4,0,
        12,ack,102,1,1,0,
        12,partial,101.5,0.4,0.6,10,
        10,fill,101.5,0.4,0,12,
        12,partial,101.7,0.4,0.2,11,
        11,fill,101.7,0.4,0,12,
    """)


def test_market_and_ioc_remainders_and_cancel_requests_get_cancel(tmp_path):
    out, _, _ = replay(tmp_path, """
        1,1,1,BTCUSDT,new,sell,limit,gtc,100,0.3
        2,2,2,BTCUSDT,new,buy,market,gtc,,1
        3,3,2,BTCUSDT,new,buy,limit,ioc,99,0.5
        4,4,1,BTCUSDT,new,sell,limit,gtc,105,0.7
        5,4,1,BTCUSDT,cancel,,,,,
        6,4,1,BTCUSDT,cancel,,,,,
        7,99,1,,cancel,,,,,
    """)
    assert out == golden("""
        1,ack,100,0.3,0.3,0,
        2,ack,,1,1,0,
        2,partial,100,0.3,0.7,1,
        1,fill,100,0.3,0,2,
        2,cancel,,0.7,0,0,ioc_remainder
        3,ack,99,0.5,0.5,0,
        3,cancel,99,0.5,0,0,ioc_remainder
        4,ack,105,0.7,0.7,0,
        4,cancel,105,0.7,0,0,user_cancel
        4,reject,,,0,0,unknown_order
        99,reject,,,0,0,unknown_order
    """)


def test_replace_reports_new_price_and_open_qty_and_crossing_replace_trades(tmp_path):
    out, _, _ = replay(tmp_path, """
        1,1,1,BTCUSDT,new,sell,limit,gtc,101,1
        2,2,2,BTCUSDT,new,buy,limit,gtc,100,0.6
        3,2,2,BTCUSDT,replace,,,,100.5,0.8
        4,2,2,BTCUSDT,replace,,,,101,0.8
    """)
    assert out == golden("""
        1,ack,101,1,1,0,
        2,ack,100,0.6,0.6,0,
        2,replace,100.5,0.8,0.8,0,
        2,replace,101,0.8,0.8,0,
        2,fill,101,0.8,0,1,
        1,partial,101,0.8,0.2,2,
    """)


def test_post_only_replaced_to_a_crossing_price_is_rejected_and_left_as_it_was(tmp_path):
    out, _, _ = replay(tmp_path, """
        1,1,1,BTCUSDT,new,sell,limit,gtc,101,1
        2,2,2,BTCUSDT,new,buy,limit,post_only,100,0.5
        3,2,2,BTCUSDT,replace,,,,101,0.5
        4,3,3,BTCUSDT,new,sell,limit,gtc,100,0.5
    """)
    assert out == golden("""
        1,ack,101,1,1,0,
        2,ack,100,0.5,0.5,0,
        2,reject,101,0.5,0,0,post_only_would_cross
        3,ack,100,0.5,0.5,0,
        3,fill,100,0.5,0,2,
        2,fill,100,0.5,0,3,
    """)


def test_fok_counts_only_tradeable_liquidity_post_only_checks_any(tmp_path):
    out, _, _ = replay(tmp_path, """
        1,1,1,BTCUSDT,new,sell,limit,gtc,100,1
        2,2,2,BTCUSDT,new,sell,limit,gtc,100,0.5
        3,3,1,BTCUSDT,new,buy,limit,fok,100,1
        4,4,1,BTCUSDT,new,buy,limit,post_only,100,0.1
        5,5,1,BTCUSDT,new,buy,limit,fok,100,0.5
    """)
    # owner 1's FOK may not count its own 1.0 at 100: only 0.5 is tradeable
    # owner 1's post-only still crosses its own order: post-only checks any resting order
    # the 0.5 FOK fills against owner 2, after self-trade prevention cancelled owner 1's order ahead of it
    assert out == golden("""
        1,ack,100,1,1,0,
        2,ack,100,0.5,0.5,0,
        3,reject,100,1,0,0,fok_cannot_fill
        4,reject,100,0.1,0,0,post_only_would_cross
        5,ack,100,0.5,0.5,0,
        1,cancel,100,1,0,0,stp
        5,fill,100,0.5,0,2,
        2,fill,100,0.5,0,5,
    """)


def test_quantity_decrease_keeps_time_priority_increase_loses_it(tmp_path):
    out, _, _ = replay(tmp_path, """
        1,1,1,BTCUSDT,new,sell,limit,gtc,100,1
        2,2,2,BTCUSDT,new,sell,limit,gtc,100,1
        3,1,1,BTCUSDT,replace,,,,100,0.5
        4,9,3,BTCUSDT,new,buy,limit,ioc,100,0.2
        5,1,1,BTCUSDT,replace,,,,100,2
        6,8,3,BTCUSDT,new,buy,limit,ioc,100,0.1
    """)
    assert out == golden("""
        1,ack,100,1,1,0,
        2,ack,100,1,1,0,
        1,replace,100,0.5,0.5,0,
        9,ack,100,0.2,0.2,0,
        9,fill,100,0.2,0,1,
        1,partial,100,0.2,0.3,9,
        1,replace,100,2,2,0,
        8,ack,100,0.1,0.1,0,
        8,fill,100,0.1,0,2,
        2,partial,100,0.1,0.9,8,
    """)


def test_unknown_symbol_is_rejected_malformed_rows_are_reported_by_line(tmp_path):
    out, err, code = replay(tmp_path, """
        1,1,1,,new,buy,limit,gtc,1,1
        2,2,1,BTCUSDT,new,up,limit,gtc,1,1
        3,x,1,BTCUSDT,new,buy,limit,gtc,1,1
        4,4,1,BTCUSDT,new,buy,limit,gtc,abc,1
        5,5,1,BTCUSDT,new,buy,limit,gtc,1
        6,6,1,BTCUSDT,new,buy,limit,gtc,1,1
    """)
    assert code == 0
    assert out == golden("""
        1,reject,1,1,0,0,unknown_symbol
        6,ack,1,1,1,0,
    """)
    for line, words in ((3, "side 'up'"), (4, "order_id 'x'"), (5, "price 'abc'"), (6, "expected 10 columns")):
        assert f"line {line}: {words}" in err.replace("\n", " ")
    _, _, strict_code = replay(tmp_path, "1,x,1,BTCUSDT,new,buy,limit,gtc,1,1", "--strict")
    assert strict_code == 1


def test_bad_numbers_are_rejects_not_crashes(tmp_path):
    out, _, code = replay(tmp_path, """
        1,1,1,BTCUSDT,new,buy,limit,gtc,nan,1
        2,2,1,BTCUSDT,new,buy,limit,gtc,0,1
        3,3,1,BTCUSDT,new,buy,limit,gtc,1e300,1
        4,4,1,BTCUSDT,new,buy,limit,gtc,100.05,1
        5,5,1,BTCUSDT,new,buy,limit,gtc,100,0
        6,6,1,BTCUSDT,new,buy,limit,gtc,100,-1
        7,7,1,BTCUSDT,new,buy,limit,gtc,100,1e300
        8,8,1,BTCUSDT,new,buy,limit,gtc,100,inf
        9,9,1,BTCUSDT,new,buy,limit,gtc,100,0.0001
        10,0,1,BTCUSDT,new,buy,limit,gtc,100,1
        11,11,1,BTCUSDT,new,buy,limit,gtc,100,1
        12,11,1,BTCUSDT,new,buy,limit,gtc,100,1
    """)
    assert code == 0
    reasons = [line.rsplit(",", 1)[1] for line in out.strip().splitlines()[1:]]
    assert reasons == ["bad_price"] * 4 + ["bad_qty"] * 5 + ["unknown_order", "", "duplicate_order_id"]


def test_prices_and_quantities_print_as_clean_decimals(tmp_path):
    # 0.1 + 0.2 style noise on input is within float tolerance of the grid and prints clean
    out, _, _ = replay(tmp_path, """
        1,1,1,BTCUSDT,new,sell,limit,gtc,61800.100000000006,0.30000000000000004
        2,2,2,BTCUSDT,new,buy,limit,gtc,61800.2,0.1
    """)
    assert out == golden("""
        1,ack,61800.1,0.3,0.3,0,
        2,ack,61800.2,0.1,0.1,0,
        2,fill,61800.1,0.1,0,1,
        1,partial,61800.1,0.1,0.2,2,
    """)


def test_bad_header_and_missing_file_exit_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,price\n1,2\n")
    result = CliRunner().invoke(app, ["exchange", "replay", str(bad), "-o", str(tmp_path / "r.csv")])
    assert result.exit_code == 2 and "expected header" in result.output
    result = CliRunner().invoke(app, ["exchange", "replay", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "r.csv")])
    assert result.exit_code == 2 and "cannot read" in result.output


@pytest.mark.parametrize("text", ["[exchange]\nbook_capacity = 0\n", "[exchange]\nfill_model = 'magic'\n",
                                  "[exchange]\nbook_capcity = 5\n"])
def test_broken_exchange_config_is_a_clear_error(tmp_path, text):
    config = tmp_path / "platform.toml"
    config.write_text(text)
    orders = tmp_path / "o.csv"
    orders.write_text(HEADER + "\n")
    result = CliRunner().invoke(app, ["exchange", "replay", str(orders), "-o", str(tmp_path / "r.csv"),
                                      "--config", str(config)])
    assert result.exit_code == 2 and "config error: exchange." in result.output.replace("[exchange]", "exchange.")


def test_owner_is_an_account_name_and_any_symbol_trades(tmp_path):
    # DOGEUSDT is in no config: its grid is the one its orders are on (largest steps dividing them all)
    out, err, code = replay(tmp_path, """
        1,1,alice smith,DOGEUSDT,new,buy,limit,gtc,0.10235,300
        2,2,bob,DOGEUSDT,new,sell,limit,gtc,0.10230,100
        3,3,alice smith,DOGEUSDT,new,sell,limit,gtc,0.10235,100
        4,4,007,DOGEUSDT,new,sell,limit,gtc,0.10235,50
    """)
    assert code == 0, err
    assert "DOGEUSDT: not in the config; tick 0.00005, lot 50" in err.replace("\n", " ")
    assert out == golden("""
        1,ack,0.10235,300,300,0,
        2,ack,0.1023,100,100,0,
        2,fill,0.10235,100,0,1,
        1,partial,0.10235,100,200,2,
        3,ack,0.10235,100,100,0,
        1,cancel,0.10235,200,0,0,stp
        4,ack,0.10235,50,50,0,
    """)  # alice's own sell cancelled her resting buy (same owner name): bob and "007" are others


def test_one_price_of_a_symbol_gives_its_printed_decimal_as_the_tick(tmp_path):
    """Two orders at one price: the grid is the unit of its last decimal, not the price itself."""
    out, err, code = replay(tmp_path, """
        1,1,alice-desk,ETHUSD_PERP,new,sell,limit,gtc,2600.01,5
        2,2,bob@fund,ETHUSD_PERP,new,buy,limit,gtc,2600.01,3
    """)
    assert code == 0, err
    assert "ETHUSD_PERP: not in the config; tick 0.01, lot 1" in err.replace("\n", " ")
    assert out == golden("""
        1,ack,2600.01,5,5,0,
        2,ack,2600.01,3,3,0,
        2,fill,2600.01,3,0,1,
        1,partial,2600.01,3,2,2,
    """)


def test_tick_size_option_sets_the_grid_of_any_symbol(tmp_path):
    out, err, code = replay(tmp_path, """
        1,1,a,XYZUSDT,new,buy,limit,gtc,1.25,1
        2,2,a,XYZUSDT,new,buy,limit,gtc,1.3,1
    """, "--tick-size", "XYZUSDT=0.1")
    assert code == 0, err
    assert out == golden("""
        1,reject,1.25,1,0,0,bad_price
        2,ack,1.3,1,1,0,
    """)


def test_instruments_of_a_data_file_give_the_grid(tmp_path):
    from hftshm.feed.instruments import Instrument, write_sidecar

    data = tmp_path / "cm.csv.gz"  # only its instruments file is read
    write_sidecar(data, [Instrument("ETHUSD_PERP", 1, "inverse", "0.01", "1", "10")], {})
    out, err, code = replay(tmp_path, """
        1,1,a,ETHUSD_PERP,new,buy,limit,gtc,2680.495,1
        2,2,a,ETHUSD_PERP,new,buy,limit,gtc,2680.49,0.5
        3,3,a,ETHUSD_PERP,new,buy,limit,gtc,2680.49,2
    """, "--instruments", str(data))
    assert code == 0, err
    assert out == golden("""
        1,reject,2680.495,1,0,0,bad_price
        2,reject,2680.49,0.5,0,0,bad_qty
        3,ack,2680.49,2,2,0,
    """)
    _, err, code = replay(tmp_path, "1,1,a,X,new,buy,limit,gtc,1,1", "--instruments", str(tmp_path / "none.csv"))
    assert code == 2 and "neither a tick CSV nor an instruments file" in err
