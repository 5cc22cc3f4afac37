"""numba kernel: keep an idle process's hot code and state in the caches until the next tick.

Why: at a real-time pace the next tick is ~0.6 ms away, and in that gap the trading process's
tables and code leave its core's caches (the other processes, the other tenants of the host, the
kernel). One tick's pass through the four stages costs ~3-5 us warm and 15-20 us cold
(``tools/tick_pass_cpu.py``), and that difference is the paced tick-to-order. While it spins idle,
the process can afford to pull its working set back in: a software prefetch per cache line, issued
every ``SliceLimits.warm_ns`` of idle, costs tens of nanoseconds per kilobyte and never stalls.

The working set is a table built once per set of bundles (``runtime.keep_warm``)::

    regions  int64 (n, 3)   address, bytes, kind    the stages' small state arrays and ring headers
                                                    (READ), the cycle's machine code (CODE)
    rings    int64 (m, 4)   ctrl address, records   an output ring's next slots (prefetched for
                            address, record bytes,  writing: the consumer took the lines shared,
                            slots to prefetch       the producer needs them exclusive)

Addresses are raw: the table holds no references, so whoever builds it keeps the arrays alive and
rebuilds it when a stage replaces a bundle. A prefetch of an unmapped address does not fault;
the ring cursor is read with an acquire load from a live header.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from hftshm.transport import descriptor as d

LINE = 64
READ, WRITE, CODE = 0, 1, 2  # how a region is prefetched
R_ADDRESS, R_BYTES, R_KIND = 0, 1, 2
G_CTRL, G_RECORDS, G_RECORD_BYTES, G_SLOTS = 0, 1, 2, 3


@intrinsic
def prefetch(typingctx, address, kind):
    """``llvm.prefetch`` of the cache line at an integer address: ``READ`` into every level
    (``prefetcht0``), ``WRITE`` exclusive (``prefetchw``: the consumer took the line shared),
    ``CODE`` into L2 only (``prefetcht1``: machine code read as data must not push the state out of
    L1d; an instruction fetch that misses L1i then finds it in L2)."""
    if not isinstance(address, types.Integer) or not isinstance(kind, types.Integer):
        return None
    sig = types.void(address, kind)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        pointer_type = ir.IntType(8).as_pointer()
        fn_type = ir.FunctionType(ir.VoidType(), [pointer_type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fn_type, "llvm.prefetch.p0")
        pointer = builder.inttoptr(args[0], pointer_type)
        kind_value = context.cast(builder, args[1], signature.args[1], types.int64)
        # the intrinsic's flags must be constants: one call per kind
        switch = builder.switch(kind_value, builder.append_basic_block("prefetch.done"))
        done = switch.default
        for value, write, locality in ((READ, 0, 3), (WRITE, 1, 3), (CODE, 0, 2)):
            block = builder.append_basic_block(f"prefetch.{value}")
            switch.add_case(ir.Constant(ir.IntType(64), value), block)
            builder.position_at_end(block)
            builder.call(fn, [pointer, i32(write), i32(locality), i32(1)])
            builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def load_acquire_at(typingctx, address):
    """The int64 at an integer address, with acquire ordering (a ring's cursor in its header)."""
    if not isinstance(address, types.Integer):
        return None
    sig = types.int64(address)

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        return builder.load_atomic(pointer, "acquire", 8)

    return sig, codegen


@njit(cache=True, nogil=True, _nrt=False)
def prefetch_working_set(regions, rings):
    """One pull of the working set into the caches; returns the cache lines asked for."""
    lines = 0
    for k in range(regions.shape[0]):
        start = regions[k, R_ADDRESS] & ~(LINE - 1)
        end = regions[k, R_ADDRESS] + regions[k, R_BYTES]
        kind = regions[k, R_KIND]
        for address in range(start, end, LINE):
            prefetch(address, kind)
            lines += 1
    for k in range(rings.shape[0]):
        ctrl = rings[k, G_CTRL]
        capacity = load_acquire_at(ctrl + 8 * d.CAPACITY_WORD)
        head = load_acquire_at(ctrl + 8 * d.PRODUCER_CURSOR)
        size = rings[k, G_RECORD_BYTES]
        for j in range(rings[k, G_SLOTS]):
            slot_start = rings[k, G_RECORDS] + ((head + j) & (capacity - 1)) * size
            for address in range(slot_start & ~(LINE - 1), slot_start + size, LINE):
                prefetch(address, WRITE)
                lines += 1
    return lines
