"""A kernel called with a constant from another kernel compiles for the constant's type, not its
value (one compilation instead of one per constant), unless it cannot be compiled without it."""

from __future__ import annotations

from numba import njit, types

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


def test_install_is_idempotent():
    before = warm_types.Dispatcher.get_call_template
    warm_types.install()
    assert warm_types.Dispatcher.get_call_template is before
