"""The idle trading process's working set (``runtime/keep_warm``) and its prefetch kernel."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from numba import njit

from hftshm.runtime import keep_warm
from hftshm.runtime import keep_warm_nb as nb
from hftshm.strategies.slots import CallbackAddress
from hftshm.transport import descriptor as d
from hftshm.transport.ring import Ring


class Bundle(NamedTuple):
    out_ctrl: np.ndarray
    in_ctrl: np.ndarray
    state: np.ndarray
    table: np.ndarray
    nested: tuple


@njit(cache=True)
def _some_kernel(x):
    return x + 1


def test_the_working_set_holds_small_state_ring_headers_and_the_next_slots_of_output_rings_only():
    out_ring = Ring.private("market_event", capacity=64)
    in_ring = Ring.private("market_event", capacity=64)
    out_ring.register_producer()
    in_ring.register_consumer()
    state = np.zeros(100, np.float64)
    table = np.zeros(keep_warm.SMALL_BYTES // 8 + 1, np.int64)  # one word past the small size
    inner = np.zeros(3, np.int64)
    try:
        bundle = Bundle(out_ring.ctrl, in_ring.ctrl, state, table, (inner, state))  # state twice: listed once
        regions, rings = keep_warm.working_set(bundle)
        listed = {(int(a), int(b), int(k)) for a, b, k in regions}
        out_at, in_at = out_ring.ctrl.ctypes.data, in_ring.ctrl.ctypes.data
        # each header: its identity block and this process's side (the producer's cursor and words of
        # the ring it writes, the consumer's of the ring it reads), not the blocks the other side writes
        assert listed == {(out_at, d.BLOCK_BYTES, nb.READ), (out_at + 8 * d.PRODUCER_CURSOR, 256, nb.READ),
                          (in_at, d.BLOCK_BYTES, nb.READ), (in_at + 8 * d.CONSUMER_CURSOR, 256, nb.READ),
                          (state.ctypes.data, state.nbytes, nb.READ), (inner.ctypes.data, inner.nbytes, nb.READ)}
        assert len(regions) == 6
        # only the ring this process produces: its next slots are what the next publish writes
        assert rings.tolist() == [[out_ring.ctrl.ctypes.data, out_ring.records.ctypes.data,
                                   out_ring.records.dtype.itemsize, keep_warm.RING_SLOTS]]
    finally:
        out_ring.close()
        in_ring.close()


def test_code_mappings_hold_a_compiled_kernel_and_callbacks_bring_theirs():
    _some_kernel(1)
    compiled = next(iter(_some_kernel.overloads.values()))
    address = keep_warm.entry_address(compiled)
    assert address > 0
    mappings = keep_warm.code_mappings([address])
    assert len(mappings) == 1
    start, size = mappings[0]
    assert start <= address < start + size <= start + keep_warm.MAX_CODE_BYTES
    # a strategy callback in a bundle: its code is in the working set as CODE
    callback = CallbackAddress.__new__(CallbackAddress)
    callback.address = address
    regions, _ = keep_warm.working_set((np.zeros(2), callback))
    assert [(int(a), int(b)) for a, b, k in regions if k == nb.CODE] == mappings
    assert keep_warm.code_mappings([0]) == []


def test_prefetch_covers_every_line_of_every_region_and_slot():
    ring = Ring.private("market_event", capacity=64)
    ring.register_producer()
    try:
        a = np.zeros(1000, np.uint8)
        b = np.zeros(8, np.int64)
        regions = np.array([[a.ctypes.data, a.nbytes, nb.READ], [b.ctypes.data, b.nbytes, nb.CODE]], np.int64)
        size = ring.records.dtype.itemsize
        rings = np.array([[ring.ctrl.ctypes.data, ring.records.ctypes.data, size, 3]], np.int64)
        lines = nb.prefetch_working_set(regions, rings)

        def spanned(address, nbytes):
            return (address + nbytes - 1) // nb.LINE - address // nb.LINE + 1

        slots = sum(spanned(ring.records.ctypes.data + j * size, size) for j in range(3))
        assert lines == spanned(a.ctypes.data, a.nbytes) + spanned(b.ctypes.data, b.nbytes) + slots
        # the slots follow the producer's cursor, wrapping at the ring's end
        ring.claim(63)
        ring.commit(63)
        lines = nb.prefetch_working_set(regions[:0], rings)
        assert lines == sum(spanned(ring.records.ctypes.data + j * size, size) for j in (63, 0, 1))
    finally:
        ring.close()


def test_describe_says_what_is_kept_warm():
    regions = np.array([[0, 2048, nb.READ], [4096, 8192, nb.CODE]], np.int64)
    text = keep_warm.describe(regions, np.zeros((3, 4), np.int64))
    assert text == ("2 KB of state in 1 arrays, 8 KB of code in 1 mappings, "
                    f"the next {keep_warm.RING_SLOTS} slots of 3 output rings")


def test_the_period_comes_from_the_environment_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.delenv(keep_warm.WARM_ENV, raising=False)
    assert keep_warm.warm_ns() == keep_warm.WARM_NS
    monkeypatch.setenv(keep_warm.WARM_ENV, "2.5")
    assert keep_warm.warm_ns() == 2_500
    monkeypatch.setenv(keep_warm.WARM_ENV, "ten")
    with pytest.raises(ValueError, match="HFTSHM_KEEP_WARM_US must be microseconds"):
        keep_warm.warm_ns()


def test_the_code_part_of_a_pull_is_capped(monkeypatch):
    _some_kernel(1)
    address = keep_warm.entry_address(next(iter(_some_kernel.overloads.values())))
    (start, size), = keep_warm.code_mappings([address])
    monkeypatch.setattr(keep_warm, "MAX_CODE_TOTAL", size - 1)
    regions, _ = keep_warm.working_set((), [address])
    assert not any(k == nb.CODE for _, _, k in regions)  # past the cap: left out, not truncated
