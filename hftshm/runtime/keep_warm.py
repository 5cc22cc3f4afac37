"""The idle trading process's working set, as the table ``keep_warm_nb.prefetch_working_set`` pulls
back into the caches between ticks (why: see that module).

What goes in, found by walking the stages' bundles (named tuples, tuples, plain objects):

* every ring header (an int64 array of the header's size starting with the ring magic): its
  identity block, and the two blocks of the side this process is (producer or consumer: its cursor
  and its own words), never the other side's, which the other process writes (a read would take
  the line from under it); a ring this process produces also gets its next ``RING_SLOTS`` record
  slots, prefetched for writing;
* every other array up to ``SMALL_BYTES``: state, counters, histograms, parameters. Bigger arrays
  (order tables, hash indexes, the rings' records) are touched at a few places per tick, which no
  prefetch can guess, and pulling megabytes in would push the small ones out;
* the machine code of the compiled cycle and of the strategies' callbacks (``code_mappings``): the
  cycle's kernels are linked into one library, which numba's JIT maps on its own; it is prefetched
  into L2 as data, so an instruction fetch after the gap finds its line there instead of in memory.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from hftshm.runtime import keep_warm_nb as nb
from hftshm.strategies.slots import CallbackAddress
from hftshm.transport import descriptor as d

WARM_NS = 10_000  # idle: the working set is prefetched this often; 0: never
WARM_ENV = "HFTSHM_KEEP_WARM_US"  # overrides WARM_NS (0: off), for side-by-side runs
SMALL_BYTES = 16 << 10
RING_SLOTS = 4
MAX_CODE_BYTES = 1 << 20  # an executable mapping past this is not one JIT library's code: left out
MAX_CODE_TOTAL = 1 << 20  # code prefetched per pull, at most (the trading process's: ~350 KB)


def warm_ns() -> int:
    """The prefetch period in ns: ``WARM_NS``, or ``HFTSHM_KEEP_WARM_US`` when set (0: off)."""
    return env_period_ns(WARM_ENV, WARM_NS, "off")


def env_period_ns(name: str, default_ns: int, zero_means: str) -> int:
    """A period in ns from the environment variable ``name`` in microseconds, else ``default_ns``."""
    value = os.environ.get(name)
    if value in (None, ""):
        return default_ns
    try:
        return max(int(float(value) * 1e3), 0)
    except ValueError:
        raise ValueError(f"{name} must be microseconds (0: {zero_means}), found {value!r}") from None


def working_set(bundles, code_addresses: list[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """``(regions, rings)`` for ``keep_warm_nb.prefetch_working_set``: the bundles' arrays, and the
    code mappings holding ``code_addresses`` plus the bundles' callbacks. The table holds addresses,
    not references: the caller keeps ``bundles`` alive as long as it uses the table (a ring's
    header is read through its address)."""
    regions: list[tuple[int, int, int]] = []
    rings: list[tuple[int, int, int, int]] = []
    seen: set[int] = set()
    pid = os.getpid()
    callbacks: list[int] = []
    for array in _arrays(bundles, seen, callbacks):
        if _is_ring_header(array):
            address = array.ctypes.data
            regions.append((address, d.BLOCK_BYTES, nb.READ))  # identity: written once, read by both
            if int(array[d.PRODUCER_PID]) == pid:
                regions.append((address + d.PRODUCER_CURSOR * 8, 2 * d.BLOCK_BYTES, nb.READ))
                rings.append((address, address + int(array[d.HEADER_BYTES_WORD]), int(array[d.RECORD_SIZE_WORD]),
                              RING_SLOTS))
            if int(array[d.CONSUMER_PID]) == pid:
                regions.append((address + d.CONSUMER_CURSOR * 8, 2 * d.BLOCK_BYTES, nb.READ))
        elif 0 < array.nbytes <= SMALL_BYTES:
            regions.append((array.ctypes.data, array.nbytes, nb.READ))
    code = 0
    for start, size in code_mappings([*code_addresses, *callbacks]):
        if code + size > MAX_CODE_TOTAL:  # a pull must stay a microsecond or so, whatever was passed
            break
        regions.append((start, size, nb.CODE))
        code += size
    return (np.array(regions, np.int64).reshape(-1, 3), np.array(rings, np.int64).reshape(-1, 4))


def code_mappings(addresses: list[int]) -> list[tuple[int, int]]:
    """``(start, bytes)`` of the executable mappings holding ``addresses``: numba's JIT puts one
    compiled library's code (a kernel and everything linked into it, 276 KB for ``run_slice``) in
    a mapping of its own. A mapping past ``MAX_CODE_BYTES`` (not a JIT's) is left out. Remembered
    per set of addresses: code does not move, and reading ``/proc/self/maps`` of a process with
    thousands of mappings takes milliseconds, which a bundle rebuilt between two slices must not pay."""
    return list(_code_mappings(tuple(sorted({a for a in addresses if a}))))


@functools.lru_cache(maxsize=256)
def _code_mappings(wanted: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    found: list[tuple[int, int]] = []
    if not wanted:
        return ()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                span, perms = line.split(None, 2)[:2]
                if "x" not in perms:
                    continue
                low, high = (int(x, 16) for x in span.split("-"))
                if high - low <= MAX_CODE_BYTES and any(low <= a < high for a in wanted):
                    found.append((low, high - low))
    except OSError:  # no procfs: the code stays as cold as it gets
        return ()
    return tuple(found)


def entry_address(compiled) -> int:
    """The machine-code address of a numba compile result (``dispatcher.overloads[signature]``)."""
    try:
        return int(compiled.library.get_pointer_to_function(compiled.fndesc.llvm_func_name))
    except Exception:  # a numba that keeps it elsewhere: the code is left out
        return 0


def describe(regions: np.ndarray, rings: np.ndarray) -> str:
    code = regions[:, 2] == nb.CODE
    return (f"{int(regions[~code, 1].sum()) >> 10} KB of state in {int((~code).sum())} arrays, "
            f"{int(regions[code, 1].sum()) >> 10} KB of code in {int(code.sum())} mappings, "
            f"the next {RING_SLOTS} slots of {len(rings)} output rings")


def _is_ring_header(array: np.ndarray) -> bool:
    return (array.dtype == np.int64 and array.ndim == 1 and array.shape[0] == d.HEADER_WORDS
            and int(array[d.MAGIC_WORD]) == d.MAGIC)


def _arrays(obj, seen: set[int], callbacks: list[int]):
    if isinstance(obj, np.ndarray):
        if id(obj) not in seen and obj.flags.c_contiguous:
            seen.add(id(obj))
            yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _arrays(item, seen, callbacks)
    elif isinstance(obj, CallbackAddress):
        callbacks.append(int(obj.address))
    elif hasattr(obj, "__dict__") and not isinstance(obj, type) and id(obj) not in seen:
        seen.add(id(obj))  # objects may refer to each other
        for item in vars(obj).values():
            yield from _arrays(item, seen, callbacks)
