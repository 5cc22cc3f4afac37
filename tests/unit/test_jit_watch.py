"""``jit_watch`` sees what a step compiled: a new signature of a module-level kernel (a compilation
or a cache load alike) and every real compilation, with the kernel's name."""

from __future__ import annotations

import sys
import types

import numpy as np
from numba import njit

from hftshm.runtime.jit_watch import JitWatch, describe


def _probe_module():
    module = types.ModuleType("hftshm._jit_watch_probe")

    @njit(cache=False)
    def double(x):
        return 2 * x

    double.py_func.__module__ = module.__name__
    double.py_func.__qualname__ = "double"
    module.double = double
    return module


def test_a_new_signature_and_its_compilation_are_reported():
    module = _probe_module()
    sys.modules[module.__name__] = module
    try:
        module.double(1)  # int64: compiled before the watch starts, so not reported
        seen = []
        watch = JitWatch.start(lambda name, args, seconds: seen.append((name, args)))
        module.double(1)
        assert watch.added() == [] and watch.compiled == []
        module.double(np.float32(1.5))  # a new argument type inside the "step"
        watch.stop()
        added = watch.added()
        assert added == [("hftshm._jit_watch_probe.double", "(float32)")]
        assert [name for name, _args in seen] == ["hftshm._jit_watch_probe.double"]
        assert "double(float32)" in describe(added)
        module.double(2.5)  # after stop: no more compile events
        assert len(watch.compiled) == 1
    finally:
        del sys.modules[module.__name__]


def test_record_types_are_elided_in_log_lines():
    from numba import typeof

    from hftshm.runtime.jit_watch import short_types
    from hftshm.transport.layout import load

    text = f"({typeof(load('order').zeros(1))}, int64)"
    assert short_types(text) == "(unaligned array(Record(...), 1d, C), int64)"
