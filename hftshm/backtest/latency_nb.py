"""Seeded latency draws for the in-process venue, from the ``[exchange]`` latency config.

A latency state is an int64 vector ``[model, a, b, cursor, rng]``: constant ``a``; uniform on
``[a, b]``; or a recorded series (cycled from ``cursor``). The generator is splitmix64 on ``rng``,
owned by this vector, so two runs with the same seed draw the same latencies in the same order
whatever else the process does (numpy's and numba's global generators are not touched).
"""

from __future__ import annotations

import numpy as np
from numba import njit

MODEL_CONSTANT = 0
MODEL_UNIFORM = 1
MODEL_SERIES = 2
L_MODEL, L_A, L_B, L_CURSOR, L_RNG = 0, 1, 2, 3, 4
L_SIZE = 5

_MODELS = {"constant": MODEL_CONSTANT, "uniform": MODEL_UNIFORM, "series": MODEL_SERIES}


def new_latency(config, seed: int, salt: int, base_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """(state, series) for one direction; ``config`` is an ``exchange.config.LatencyConfig``."""
    state = np.zeros(L_SIZE, dtype=np.int64)
    state[L_MODEL] = _MODELS[config.model]
    series = np.asarray(config.series_ns(base_dir), dtype=np.int64)
    if config.model == "constant":
        state[L_A] = state[L_B] = series[0]
    elif config.model == "uniform":
        state[L_A], state[L_B] = series[0], series[1]
    # distinct streams per direction (salt) from one seed
    state[L_RNG] = np.int64((seed * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9) & 0x7FFFFFFFFFFFFFFF)
    return state, series


def describe(config) -> dict:
    if config.model == "constant":
        return {"model": "constant", "us": config.constant_us}
    if config.model == "uniform":
        return {"model": "uniform", "min_us": config.min_us, "max_us": config.max_us}
    return {"model": "series", "path": config.series_path}


@njit(cache=True)
def _next(state):
    z = np.uint64(state[L_RNG]) + np.uint64(0x9E3779B97F4A7C15)
    state[L_RNG] = np.int64(z)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def draw(state, series):
    """One latency in ns."""
    model = state[L_MODEL]
    if model == MODEL_CONSTANT:
        return state[L_A]
    if model == MODEL_UNIFORM:
        span = np.uint64(state[L_B] - state[L_A] + 1)
        return state[L_A] + np.int64(_next(state) % span)
    k = state[L_CURSOR]
    state[L_CURSOR] = (k + 1) % len(series)
    return series[k]
