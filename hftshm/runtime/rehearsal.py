"""The stages' rehearsals (``runtime.rehearsal_nb``): their period, and the check that a twin runs
the live stage's code.

A twin's arrays must have the live stage's numba types (dtypes, ranks, layouts, ring counts): the
kernels it calls are then the very specializations the live stage runs, and running them warms
that code. A twin that does not match is built anyway, with a period of 0 (never rehearsed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hftshm.runtime.keep_warm import env_period_ns

REHEARSE_NS = 50_000  # idle this long, a stage rehearses its hot path, and again as often
REHEARSE_ENV = "HFTSHM_REHEARSE_US"  # overrides REHEARSE_NS (0: never), for side-by-side runs


def rehearse_ns() -> int:
    """The rehearsal period in ns: ``REHEARSE_NS``, or ``HFTSHM_REHEARSE_US`` when set (0: never)."""
    return env_period_ns(REHEARSE_ENV, REHEARSE_NS, "never")


@dataclass
class Twin:
    """A stage's rehearsal bundle (what its kernels take) and what keeps its private memory alive."""

    bundle: Any  # a NamedTuple with ``clock`` (runtime.rehearsal_nb) and ``every_ns``
    rings: list  # the private rings
    matched: bool  # typed as the live stage: its rehearsals run the live stage's code
    engine: Any = None  # the OMS twin's engine (tests read its counters)

    @property
    def rehearsals(self) -> int:
        return int(self.bundle.clock[1])


def same_types(live_args, twin_args) -> bool:
    """Every twin argument is typed as the live one it stands for."""
    from numba import typeof

    return all(typeof(a) == typeof(b) for a, b in zip(live_args, twin_args, strict=True))
