"""The monotonic clock inside numba kernels: ``monotonic_ns()``.

Same clock as ``time.monotonic_ns()`` / ``time.perf_counter_ns()`` on Linux (CLOCK_MONOTONIC), which
is one clock for every core and process, so a stamp written by one process can be subtracted from
``monotonic_ns()`` in another: that is how one-way latency and tick-to-order latency are measured.
It is libc's ``clock_gettime`` (served from the vDSO, no syscall: ~20-30 ns here) with the timespec
on the stack, so it allocates nothing and works in ``cache=True`` kernels.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

CLOCK_MONOTONIC = 1


@intrinsic
def _clock_gettime_ns(typingctx, clock_id):
    if not isinstance(clock_id, types.Integer):
        return None
    sig = types.int64(clock_id)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        timespec_type = ir.LiteralStructType([i64, i64])
        timespec = cgutils.alloca_once(builder, timespec_type)
        function_type = ir.FunctionType(ir.IntType(32), [ir.IntType(32), timespec_type.as_pointer()])
        clock_gettime = cgutils.get_or_insert_function(builder.module, function_type, "clock_gettime")
        builder.call(clock_gettime, [builder.trunc(args[0], ir.IntType(32)), timespec])
        seconds = builder.load(cgutils.gep_inbounds(builder, timespec, 0, 0))
        nanoseconds = builder.load(cgutils.gep_inbounds(builder, timespec, 0, 1))
        return builder.add(builder.mul(seconds, i64(1_000_000_000)), nanoseconds)

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def monotonic_ns():
    """CLOCK_MONOTONIC in ns: the ``time.monotonic_ns()`` clock, callable from numba."""
    return _clock_gettime_ns(CLOCK_MONOTONIC)
