"""Atomic loads, stores and fences on int64 array elements, for numba kernels.

Why this exists: numba treats a numpy element as ordinary memory, so LLVM may hoist a load out of a
loop. ``while ctrl[0] == 0: pass`` compiles to one load and an endless loop, and a consumer never sees
the producer's cursor move. These ``@intrinsic`` functions emit LLVM atomic instructions instead:

* ``load_acquire(a, i)``   -> ``load atomic i64 ... acquire``  (never hoisted; later reads stay after it)
* ``store_release(a, i, v)``-> ``store atomic i64 ... release`` (earlier writes, e.g. a record, land first)
* ``fence()``              -> ``fence seq_cst`` (a full StoreLoad barrier)
* ``compiler_fence()``     -> ``fence syncscope("singlethread") seq_cst``: no instruction, only stops
  the compiler reordering; the hot side of an asymmetric Dekker hand-shake whose other side calls
  ``membarrier`` (see ``doorbell``)
* ``compare_exchange(a, i, expected, new)`` -> the old value (``cmpxchg ... seq_cst``)
* ``fetch_add(a, i, v)``   -> the old value (``atomicrmw add ... seq_cst``)
* ``cpu_relax()``          -> ``llvm.x86.sse2.pause``: spin-wait hint (saves power, frees the sibling
  hyper-thread, and avoids the memory-order mis-speculation penalty when the spin ends)
* ``address_of(a, i)``     -> the element's address (for futex syscalls on a header word)

On x86-64 acquire/release compile to plain ``mov`` (TSO), so they cost nothing beyond stopping the
compiler; ``fence`` is a ``lock or`` (about 2 ns here). Indices are not bounds-checked: callers pass
header-word constants from ``descriptor``. All work in ``cache=True`` kernels.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_I64_ARRAY_ERROR = "atomics work on int64 arrays only"


def _element_pointer(context, builder, array_type, array_value, index):
    array = context.make_array(array_type)(context, builder, array_value)
    return cgutils.get_item_pointer(context, builder, array_type, array, [index], wraparound=False, boundscheck=False)


def _check_int64_array(array_type) -> bool:
    return isinstance(array_type, types.Array) and array_type.dtype == types.int64 and array_type.ndim == 1


@intrinsic
def load_acquire(typingctx, array, index):
    """``array[index]`` with acquire ordering; never hoisted out of a loop."""
    if not _check_int64_array(array) or not isinstance(index, types.Integer):
        return None
    sig = types.int64(array, index)

    def codegen(context, builder, signature, args):
        index_value = context.cast(builder, args[1], signature.args[1], types.intp)
        pointer = _element_pointer(context, builder, signature.args[0], args[0], index_value)
        return builder.load_atomic(pointer, "acquire", 8)

    return sig, codegen


@intrinsic
def store_release(typingctx, array, index, value):
    """``array[index] = value`` with release ordering: every earlier write is visible before it."""
    if not _check_int64_array(array) or not isinstance(index, types.Integer) or not isinstance(value, types.Integer):
        return None
    sig = types.void(array, index, value)

    def codegen(context, builder, signature, args):
        index_value = context.cast(builder, args[1], signature.args[1], types.intp)
        new_value = context.cast(builder, args[2], signature.args[2], types.int64)
        pointer = _element_pointer(context, builder, signature.args[0], args[0], index_value)
        builder.store_atomic(new_value, pointer, "release", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def fence(typingctx):
    """Full (sequentially consistent) fence: orders an earlier store before a later load."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def compiler_fence(typingctx):
    """Stops the compiler moving memory accesses across this point; emits no instruction."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst", "singlethread")
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def compare_exchange(typingctx, array, index, expected, new):
    """Atomically: if ``array[index] == expected`` store ``new``. Returns the value found."""
    if not _check_int64_array(array):
        return None
    sig = types.int64(array, index, expected, new)

    def codegen(context, builder, signature, args):
        index_value = context.cast(builder, args[1], signature.args[1], types.intp)
        expected_value = context.cast(builder, args[2], signature.args[2], types.int64)
        new_value = context.cast(builder, args[3], signature.args[3], types.int64)
        pointer = _element_pointer(context, builder, signature.args[0], args[0], index_value)
        pair = builder.cmpxchg(pointer, expected_value, new_value, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 0)

    return sig, codegen


@intrinsic
def fetch_add(typingctx, array, index, value):
    """Atomically add ``value`` to ``array[index]``; returns the previous value."""
    if not _check_int64_array(array):
        return None
    sig = types.int64(array, index, value)

    def codegen(context, builder, signature, args):
        index_value = context.cast(builder, args[1], signature.args[1], types.intp)
        add_value = context.cast(builder, args[2], signature.args[2], types.int64)
        pointer = _element_pointer(context, builder, signature.args[0], args[0], index_value)
        return builder.atomic_rmw("add", pointer, add_value, "seq_cst")

    return sig, codegen


@intrinsic
def cpu_relax(typingctx):
    """The x86 ``pause`` instruction, for the body of a spin loop."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        function_type = ir.FunctionType(ir.VoidType(), [])
        pause = cgutils.get_or_insert_function(builder.module, function_type, "llvm.x86.sse2.pause")
        builder.call(pause, [])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def address_of(typingctx, array, index):
    """Address of ``array[index]`` as an int64 (the futex word of a header slot)."""
    if not _check_int64_array(array):
        return None
    sig = types.int64(array, index)

    def codegen(context, builder, signature, args):
        index_value = context.cast(builder, args[1], signature.args[1], types.intp)
        pointer = _element_pointer(context, builder, signature.args[0], args[0], index_value)
        return builder.ptrtoint(pointer, ir.IntType(64))

    return sig, codegen
