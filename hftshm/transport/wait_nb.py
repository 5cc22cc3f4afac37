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
def pause(times):
    """``times`` x86 ``pause`` instructions (each ~tens of cycles).

    Why a consumer that finds its ring empty should pause before looking again: every look at the
    producer cursor pulls that cache line away from the producer, whose next cursor store then waits
    a cross-core round trip. Pausing ~32 times lets several records pile up and be taken with one
    look (3-5x the per-record throughput here) at the cost of up to ~0.5 us of extra latency: tight
    spin for latency, pause for throughput."""
    for _ in range(times):
        cpu_relax()


@njit(cache=True, nogil=True)
def backoff(attempt):
    """One step of waiting; pass how many times in a row the caller has waited (from 0)."""
    if attempt < SPIN_ATTEMPTS:
        cpu_relax()
    else:
        _sched_yield()
