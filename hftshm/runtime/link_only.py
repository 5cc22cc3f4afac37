"""A kernel compiled only to be linked into its callers is compiled without its Python entry.

numba gives every compiled kernel a CPython wrapper: the function Python calls, which unboxes
each argument (every array of a nested state tuple such as the backtest venue's ``V``) and boxes
the result. A kernel compiled because another kernel calls it never runs that wrapper: the caller
links the kernel's own function and LLVM inlines it. Yet the wrapper was typed, lowered, optimised
and turned into machine code with the kernel, a fifth of a cold backtest's compile CPU (42.0 ->
33.1 CPU-s for the backtest's kernels compiled without it, docs/BENCHMARKS.md).

``install`` makes a compilation that a caller's typing asks for (``Dispatcher.get_call_template``),
or that the compiling pool asks for with ``compile_linked``, leave the wrapper out
(``no_cpython_wrapper``; the small C-callable wrapper that first-class function values use stays).
Such an overload is kept from numba's C dispatch table, which would otherwise call its missing
wrapper: a call from Python with those types misses the table, reaches ``Dispatcher.compile``
at top level, and compiles the kernel again with its wrapper (loading a cached copy only if that
has one); the cache entry is then the complete one. The caller's machine code is the same either
way: the wrapper was never part of what a caller links.

::

    caller typing -> get_call_template -> compile(sig)   linked:    no Python wrapper, cached so
    Python call   -> (C table miss)    -> compile(sig)   top level: wrapper required; a linked-only
                                                                    overload or cache entry is
                                                                    compiled again, complete
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from numba.core.dispatcher import Dispatcher

_INSTALLED = "_hftshm_link_only"
PREFIX = "hftshm."
_state = threading.local()  # .linking: the dispatcher whose next compile() is for a caller's typing


def has_python_entry(cres) -> bool:
    """The compiled overload can be called from Python (its CPython wrapper was generated)."""
    if cres.objectmode:
        return True
    return cres.library.get_pointer_to_function(cres.fndesc.llvm_cpython_wrapper_name) != 0


def compile_linked(dispatcher, signature: tuple):
    """Compile ``dispatcher`` for ``signature`` as a callee only (the compiling pool's kernels that
    only other kernels call): the cache gets the kernel without its Python entry."""
    with for_caller(dispatcher):
        return dispatcher.compile(signature)


@contextmanager
def for_caller(dispatcher):
    """Within: the next ``compile`` of ``dispatcher`` in this thread is for a caller's typing."""
    _state.linking = dispatcher
    try:
        yield
    finally:
        _state.linking = None


def install() -> None:
    """Patch ``Dispatcher.compile`` and ``add_overload`` once per process (idempotent)."""
    if getattr(Dispatcher, _INSTALLED, False):
        return
    plain_compile = Dispatcher.compile
    plain_add_overload = Dispatcher.add_overload

    def add_overload(self, cres):
        if has_python_entry(cres):
            return plain_add_overload(self, cres)
        self.overloads[tuple(cres.signature.args)] = cres  # typing and linking see it; Python calls miss

    def compile(self, sig):
        linked = getattr(_state, "linking", None) is self
        _state.linking = None  # only this call: the callee's own callees announce themselves
        if not (self._can_compile and self.py_func.__module__.startswith(PREFIX)):
            return plain_compile(self, sig)
        if linked:
            if self.targetoptions.get("no_cpython_wrapper"):
                return plain_compile(self, sig)
            self.targetoptions["no_cpython_wrapper"] = True
            try:
                return plain_compile(self, sig)
            finally:
                del self.targetoptions["no_cpython_wrapper"]
        entry = plain_compile(self, sig)
        args = _args_of(sig)
        cres = self.overloads.get(args)
        if cres is None or has_python_entry(cres):
            return entry
        # linked-only (compiled here for a caller, or loaded so from the cache): compile it complete
        del self.overloads[args]
        self._cache.load_overload = lambda *a, **k: None
        try:
            return plain_compile(self, sig)
        finally:
            del self._cache.load_overload  # the instance attribute: the class's method again

    compile.__doc__ = plain_compile.__doc__
    Dispatcher.compile = compile
    Dispatcher.add_overload = add_overload
    setattr(Dispatcher, _INSTALLED, True)


def _args_of(sig) -> tuple:
    from numba.core import sigutils

    args, _ = sigutils.normalize_signature(sig)
    return tuple(args)
