"""A kernel called from another kernel compiles once per argument type, not once per constant.

numba compiles a dispatcher called from typed code for the exact argument types at the call site,
and a constant argument is typed as a literal: ``_emit(..., 0)`` and ``_emit(..., kind)`` are two
full compilations of ``_emit``, each with everything linked into it optimised again, and so on up
every chain of callers (53 of the backtest's 176 compiled kernels were such copies). ``install``
makes a call from typed code to an hftshm kernel compile it for the non-literal types first, as numba's own
``@overload`` templates do, and only when the callee cannot be compiled without its constants
(a tuple indexed by an argument, ``literally``) for the literal types, exactly as before. Both
compile the same source for the same values, so results are the same; the constant still reaches
the callee's code where it matters, since the caller's optimiser inlines the callee (its IR is
linked into the caller) and propagates it.

It is installed by numba's extension hook (``numba_extensions`` entry point ``init``, run before
the first compilation of a process) where hftshm is installed, and explicitly by the modules
that compile kernels first (``backtest.data``, ``runtime.compile_cache``, ``transport.warmup``),
so a source checkout on ``PYTHONPATH`` compiles the same signatures as an installed package: the
signatures are numba's cache keys and the kernel manifest's entries.
"""

from __future__ import annotations

from numba.core import errors, types
from numba.core.dispatcher import Dispatcher

_INSTALLED = "_hftshm_unliteral_calls"
_WIDEN = "_hftshm_int64_scalars"


def int64_scalars(kernel):
    """Mark a kernel whose integer scalar arguments are compiled as int64 whatever the caller passes
    (an int32 slot, a uint8 side, an ``IntEnum`` member: values int64 holds exactly), so that it
    compiles once rather than once per mix of integer types its callers happen to have (the OMS's
    ``emit_event`` compiled five times). For kernels that only store, compare and add such values."""
    setattr(kernel, _WIDEN, True)
    return kernel


def _widened(t):
    t = types.unliteral(t)
    if isinstance(t, types.IntEnumMember):
        t = t.dtype
    if isinstance(t, types.Integer) and (t.signed or t.bitwidth < 64):
        return types.int64
    return t


def install() -> None:
    """Patch ``Dispatcher.get_call_template`` once per process (idempotent); also stamps the cache
    with every kernel source of the package (``runtime.cache_stamp``) and compiles a kernel a caller
    asks for without its Python entry (``runtime.link_only``), the other hooks every process that
    compiles hftshm kernels needs."""
    from hftshm.runtime import cache_stamp, link_only

    cache_stamp.install()
    link_only.install()
    if getattr(Dispatcher, _INSTALLED, False):
        return
    literal_call_template = Dispatcher.get_call_template

    def get_call_template(self, args, kws):
        # hftshm's own kernels only: numba implements its own overloads (a tuple's getitem, ...) as
        # dispatchers too, and those are typed fine without their constants but cannot be lowered
        if not (self._can_compile and self.py_func.__module__.startswith("hftshm.")):
            return literal_call_template(self, args, kws)
        plain = _widened if getattr(self, _WIDEN, False) else types.unliteral
        plain_args = tuple(plain(a) for a in args)
        plain_kws = {k: plain(v) for k, v in kws.items()}
        if plain_args != tuple(args) or plain_kws != kws:
            try:
                with link_only.for_caller(self):
                    return literal_call_template(self, plain_args, plain_kws)
            except errors.NumbaError:  # typing, lowering, ``literally``: it needs its constants
                pass  # compile it for them, as numba does (its error, if any, is the one raised)
        with link_only.for_caller(self):
            return literal_call_template(self, args, kws)

    get_call_template.__doc__ = literal_call_template.__doc__
    Dispatcher.get_call_template = get_call_template
    setattr(Dispatcher, _INSTALLED, True)
