"""Fixtures shared by every tier: shared-memory hygiene and a per-test run directory."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

SHM = Path("/dev/shm")


# every segment the project creates is named hftshm_<creating pid>_...: a supervisor's, a test's
_RUN_PID = re.compile(r"^hftshm_(\d+)_")


def _hftshm_segments() -> set[str]:
    """Segments this test process is answerable for. A supervisor's segments carry its pid; those of
    another pytest run on the same machine are not ours to judge or remove."""
    mine = set()
    for path in SHM.iterdir():
        match = _RUN_PID.match(path.name)
        if match and int(match.group(1)) == os.getpid():
            mine.add(path.name)
    return mine


@pytest.fixture(autouse=True)
def no_leaked_segments():
    """Every test must unlink every shared-memory segment it (or a platform it ran) created."""
    before = _hftshm_segments()
    yield
    leaked = _hftshm_segments() - before
    for name in leaked:
        try:
            os.unlink(SHM / name)
        except FileNotFoundError:
            pass
    assert not leaked, f"test left shared-memory segments behind: {sorted(leaked)}"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


@pytest.fixture
def rings():
    """``make(layout, capacity=1 << 16, backpressure="block")``: shared-memory rings, closed and
    unlinked after the test. (A test module defining its own ``rings`` uses that one instead.)"""
    from hftshm.transport.ring import Ring
    from hftshm.transport.testing import unique_name

    made = []

    def make(layout, capacity=1 << 16, backpressure="block"):
        ring = Ring.create(unique_name("test"), layout, capacity, backpressure)
        made.append(ring)
        return ring

    yield make
    for ring in made:
        ring.close()
        ring.unlink()
