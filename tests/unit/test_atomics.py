"""The atomics really are atomic: LLVM IR shows acquire/release/seq_cst instructions, a plain numpy
load in a spin loop is hoisted into an endless loop, and the acquire load sees another process's store."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time

import numpy as np
from numba import njit

from hftshm.transport.atomics import (address_of, compare_exchange, cpu_relax, fence, fetch_add, load_acquire,
                                      store_release)
from hftshm.transport.segment import Segment
from hftshm.transport.testing import no_segment_leaks, unique_name


@njit
def _spin_acquire(ctrl):
    spins = 0
    while load_acquire(ctrl, 0) == 0:
        cpu_relax()
        spins += 1
    return spins


@njit
def _spin_plain(ctrl):
    spins = 0
    while ctrl[0] == 0:
        spins += 1
    return spins


@njit
def _publish(ctrl, value):
    store_release(ctrl, 1, value)
    fence()


@njit
def _store(ctrl, index, value):
    store_release(ctrl, index, value)


@njit
def _rmw(ctrl):
    old = fetch_add(ctrl, 2, 5)
    found = compare_exchange(ctrl, 3, 0, 9)
    missed = compare_exchange(ctrl, 3, 0, 11)
    return old, found, missed, address_of(ctrl, 3)


def _llvm(kernel) -> str:
    return "\n".join(kernel.inspect_llvm().values())


def _asm(kernel) -> str:
    return "\n".join(kernel.inspect_asm().values())


def _self_loop(asm: str) -> bool:
    """A block that only jumps to itself: the loop whose condition load was hoisted away."""
    return re.search(r"^(\.LBB\w+):\s*\n\s*jmp\s+\1\s*$", asm, re.MULTILINE) is not None


def test_load_acquire_and_store_release_emit_atomic_instructions():
    ctrl = np.ones(8, np.int64)
    _spin_acquire(ctrl)
    _publish(ctrl, 3)
    assert re.search(r"load atomic i64, (i64\*|ptr) %\S+ acquire, align 8", _llvm(_spin_acquire))
    assert "llvm.x86.sse2.pause" in _llvm(_spin_acquire)
    publish_ir = _llvm(_publish)
    assert re.search(r"store atomic i64 %\S+, (i64\*|ptr) %\S+ release, align 8", publish_ir)
    assert "fence seq_cst" in publish_ir
    assert ctrl[1] == 3


def test_plain_load_in_a_spin_loop_compiles_to_an_endless_loop():
    ctrl = np.ones(8, np.int64)  # non-zero: neither call spins here
    _spin_plain(ctrl)
    _spin_acquire(ctrl)
    assert _self_loop(_asm(_spin_plain)), "numba hoists the plain load: the loop never re-reads memory"
    assert not _self_loop(_asm(_spin_acquire))


def test_read_modify_write():
    ctrl = np.zeros(8, np.int64)
    ctrl[2] = 10
    old, found, missed, address = _rmw(ctrl)
    assert (old, ctrl[2]) == (10, 15)
    assert (found, missed, ctrl[3]) == (0, 9, 9)
    assert address == ctrl.ctypes.data + 24


_SPINNER = textwrap.dedent("""
    import sys
    import numpy as np
    from numba import njit
    from hftshm.transport.atomics import cpu_relax, load_acquire, store_release
    from hftshm.transport.segment import Segment

    @njit
    def wait_for_go(ctrl):
        spins = 0
        while load_acquire(ctrl, 0) == 0:
            cpu_relax()
            spins += 1
        store_release(ctrl, 2, load_acquire(ctrl, 0) + 1)
        return spins

    segment = Segment.attach(sys.argv[1])
    ctrl = np.ndarray((16,), np.int64, buffer=segment.buf)
    wait_for_go(np.ones(16, np.int64))      # compile before announcing readiness
    ctrl[1] = 1
    wait_for_go(ctrl)
""")


def test_acquire_load_sees_a_store_from_another_process():
    with no_segment_leaks():
        name = unique_name("atomics")
        segment = Segment.create(name, 4096)
        ctrl = np.ndarray((16,), np.int64, buffer=segment.buf)
        child = subprocess.Popen([sys.executable, "-c", _SPINNER, name])
        try:
            deadline = time.monotonic() + 60
            while ctrl[1] == 0 and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert ctrl[1] == 1, "spinner did not start"
            time.sleep(0.05)  # let it spin on the old value
            _store(ctrl, 0, 41)
            assert child.wait(timeout=20) == 0, "the spinning kernel never saw the other process's store"
            assert ctrl[2] == 42
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            del ctrl
            segment.unlink()
            segment.close()


def test_commit_and_release_have_no_hardware_fence():
    """The per-record path stops only the compiler; the parker's membarrier supplies the hardware
    barrier (hftshm.transport.barrier). A `fence seq_cst` here would cost a cross-core round trip
    per record."""
    from hftshm.transport import barrier, ring_nb

    ctrl = np.zeros(128, np.int64)
    ctrl[3] = 8  # capacity
    for kernel, args in ((ring_nb.commit, (ctrl, 0, 1)), (ring_nb.release, (ctrl, 1))):
        fresh = njit(kernel.py_func)  # the cached dispatcher has no IR to show: compile a twin
        fresh(*args)
        ir = _llvm(fresh)
        assert 'fence syncscope("singlethread") seq_cst' in ir
        assert not re.search(r"fence seq_cst", ir), f"{kernel.__name__} has a hardware fence"
        assert "mfence" not in _asm(fresh)
    assert barrier.mode() in (barrier.EXPEDITED, barrier.GLOBAL, barrier.NONE)
