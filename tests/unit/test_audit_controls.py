"""Durable operator controls: ``ControlStore`` (the run dir copy), ``OperatorControls`` applying to a
running block or only persisting, and a new run's block loaded before any worker starts."""

from __future__ import annotations

from hftshm.audit.controls import Actor, OperatorControls
from hftshm.audit.log import AuditLog
from hftshm.codes import TradingState
from hftshm.risk.control import CONTROLS_FILE, ControlBlock, ControlStore

ME = Actor("ann", "", "cli")


def ops_for(tmp_path, block=None) -> OperatorControls:
    return OperatorControls(tmp_path, None, AuditLog(tmp_path, f"sqlite:///{tmp_path / 'oms.sqlite'}"),
                            find_block=lambda: block)


def test_nothing_saved_leaves_a_new_block_to_its_configured_initial_state(tmp_path):
    block = ControlBlock.private()
    loaded = ops_for(tmp_path).load_into(block)
    assert loaded["saved"] is False and block.epoch == 0  # the risk worker applies [risk] initial_state
    assert not (tmp_path / CONTROLS_FILE).exists()


def test_switch_set_with_no_platform_is_loaded_into_the_next_runs_block(tmp_path):
    ops = ops_for(tmp_path)
    result = ops.set_kill_switch(True, ME)
    assert result["running"] is False and result["previous"] is False
    ops.set_trading_state("reducing", ME)
    block = ControlBlock.private()
    loaded = ops_for(tmp_path).load_into(block)
    assert block.kill_switch is True and block.trading_state == TradingState.REDUCING
    assert block.epoch >= 1  # so the risk worker keeps it rather than its initial_state
    assert loaded["changed_by"] == "ann" and loaded["source"] == "cli"


def test_running_block_is_written_and_persisted(tmp_path):
    block = ControlBlock.private()
    ops = ops_for(tmp_path, block)
    ops.set_kill_switch(True, ME)
    assert block.kill_switch is True and ControlStore(tmp_path).load()["kill_switch"] is True
    ops.set_kill_switch(False, ME)
    assert block.kill_switch is False and ControlStore(tmp_path).load()["kill_switch"] is False
    rows = ops.audit.rows()[0]
    assert [(r["previous"], r["new"]) for r in rows] == [("on", "off"), ("off", "on")]


def test_a_damaged_controls_file_reads_as_halted(tmp_path):
    (tmp_path / CONTROLS_FILE).write_text("{not json")
    block = ControlBlock.private()
    ops_for(tmp_path).load_into(block)
    assert block.kill_switch is True and block.trading_state == TradingState.HALTED
