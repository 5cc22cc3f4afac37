"""Seeded latency draws: constant, uniform between min and max, or a recorded series.

Draw k of a direction is a pure function of (seed, direction, k): splitmix64 of a counter, not a
stateful generator. The k-th order therefore gets the same latency however the orders were
batched, in one process or in a worker, and whatever else drew random numbers meanwhile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

MODEL_CONSTANT = 0
MODEL_UNIFORM = 1
MODEL_SERIES = 2
_MODELS = {"constant": MODEL_CONSTANT, "uniform": MODEL_UNIFORM, "series": MODEL_SERIES}

# latency state words (int64 vector)
LT_MODEL = 0
LT_LOW_NS = 1  # constant value, or uniform minimum
LT_HIGH_NS = 2  # uniform maximum (inclusive)
LT_COUNTER = 3  # draws so far
LT_KEY = 4  # seed mixed with the direction
LT_WORDS = 5

ENTRY = 1
RESPONSE = 2


def new_latency(config, seed: int, direction: int, base_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(state, series_ns) for one direction from an ``exchange.config.LatencyConfig``."""
    state = np.zeros(LT_WORDS, dtype=np.int64)
    state[LT_MODEL] = _MODELS[config.model]
    series = np.asarray(config.series_ns(base_dir), dtype=np.int64)
    if config.model == "constant":
        state[LT_LOW_NS] = state[LT_HIGH_NS] = series[0]
    elif config.model == "uniform":
        state[LT_LOW_NS], state[LT_HIGH_NS] = series[0], series[1]
    state[LT_KEY] = np.int64(((seed * 0x9E3779B97F4A7C15) ^ (direction * 0xBF58476D1CE4E5B9)) & 0x7FFF_FFFF_FFFF_FFFF)
    return state, series


@njit(cache=True, _nrt=False, inline="always")
def splitmix64(x):
    z = np.uint64(x) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, _nrt=False)
def draw(state, series):
    """The next latency of this direction, in ns."""
    k = state[LT_COUNTER]
    state[LT_COUNTER] = k + 1
    model = state[LT_MODEL]
    if model == MODEL_CONSTANT:
        return state[LT_LOW_NS]
    if model == MODEL_UNIFORM:
        span = np.uint64(state[LT_HIGH_NS] - state[LT_LOW_NS] + 1)
        return state[LT_LOW_NS] + np.int64(splitmix64(state[LT_KEY] ^ (k * 0x2545F4914F6CDD1D)) % span)
    return series[k % len(series)]
