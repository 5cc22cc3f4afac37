"""A strategy worker restarted after a SIGKILL takes over the status segment its predecessor
created, and when it closes, nothing is left registered with the resource tracker the supervisor's
processes share (which otherwise warns at the platform's exit about a "leaked" segment that the
successor had already unlinked)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

from hftshm.strategies.runtime import STATUS_LAYOUT
from hftshm.strategies.worker import StrategyWorker
from hftshm.transport.segment import exists

ROOT = Path(__file__).resolve().parents[2]


def _status_owner(name: str) -> SimpleNamespace:
    """What ``StrategyWorker._create_status`` reads of the worker."""
    return SimpleNamespace(_status_segment_name=name, _segment=None, config=SimpleNamespace(status_slots=8))


def predecessor(name: str) -> None:
    """Creates the status segment, then dies without closing anything (as a SIGKILL leaves it)."""
    StrategyWorker._create_status(_status_owner(name), None)
    os._exit(0)


def successor(name: str) -> None:
    """Takes the segment over, then closes as ``StrategyWorker.on_close`` does."""
    owner = _status_owner(name)
    status = StrategyWorker._create_status(owner, None)
    assert len(status) == 8 and status.dtype == STATUS_LAYOUT.dtype
    del status
    owner._segment.unlink()
    owner._segment.close()


_SCRIPT = """
import multiprocessing as mp, sys
from tests.concurrency.test_strategy_status_restart import predecessor, successor
if __name__ == "__main__":
    spawn = mp.get_context("spawn")  # as the supervisor starts its processes: they share its tracker
    for target in (predecessor, successor):
        p = spawn.Process(target=target, args=(sys.argv[1],))
        p.start()
        p.join()
        assert p.exitcode == 0, target
"""


def test_a_restarted_worker_leaves_no_status_segment_registered(tmp_path):
    name = f"test_hftshm_{uuid.uuid4().hex[:8]}_strategies.status"
    script = tmp_path / "restart.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script), name], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not exists(name)
    assert "leaked shared_memory" not in done.stderr, done.stderr
