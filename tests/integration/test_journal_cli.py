"""``hftshm journal replay`` from the command line: printing a range, and clear errors."""

import numpy as np
import pytest
from typer.testing import CliRunner

from hftshm.bridge import batch_header as bh
from hftshm.bridge.config import BridgeConfig
from hftshm.bridge.export import ExportWorker
from hftshm.bridge.nats_thread import BridgeError
from hftshm.cli import app
from hftshm.transport import layout
from hftshm.transport.testing import temporary_rings
from tests.bridge_helpers import context, fresh_namespace, publish_raw

runner = CliRunner()


def test_replay_prints_the_records_between_two_ids(tmp_path):
    order_event = layout.load("order_event")
    events = order_event.zeros(10)
    events["event_id"] = np.arange(100, 110)
    events["kind"] = 1
    with fresh_namespace() as config:
        publish_raw(config, config.subject("oms.events"),
                    [bh.encode(order_event.fingerprint, 0, events, order_event.itemsize, epoch=1)])
        result = runner.invoke(app, ["journal", "replay", "--namespace", config.namespace, "--from", "103",
                                     "--to", "105", "--config", str(tmp_path / "none.toml")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "event_id=" in line]
    assert [line.split("event_id=")[1].split()[0] for line in lines] == ["103", "104", "105"]
    assert "3 order_event records" in result.output


def test_bad_bounds_and_a_missing_stream_are_clear_errors(tmp_path):
    none = str(tmp_path / "none.toml")
    result = runner.invoke(app, ["journal", "replay", "--from", "yesterday", "--config", none])
    assert result.exit_code == 2 and "neither a record id" in result.output
    result = runner.invoke(app, ["journal", "replay", "--namespace", "nosuchnamespace0", "--config", none])
    assert result.exit_code == 1 and "no JetStream stream" in result.output
    result = runner.invoke(app, ["journal", "replay", "--ring", "oms.reports", "--database", "sqlite:///x", "--config", none])
    assert result.exit_code == 2 and "order events" in result.output


def test_an_unreachable_nats_server_is_a_clear_error(tmp_path):
    with temporary_rings({"src": ("market_event", 64)}) as rings:
        worker = ExportWorker("src", "hftshm.x.src")
        config = BridgeConfig(url="nats://127.0.0.1:1", connect_timeout_s=0.5)
        with pytest.raises(BridgeError, match="cannot connect to NATS at nats://127.0.0.1:1"):
            worker.on_start(context("export", config, tmp_path, inputs={"src": rings["src"]}))
