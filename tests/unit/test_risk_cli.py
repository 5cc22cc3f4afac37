"""``hftshm kill-switch`` and ``hftshm risk state|status`` write and read a running platform's block."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hftshm.cli import app
from hftshm.codes import TradingState
from hftshm.risk.control import ControlBlock
from hftshm.transport.testing import unique_name


@pytest.fixture
def block():
    control = ControlBlock.create(unique_name("ctl"))
    yield control
    control.close()
    control.unlink()


def test_kill_switch_and_state_commands_write_the_block(block, tmp_path):
    runner = CliRunner()
    run = ["--run-dir", str(tmp_path)]
    result = runner.invoke(app, ["kill-switch", "on", "--segment", block.name, *run])
    assert result.exit_code == 0, result.output
    assert block.kill_switch and block.epoch == 1
    result = runner.invoke(app, ["risk", "state", "reducing", "--segment", block.name, *run])
    assert result.exit_code == 0, result.output
    assert block.trading_state == TradingState.REDUCING
    result = runner.invoke(app, ["kill-switch", "off", "--segment", block.name, *run])
    assert result.exit_code == 0 and not block.kill_switch
    result = runner.invoke(app, ["risk", "status", "--json", "--segment", block.name])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["trading_state"] == "reducing" and status["kill_switch"] is False and status["epoch"] == 3


def test_bad_arguments_and_missing_platform_are_clear_errors(block, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["risk", "state", "paused", "--segment", block.name])
    assert result.exit_code == 2 and "active, reducing, halted" in result.output
    result = runner.invoke(app, ["kill-switch", "maybe", "--segment", block.name])
    assert result.exit_code == 2
    result = runner.invoke(app, ["kill-switch", "on", "--segment", "no-such-block", "--run-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no risk control block" in result.output  # a named block must exist
    assert not block.kill_switch and block.epoch == 0
    assert not (tmp_path / "controls.json").exists()


def test_with_no_platform_the_controls_are_persisted_and_audited(tmp_path):
    from hftshm.audit.log import AuditLog, os_user
    from hftshm.risk.control import ControlStore

    runner = CliRunner()
    run = ["--run-dir", str(tmp_path)]
    result = runner.invoke(app, ["risk", "status", *run])
    assert result.exit_code == 0 and "no platform running" in result.output and "kill switch off" in result.output
    result = runner.invoke(app, ["kill-switch", "on", *run])
    assert result.exit_code == 0 and "the next start applies it" in result.output
    result = runner.invoke(app, ["risk", "state", "halted", *run])
    assert result.exit_code == 0, result.output
    stored = ControlStore(tmp_path).load()
    assert stored["kill_switch"] is True and stored["trading_state"] == "halted" and stored["source"] == "cli"
    status = json.loads(runner.invoke(app, ["risk", "status", "--json", *run]).output)
    assert status["running"] is False and status["kill_switch"] is True
    rows, total = AuditLog(tmp_path, f"sqlite:///{tmp_path / 'oms.sqlite'}").rows()
    assert total == 2 and {(r["actor"], r["source"]) for r in rows} == {(os_user(), "cli")}
    listed = json.loads(runner.invoke(app, ["audit", "--json", *run]).output)
    assert [r["action"] for r in listed["audit"]] == ["trading_state", "kill_switch"]
