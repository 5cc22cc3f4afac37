"""Back-off inside a numba kernel that must wait (e.g. a producer kernel on a full block-mode ring).

``backoff(attempt)`` spins with ``pause`` for the first ``SPIN_ATTEMPTS`` attempts, then calls
``sched_yield`` so a core shared with other workers is handed over. Kernels should usually return to
their runner instead of waiting; this is for the few that own their loop (benchmarks, tests, a feed
replaying at full speed).
"""

from __future__ import annotations

from numba import njit, types

from hftshm.transport.atomics import cpu_relax

SPIN_ATTEMPTS = 1000

_sched_yield = types.ExternalFunction("sched_yield", types.int32())


@njit(cache=True, nogil=True)
def backoff(attempt):
    """One step of waiting; pass how many times in a row the caller has waited (from 0)."""
    if attempt < SPIN_ATTEMPTS:
        cpu_relax()
    else:
        _sched_yield()
