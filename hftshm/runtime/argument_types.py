"""Remembering the numba types of a kernel's bundle arguments between Python calls.

Why: numba's dispatcher types every argument on every call from Python. Arrays of plain dtypes take
its C fast path, but an array of a structured dtype (every ring's ``records``) falls back to
``Dispatcher.typeof_pyval``, which rebuilds the ``Record`` type from the dtype each time: ~100 us
per record array here, ~1 ms for the four bundles of ``trading_cycle_nb.run_slice``. That was paid
on every slice, and in a flood (one slice per feed batch or so) it cost more CPU than the stages
themselves (docs/BENCHMARKS.md).

A bundle is a tuple (a NamedTuple of arrays, ints and nested tuples): immutable, so the type numba
gives it cannot change while the same tuple object is passed again. ``remember_bundle_types``
wraps one dispatcher's ``typeof_pyval`` so tuples are typed once per object (kept alive in the
cache, so their ``id`` stays theirs); anything else goes to numba as before.
"""

from __future__ import annotations

from typing import Any

CACHE_SIZE = 64  # bundles remembered per dispatcher (a run keeps a handful; rebuilt ones replace them)


class BundleTypes:
    """``typeof_pyval`` for one dispatcher, with the types of the tuples it has seen remembered."""

    def __init__(self, dispatcher: Any, size: int = CACHE_SIZE):
        self.dispatcher = dispatcher
        self.typeof = type(dispatcher).typeof_pyval.__get__(dispatcher)  # numba's own
        self.size = size
        self.types: dict[int, tuple[Any, Any]] = {}  # id(bundle): (bundle, its numba type)
        self.hits = 0
        self.misses = 0

    def __call__(self, value: Any):
        if not isinstance(value, tuple):
            return self.typeof(value)
        known = self.types.get(id(value))
        if known is not None and known[0] is value:
            self.hits += 1
            self.dispatcher._types_active_call.add(known[1])
            return known[1]
        self.misses += 1
        found = self.typeof(value)
        if len(self.types) >= self.size:
            self.types.clear()
        self.types[id(value)] = (value, found)
        return found


def remember_bundle_types(dispatcher: Any) -> BundleTypes:
    """Make ``dispatcher`` type each tuple argument once per tuple object (idempotent)."""
    current = dispatcher.__dict__.get("typeof_pyval")
    if isinstance(current, BundleTypes):
        return current
    wrapper = BundleTypes(dispatcher)
    dispatcher.typeof_pyval = wrapper  # numba's C dispatcher looks the method up on the instance
    return wrapper
