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


def test_kill_switch_and_state_commands_write_the_block(block):
    runner = CliRunner()
    result = runner.invoke(app, ["kill-switch", "on", "--segment", block.name])
    assert result.exit_code == 0, result.output
    assert block.kill_switch and block.epoch == 1
    result = runner.invoke(app, ["risk", "state", "reducing", "--segment", block.name])
    assert result.exit_code == 0, result.output
    assert block.trading_state == TradingState.REDUCING
    result = runner.invoke(app, ["kill-switch", "off", "--segment", block.name])
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
    result = runner.invoke(app, ["risk", "status", "--run-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no platform is running" in result.output
    assert not block.kill_switch and block.epoch == 0
