"""Helpers for tests that use shared memory: unique ring names and a leak check."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Iterator

SHM_DIR = "/dev/shm"


def unique_name(prefix: str = "t") -> str:
    """A ring name no other test (or engineer's concurrent run) will use."""
    return f"{_prefix()}{prefix}-{uuid.uuid4().hex[:8]}"


def _prefix() -> str:
    # hftshm_<pid>_ is the platform's convention: a leak check in another process can tell whose it is
    return f"hftshm_{os.getpid()}_test-"


def shm_names() -> set[str]:
    return set(os.listdir(SHM_DIR))


@contextlib.contextmanager
def no_segment_leaks(prefix: str | None = None) -> Iterator[None]:
    """Fail if a segment named by ``unique_name`` in this process (or starting with ``prefix``)
    appears during the block and stays."""
    prefix = prefix or _prefix()
    before = {n for n in shm_names() if n.startswith(prefix)}
    yield
    leaked = sorted(n for n in shm_names() - before if n.startswith(prefix))
    for name in leaked:  # clean up so one failure does not cascade into every later test
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(SHM_DIR, name))
    assert not leaked, f"shared memory segments left behind: {leaked}"


@contextlib.contextmanager
def temporary_rings(specs: dict[str, tuple[str, int]]) -> Iterator[dict]:
    """Rings {key: Ring} made from {key: (layout, capacity)}, unlinked afterwards, with a leak check."""
    from hftshm.transport.ring import Ring

    with no_segment_leaks():
        made = {key: Ring.create(unique_name(key[:6]), layout, capacity) for key, (layout, capacity) in specs.items()}
        try:
            yield made
        finally:
            for ring in made.values():
                ring.close()
                ring.unlink()

