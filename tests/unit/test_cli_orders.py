"""``hftshm orders``: listing, filters, one order's history, and clear errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hftshm.cli import app
from hftshm.codes import OrderState as S
from hftshm.oms.store import Store
from hftshm.oms.testing import scripted_events

runner = CliRunner()


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'oms.sqlite'}"
    store = Store(url)
    events, final = scripted_events(store.new_epoch(), 30)
    store.write_events(events)
    store.close()
    return url, final


def test_lists_newest_first_with_filters(db):
    url, final = db
    result = runner.invoke(app, ["orders", "--db", url, "--json", "--limit", "100"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["order_id"] for r in rows] == sorted(final, reverse=True)
    filled = json.loads(runner.invoke(app, ["orders", "--db", url, "--json", "--state", "filled"]).output)
    assert {r["state"] for r in filled} == {"filled"}
    assert len(filled) == sum(1 for s in final.values() if s == S.FILLED)
    none = json.loads(runner.invoke(app, ["orders", "--db", url, "--json", "--strategy", "7"]).output)
    assert none == []
    by_symbol = runner.invoke(app, ["orders", "--db", url, "--symbol", "BTCUSDT", "-n", "2"])
    assert by_symbol.exit_code == 0 and "2 order(s)" in by_symbol.output


def test_show_prints_the_event_history(db):
    url, final = db
    order_id = min(final)
    result = runner.invoke(app, ["orders", "show", str(order_id), "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    kinds = [e["kind"] for e in shown["events"]]
    assert kinds[0] == "created" and kinds[1] == "ack"
    assert shown["order"]["state"] == S(final[order_id]).name.lower()
    text = runner.invoke(app, ["orders", "show", str(order_id), "--db", url])
    assert "audit trail" in text.output and "created" in text.output


def test_errors_are_clear(db, tmp_path):
    url, _ = db
    bad_state = runner.invoke(app, ["orders", "--db", url, "--state", "bogus"])
    assert bad_state.exit_code == 2 and "not one of" in bad_state.output
    missing = runner.invoke(app, ["orders", "show", "5", "--db", url])
    assert missing.exit_code == 1 and "no order 5" in missing.output
    down = runner.invoke(app, ["orders", "--db", "postgresql+psycopg://postgres@localhost:1/none"])
    assert down.exit_code == 1 and "cannot reach" in down.output
    absent = runner.invoke(app, ["orders", "--db", f"sqlite:///{tmp_path / 'nope.sqlite'}"])
    assert absent.exit_code == 1 and "no OMS database" in absent.output
