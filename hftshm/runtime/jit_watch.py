"""Which numba kernels a process compiled (or loaded from the cache) after its workers started.

Every worker warms its hot kernels in ``on_start`` with the exact argument types of its hot path,
so that a step never stops for a compilation (seconds on a fresh checkout, while the feed blocks
and the latency histograms fill with it) nor for a cache load (milliseconds). This module checks
that promise from the outside:

    watch = JitWatch.start()            # after every on_start, before the first step
    ...duty cycles...
    watch.added()                       # [(kernel, signature), ...] that appeared since

It counts the signatures of every numba dispatcher in the loaded ``hftshm`` modules (a cache load
adds one exactly like a compilation does) and listens for numba's ``numba:compile`` event, which
fires for real compilations only. The runner logs the result when the process ends and warns at
the moment a compilation happens inside a step. Kernels made by factories at run time (not module
attributes) are seen through the compile event only.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from numba.core import event
from numba.core.dispatcher import Dispatcher


def _dispatchers(prefix: str = "hftshm") -> dict[str, Dispatcher]:
    found: dict[str, Dispatcher] = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == prefix or module_name.startswith(prefix + ".")):
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, Dispatcher):
                found.setdefault(f"{value.py_func.__module__}.{value.py_func.__qualname__}", value)
    return found


def signatures(prefix: str = "hftshm") -> dict[str, set]:
    """Every compiled or cache-loaded signature of every module-level kernel, by kernel name."""
    return {name: set(d.overloads) for name, d in _dispatchers(prefix).items()}


class _CompileListener(event.Listener):
    def __init__(self, on_compile):
        self.on_compile = on_compile
        self._started: list[float] = []

    def on_start(self, ev):
        self._started.append(time.perf_counter())

    def on_end(self, ev):
        began = self._started.pop() if self._started else time.perf_counter()
        if self._started:
            return  # a callee compiled for its caller: the caller's event reports the whole time
        data = ev.data or {}
        dispatcher = data.get("dispatcher")
        name = (f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__}"
                if dispatcher is not None else "?")
        self.on_compile(name, tuple(data.get("args", ())), time.perf_counter() - began)


class JitWatch:
    """Signatures at start versus now, plus every compilation seen while installed."""

    def __init__(self, baseline: dict[str, set], on_compile=None):
        self.baseline = baseline
        self.compiled: list[tuple[str, tuple, float]] = []  # (kernel, argument types, seconds)
        self._user_on_compile = on_compile
        self._listener = _CompileListener(self._record)
        event.register("numba:compile", self._listener)

    @classmethod
    def start(cls, on_compile=None) -> "JitWatch":
        """Snapshot the current signatures and start listening for compilations."""
        return cls(signatures(), on_compile)

    def _record(self, name: str, args: tuple, seconds: float) -> None:
        self.compiled.append((name, args, seconds))
        if self._user_on_compile is not None:
            self._user_on_compile(name, args, seconds)

    def added(self) -> list[tuple[str, str]]:
        """(kernel, signature) pairs compiled or loaded since ``start``, sorted."""
        now = signatures()
        out = []
        for name, sigs in now.items():
            for sig in sigs - self.baseline.get(name, set()):
                out.append((name, "(" + ", ".join(str(t) for t in sig) + ")"))
        return sorted(out)

    def stop(self) -> None:
        if self._listener is not None:
            event.unregister("numba:compile", self._listener)
            self._listener = None


def short_types(text: str) -> str:
    """``text`` with every numba record type's field list elided (``Record(...)``): a record type
    spells out every field, which would make one log line kilobytes long."""
    out, i = [], 0
    while True:
        j = text.find("Record(", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j] + "Record(...)")
        depth, k = 0, j + len("Record")
        while k < len(text):
            depth += {"(": 1, ")": -1}.get(text[k], 0)
            k += 1
            if depth == 0:
                break
        i = k


def describe(added: list[tuple[str, str]], limit: int = 20) -> str:
    """The added signatures (at most ``limit``) on one line, for a log message."""
    lines = [f"{name}{short_types(sig)}" for name, sig in added[:limit]]
    if len(added) > limit:
        lines.append(f"... and {len(added) - limit} more")
    return "; ".join(lines)


@contextmanager
def watching(log, process_name: str):
    """Around a process's duty cycles: warn at each compilation inside a step, and say at the end
    which kernels were compiled or loaded after the workers started (none, when warm-up is complete)."""

    def on_compile(name: str, args: tuple, seconds: float) -> None:
        log.warning("jit: kernel %s%s compiled inside a step (%.2f s): its worker should warm it in on_start",
                    name, short_types("(" + ", ".join(str(a) for a in args) + ")"), seconds)

    watch = JitWatch.start(on_compile)
    try:
        yield watch
    finally:
        watch.stop()
        added = watch.added()
        if added:
            log.warning("jit: %d kernel signature(s) compiled or loaded inside steps of process %s: %s",
                        len(added), process_name, describe(added))
        else:
            log.info("jit: no kernel compiled or loaded inside a step of process %s", process_name)
