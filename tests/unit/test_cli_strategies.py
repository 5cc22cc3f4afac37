"""``hftshm strategies pause|resume|add|remove`` leave an audit row: applied when the worker
confirms, refused (with why) when it does not."""

from __future__ import annotations

from typer.testing import CliRunner

from hftshm.audit.log import AuditLog, os_user
from hftshm.cli import app
from hftshm.metrics.rig import MonitoringRig
from hftshm.runtime.manifest import RingEntry
from hftshm.transport.ring import Ring


def test_an_unconfirmed_pause_is_audited_as_refused(tmp_path):
    with MonitoringRig() as rig:
        rig.step()
        control_ring = Ring.create(f"{rig.prefix}control.strategies", "control_message", 16)
        try:
            entry = RingEntry("control.strategies", control_ring.name, "control_message", "web", "strategies", 16, "block")
            rig.manifest(tmp_path, extra_rings=(entry,)).write()
            # nobody consumes the control ring here: the worker never confirms
            result = CliRunner().invoke(app, ["strategies", "pause", "mm-btc", "--run-dir", str(tmp_path),
                                              "--wait", "0.3"])
        finally:
            control_ring.unlink()
            control_ring.close()
    assert result.exit_code != 0
    rows, total = AuditLog(tmp_path, f"sqlite:///{tmp_path / 'oms.sqlite'}").rows()
    assert total == 1
    row = rows[0]
    assert (row["action"], row["target"], row["actor"], row["source"], row["outcome"]) == \
        ("strategy_pause", "mm-btc", os_user(), "cli", "refused")
    assert row["detail"]
