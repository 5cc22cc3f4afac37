"""The stages' rehearsals (``runtime.rehearsal_nb``): their period, and the check that a twin runs
the live stage's code.

A twin's arrays must have the live stage's numba types (dtypes, ranks, layouts, ring counts): the
kernels it calls are then the very specializations the live stage runs, and running them warms
that code. A twin that does not match is built anyway, with a period of 0 (never rehearsed).
"""

from __future__ import annotations

import os

REHEARSE_NS = 50_000  # idle this long, a stage rehearses its hot path, and again as often
REHEARSE_ENV = "HFTSHM_REHEARSE_US"  # overrides REHEARSE_NS (0: never), for side-by-side runs


def rehearse_ns() -> int:
    """The rehearsal period in ns: ``REHEARSE_NS``, or ``HFTSHM_REHEARSE_US`` when set (0: never)."""
    value = os.environ.get(REHEARSE_ENV)
    if value in (None, ""):
        return REHEARSE_NS
    try:
        return max(int(float(value) * 1e3), 0)
    except ValueError:
        raise ValueError(f"{REHEARSE_ENV} must be microseconds (0: never), found {value!r}") from None


def same_types(live_args, twin_args) -> bool:
    """Every twin argument is typed as the live one it stands for."""
    from numba import typeof

    return all(typeof(a) == typeof(b) for a, b in zip(live_args, twin_args, strict=True))
