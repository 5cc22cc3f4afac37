"""Fixtures shared by every tier: shared-memory hygiene and a per-test run directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHM = Path("/dev/shm")


def _hftshm_segments() -> set[str]:
    return {p.name for p in SHM.iterdir() if p.name.startswith(("hftshm", "test_hftshm"))}


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
