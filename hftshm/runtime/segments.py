"""Naming, creating and cleaning up the supervisor's shared-memory segments.

Every segment of a run is named ``hftshm_<supervisor pid>_<token>_<what>`` so that a later supervisor
can tell its own leftovers from another live run's: a segment whose supervisor pid no longer runs
is stale and is unlinked at start. The supervisor unlinks what it created; attaching processes
never do, and are unregistered from Python's resource tracker, which would otherwise unlink a
segment when the first attaching process exits.
"""

from __future__ import annotations

import os
import re
import secrets
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path

import psutil

SHM_DIR = Path("/dev/shm")
SEGMENT_PREFIX = "hftshm_"
_RUN_PATTERN = re.compile(r"^hftshm_(\d+)_([0-9a-f]+)_")


def new_run_prefix() -> str:
    return f"{SEGMENT_PREFIX}{os.getpid()}_{secrets.token_hex(3)}_"


def create(name: str, size: int) -> shared_memory.SharedMemory:
    segment = shared_memory.SharedMemory(name=name, create=True, size=size)
    _untrack(segment)
    return segment


def attach(name: str) -> shared_memory.SharedMemory:
    segment = shared_memory.SharedMemory(name=name, create=False)
    _untrack(segment)
    return segment


def unlink(name: str) -> bool:
    """Unlink a segment by name; False if it was already gone."""
    try:
        os.unlink(SHM_DIR / name)
        return True
    except FileNotFoundError:
        return False


def _untrack(segment: shared_memory.SharedMemory) -> None:
    # Python < 3.13 registers every SharedMemory with the resource tracker, which unlinks it when
    # the registering process exits, even in a process that only attached. Lifetime is ours.
    try:
        resource_tracker.unregister(segment._name, "shared_memory")  # noqa: SLF001
    except Exception:
        pass


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
    removed = [name for name in stale_segments() if unlink(name)]
    return removed
