"""The heavy half of an asymmetric memory barrier: ``membarrier(2)`` across processes.

Parking needs a Dekker hand-shake: the parker stores "parked" then loads the cursor; the producer
stores the cursor then loads "parked"; at least one must see the other's store. That normally takes
a full fence on BOTH sides, but the producer's side runs on every commit (a ``lock`` instruction
there drains the store buffer and costs a cross-core round trip per record when the consumer is
reading the cursor line), while parking is rare. So the hot side only stops the compiler
(``atomics.compiler_fence``) and the parker pays instead: ``MEMBARRIER_CMD_GLOBAL_EXPEDITED`` makes
every CPU currently running a registered process execute a full barrier (an IPI, ~1-5 us); a
process not running passes through the scheduler's barrier anyway. This is liburcu's scheme.

Every process that runs ring kernels registers (``register_process``, done by importing
``ring_nb`` and by every ``Ring``). Fallbacks, decided once per process: the unexpedited
``MEMBARRIER_CMD_GLOBAL`` (no registration, but milliseconds per call); without membarrier at all the
parker caps its sleeps at 1 ms, so a missed wake-up costs at most that.
"""

from __future__ import annotations

import ctypes
import os

SYS_MEMBARRIER = 324  # x86-64
MEMBARRIER_CMD_QUERY = 0
MEMBARRIER_CMD_GLOBAL = 1
MEMBARRIER_CMD_GLOBAL_EXPEDITED = 2
MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED = 4

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_SUPPORTED = _libc.syscall(SYS_MEMBARRIER, MEMBARRIER_CMD_QUERY, 0, 0)
_registered_pid = 0

EXPEDITED = "membarrier-global-expedited"
GLOBAL = "membarrier-global"
NONE = "none"


def _supports(command: int) -> bool:
    return _SUPPORTED > 0 and bool(_SUPPORTED & command)


def register_process() -> bool:
    """Make this process a target of other processes' expedited barriers (idempotent, per pid so a
    forked child registers itself). True if registered."""
    global _registered_pid
    pid = os.getpid()
    if _registered_pid == pid:
        return True
    if not _supports(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED):
        return False
    if _libc.syscall(SYS_MEMBARRIER, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) != 0:
        return False
    _registered_pid = pid
    return True


def mode() -> str:
    """Which heavy barrier ``heavy_barrier`` uses in this process."""
    if _supports(MEMBARRIER_CMD_GLOBAL_EXPEDITED) and register_process():
        return EXPEDITED
    if _supports(MEMBARRIER_CMD_GLOBAL):
        return GLOBAL
    return NONE


_MODE = mode()


def heavy_barrier() -> bool:
    """A full barrier on every CPU running a registered process. False if none is available (the
    caller must then not sleep for long)."""
    if _MODE == EXPEDITED:
        return _libc.syscall(SYS_MEMBARRIER, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0
    if _MODE == GLOBAL:
        return _libc.syscall(SYS_MEMBARRIER, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0
    return False
