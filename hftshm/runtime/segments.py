"""Naming the supervisor's shared-memory segments and cleaning up after crashed runs.

Every segment of a run is named ``hftshm_<supervisor pid>_<token>_<what>`` so that a later supervisor
can tell its own leftovers from another live run's: a segment whose supervisor pid no longer runs
is stale and is unlinked at start. Creating, attaching and owning segments is
``hftshm.transport.segment``'s job; this module only names and sweeps.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import psutil

from hftshm.transport.segment import Segment

SHM_DIR = Path("/dev/shm")
SEGMENT_PREFIX = "hftshm_"
_RUN_PATTERN = re.compile(r"^hftshm_(\d+)_([0-9a-f]+)_")


def new_run_prefix() -> str:
    return f"{SEGMENT_PREFIX}{os.getpid()}_{secrets.token_hex(3)}_"


def create(name: str, size: int) -> Segment:
    return Segment.create(name, size)


def attach(name: str) -> Segment:
    return Segment.attach(name)


def unlink(name: str) -> bool:
    """Unlink a segment by name; False if it was already gone."""
    try:
        os.unlink(SHM_DIR / name)
        return True
    except FileNotFoundError:
        return False


def segments_of(prefix: str) -> list[str]:
    return sorted(p.name for p in SHM_DIR.glob(f"{prefix}*"))


def stale_segments() -> list[str]:
    """hftshm segments whose supervisor process is gone."""
    stale = []
    for path in SHM_DIR.glob(f"{SEGMENT_PREFIX}*"):
        match = _RUN_PATTERN.match(path.name)
        if match and not _alive(int(match.group(1))):
            stale.append(path.name)
    return sorted(stale)


def _alive(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def remove_stale() -> list[str]:
    return [name for name in stale_segments() if unlink(name)]
