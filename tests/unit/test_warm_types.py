"""A kernel called with a constant from another kernel compiles for the constant's type, not its
value (one compilation instead of one per constant), unless it cannot be compiled without it."""

from __future__ import annotations

import numpy as np
from numba import njit, types

from hftshm.codes import Side

from hftshm.runtime import warm_types

warm_types.install()


def _kernel(func):
    """njit ``func`` as if it were defined in an hftshm module (the patch covers hftshm's kernels)."""
    func.__module__ = "hftshm.probe"
    return njit(func)


def _add(x, k):
    return x + k


_add = _kernel(_add)


def _adds_constants(x):
    return _add(x, 1) + _add(x, 2) + _add(x, x)


_adds_constants = _kernel(_adds_constants)


def _pick(pair, i):
    return pair[i]  # a heterogeneous tuple: only a constant index can be typed and lowered


_pick = _kernel(_pick)


def _picks_second():
    return _pick((1, 2.5), 1)


_picks_second = _kernel(_picks_second)


def _store(out, i, v):
    out[i] = v
    return v + 1


_store = warm_types.int64_scalars(_kernel(_store))


def _stores_mixed_integers(out, small, enum_value):
    return _store(out, small, small) + _store(out, np.uint8(2), enum_value) + _store(out, 3, np.int16(-4))


_stores_mixed_integers = _kernel(_stores_mixed_integers)


@njit
def _add_elsewhere(x, k):  # not an hftshm kernel: numba's own behaviour, one compilation per constant
    return x + k


@njit
def _adds_elsewhere(x):
    return _add_elsewhere(x, 1) + _add_elsewhere(x, x)


def test_constants_share_one_compilation_of_the_callee():
    assert _adds_constants(3) == 4 + 5 + 6
    assert _add.signatures == [(types.int64, types.int64)]


def test_a_callee_that_needs_its_constant_still_gets_it():
    assert _picks_second() == 2.5
    assert len(_pick.signatures) == 1
    assert isinstance(_pick.signatures[0][1], types.Literal)


def test_other_kernels_keep_numbas_literal_signatures():
    assert _adds_elsewhere(3) == 4 + 6
    assert len(_add_elsewhere.signatures) == 2


def test_integer_scalars_of_a_marked_kernel_compile_once_as_int64():
    """int32, uint8, int16 and an IntEnum member at the call sites: one compilation, same values."""
    out = np.zeros(4, np.int64)
    assert _stores_mixed_integers(out, np.int32(1), Side.SELL) == (1 + 1) + (int(Side.SELL) + 1) + (-4 + 1)
    assert list(out) == [0, 1, int(Side.SELL), -4]
    assert _store.signatures == [(types.Array(types.int64, 1, "C"), types.int64, types.int64)]


def test_install_is_idempotent():
    before = warm_types.Dispatcher.get_call_template
    warm_types.install()
    assert warm_types.Dispatcher.get_call_template is before
