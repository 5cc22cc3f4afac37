"""Compiled strategies: numba callbacks over declared, typed parameters and state.

A ``CompiledStrategy`` declares what it needs and writes its decisions as ``@njit`` functions::

    from numba import njit
    from hftshm.strategies import CompiledStrategy, Param
    from hftshm.strategies import context_nb as cx

    @njit(cache=True)
    def on_book(ctx, book):
        if cx.open_orders(ctx) == 0 and cx.imbalance(book) > ctx.params.threshold:
            cx.buy(ctx, cx.round_bid(ctx, book.mid), ctx.params.qty)

    class ImbalanceTaker(CompiledStrategy):
        PARAMS = {"qty": Param(0.01, "order size"), "threshold": Param(0.8, "book imbalance that triggers")}
        STATE = {"entries": 0}
        on_book = on_book

* ``PARAMS``: name -> ``Param`` (checked exactly as for a Python strategy); compiled into a numba
  record, ``ctx.params.<name>``: float -> float64, int -> int64, bool -> bool, a string with
  ``choices`` -> int64, the index of the value in ``choices``.
* ``STATE``: name -> default (float, int or bool), or ``Array(size, default)`` with ``size`` an int or
  the name of an int parameter; a record the callbacks read and write, ``ctx.state.<name>``, kept for
  the strategy's life (Python code reads it as ``strategy.state``).
* callbacks (each optional, each ``(ctx, event)``, returning nothing): ``on_book(ctx, book)`` after a
  book-changing message (``context_nb.BookTop``), ``on_trade(ctx, event)`` per trade
  (a ``market_event`` record), ``on_events(ctx, events)`` per exchange message of its symbol (the
  ``market_event`` records, after ``on_trade``), ``on_report(ctx, report)`` per execution report (an ``execution_report``
  record; the portfolio already holds it), ``on_timer(ctx, now_ns)`` every ``TIMER_INTERVAL_NS`` of
  market time. ``ctx`` and its helpers: ``hftshm.strategies.context_nb``.

The same compiled callbacks run in every mode: the compiled backtest loop
(``hftshm.backtest.simulate_nb``) calls them with no Python in between; the platform's strategy
worker and the Python-path backtest drive them through ``StrategyHost`` like any strategy (one
compiled call per callback). Python hooks stay available for what is not per tick: ``initialize``
(validate parameters, set derived state), ``on_restart``, ``summary``.
"""

from __future__ import annotations

import hashlib
import os
import types as pytypes
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numba import njit, typeof, types
from numba.core.typing import signature

from hftshm.codes import EventKind
from hftshm.strategies import intents_nb
from hftshm.strategies import portfolio_nb as pnb
from hftshm.strategies.base import Strategy, StrategyError
from hftshm.strategies.context_nb import BookTop, StrategyContext
from hftshm.transport.layout import load as load_layout

CALLBACKS = ("on_book", "on_trade", "on_events", "on_report", "on_timer")
MARKET_EVENT = load_layout("market_event")
REPORT = load_layout("execution_report")


@dataclass(frozen=True)
class Array:
    """A fixed-size float64 array in a compiled strategy's STATE (``size``: an int or an int parameter's name)."""

    size: int | str
    default: float = 0.0


@njit(cache=True)
def _nothing(ctx, event):
    return None


def _is_kernel(obj) -> bool:
    return hasattr(obj, "py_func") and hasattr(obj, "compile")


# A callback that raised (an index out of range, caught by the bounds check below; a division by
# zero...): the code continues intents_nb's ERR_* numbering far enough away not to meet it.
ERR_CALLBACK_RAISED = -100
_RAISED_TEXT = "the callback raised an exception (an index out of range, a division by zero...)"


def fault_text(code: float) -> str:
    if int(code) == ERR_CALLBACK_RAISED:
        return _RAISED_TEXT
    return intents_nb.ERROR_TEXT.get(int(code), f"error code {int(code)}")


def _guard_template(ctx, event):
    # compiled once per user callback with _CALLBACK bound to it (see ``guarded``)
    try:
        _CALLBACK(ctx, event)  # noqa: F821 - a global of each copy of this function
    except Exception:  # noqa: BLE001 - numba catches no narrower class; the code says what happened
        ctx.pf[pnb.PF_FAULT] = ERR_CALLBACK_RAISED


def _source_stamp(fn) -> str:
    """What a compiled copy of ``fn`` must be recompiled for: its code, and its file's size and time
    (numba's cache of a caller does not notice a callee's change; the guard is such a caller)."""
    code = fn.__code__
    try:
        st = os.stat(code.co_filename)
        where = f"{code.co_filename}:{st.st_mtime_ns}:{st.st_size}"
    except OSError:
        where = code.co_filename
    digest = hashlib.sha256(code.co_code + repr(code.co_consts).encode() + where.encode())
    return digest.hexdigest()[:16]


def _copy(fn, qualname: str, globals_: dict):
    out = pytypes.FunctionType(fn.__code__, globals_, fn.__name__, fn.__defaults__, fn.__closure__)
    out.__qualname__ = qualname
    out.__module__ = fn.__module__
    return out


_GUARDS: dict = {}


def guarded(kernel):
    """``kernel`` (a user's @njit callback) as the compiled loops call it: recompiled with numba's
    bounds check (an out-of-range index raises instead of corrupting memory; numba checks none by
    default) inside a wrapper that turns any exception into the strategy's fault code, so the loop
    that called it pauses and names that strategy exactly as for a NaN price (``slots_nb._fault``),
    in the backtest, the platform's compiled cycle and the Python path alike. Both copies are cached
    by numba beside the originals, under names of their own (numba's cache keys ignore compile
    flags, so reusing the user's name would mix checked and unchecked machine code)."""
    from numba import njit as _njit

    found = _GUARDS.get(kernel)
    if found is not None:
        return found
    fn = kernel.py_func
    cache = type(kernel._cache).__name__ != "NullCache"
    stamp = _source_stamp(fn)
    checked = _njit(cache=cache, boundscheck=True)(_copy(fn, f"{fn.__qualname__}__checked", fn.__globals__))
    wrapper_globals = dict(globals())
    wrapper_globals["_CALLBACK"] = checked
    name = f"guard__{fn.__module__.replace('.', '_')}__{fn.__qualname__.replace('.', '_')}__{stamp}"
    found = _GUARDS[kernel] = _njit(cache=cache)(_copy(_guard_template, name, wrapper_globals))
    return found


class CompiledStrategy(Strategy):
    """Base class of compiled strategies; see the module docstring."""

    STATE: ClassVar[dict[str, Any]] = {}
    #: name -> the @njit callback (filled from the class body by ``__init_subclass__``)
    KERNELS: ClassVar[dict[str, Any]] = {}

    @classmethod
    def compiled_only(cls) -> bool:
        """True when no Python override sits on the path the compiled loop skips (it calls the
        callbacks directly), so the compiled loop gives what the Python path gives."""
        return all(getattr(cls, hook) is getattr(CompiledStrategy, hook)
                   for hook in ("on_book", "on_tick", "on_execution_report", "on_timer"))

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        kernels = dict(getattr(cls, "KERNELS", {}))
        for name in CALLBACKS:
            obj = cls.__dict__.get(name)
            if isinstance(obj, staticmethod):
                obj = obj.__func__
            if obj is None or not _is_kernel(obj):
                continue  # a Python override of a Python-path hook (a subclass recording calls, say)
            kernels[name] = obj
            delattr(cls, name)  # the Python-path adapter of the base class takes its place
        cls.KERNELS = kernels
        cls._types_cache = {}

    # -- declaration -> numpy dtypes --------------------------------------------------------------
    @classmethod
    def params_dtype(cls) -> np.dtype:
        fields = []
        for name, param in cls.PARAMS.items():
            kind = type(param.default)
            if kind is bool:
                fields.append((name, np.bool_))
            elif kind is int or (kind is str and param.choices is not None):
                fields.append((name, np.int64))
            elif kind is float:
                fields.append((name, np.float64))
            else:
                raise TypeError(f"{cls.__qualname__}: parameter {name!r} ({kind.__name__}) cannot be compiled; "
                                f"use a number, a bool, or a string with choices")
        return np.dtype(fields)

    @classmethod
    def state_dtype(cls, params: dict[str, Any]) -> np.dtype:
        fields = []
        for name, default in cls.STATE.items():
            if isinstance(default, Array):
                size = params[default.size] if isinstance(default.size, str) else default.size
                fields.append((name, np.float64, (max(int(size), 1),)))
            elif isinstance(default, bool):
                fields.append((name, np.bool_))
            elif isinstance(default, int):
                fields.append((name, np.int64))
            elif isinstance(default, float):
                fields.append((name, np.float64))
            else:
                raise TypeError(f"{cls.__qualname__}: state {name!r} = {default!r}: use a float, an int, a bool "
                                f"or Array(size, default)")
        if not fields:
            fields.append(("_unused", np.int64))  # numba has no empty record
        return np.dtype(fields)

    # -- life ------------------------------------------------------------------------------------
    def initialize(self, params):
        super().initialize(params)
        self.params_array = np.zeros(1, dtype=self.params_dtype())
        for name, param in self.PARAMS.items():
            value = params[name]
            if isinstance(param.default, str):
                value = param.choices.index(value)
            self.params_array[0][name] = value
        self.state_array = np.zeros(1, dtype=self.state_dtype(params))
        for name, default in self.STATE.items():
            self.state_array[0][name] = default.default if isinstance(default, Array) else default
        self.kernel_types()  # compile (or load from the cache) now, not at the first tick

    @property
    def state(self):
        """The state record (``strategy.state["name"]``), shared with the compiled callbacks."""
        return self.state_array[0]

    # -- types -----------------------------------------------------------------------------------
    def context(self, origin_ts_ns: int = 0) -> StrategyContext:
        """The ``ctx`` the callbacks get on the Python path (the compiled loop builds the same in numba)."""
        p = self.portfolio
        return StrategyContext(self.params_array[0], self.state_array[0], p.pf, p.orders, self.intents,
                               self.intent_count, int(self.strategy_id), int(self.symbol.symbol_id),
                               float(self.symbol.tick_size), float(self.symbol.lot_size), int(self.now_ns),
                               int(origin_ts_ns), float(self.best_bid), float(self.best_ask))

    def kernel_types(self, events_type=None) -> dict[str, Any]:
        """name -> (the callback, its numba FunctionType) for this instance's context type (and
        ``events_type``, the type of the market-event array the caller slices: a memory-mapped replay
        is read-only); compiles each callback for exactly those types (or loads it from numba's
        cache), once per class and types."""
        ctx_type = typeof(self.context())
        events_type = events_type or typeof(MARKET_EVENT.zeros(1))
        cache = type(self)._types_cache
        if (ctx_type, events_type) in cache:
            return cache[ctx_type, events_type]
        event_types = {"on_book": typeof(BookTop(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)),
                       "on_trade": typeof(MARKET_EVENT.zeros(1)[0]), "on_events": events_type,
                       "on_report": typeof(REPORT.zeros(1)[0]), "on_timer": types.int64}
        out = {}
        for name in CALLBACKS:
            kernel = guarded(self.KERNELS[name]) if name in self.KERNELS else _nothing
            args = (ctx_type, event_types[name])
            try:
                kernel.compile(args)
            except Exception as exc:
                raise StrategyError(self.name or type(self).__qualname__,
                                    f"{name} does not compile for its context: {type(exc).__name__}: {exc}") from exc
            result = kernel.overloads[args].signature.return_type
            out[name] = (kernel, types.FunctionType(signature(result, *args)))
        cache[ctx_type, events_type] = out
        return out

    # -- the Python path: StrategyHost calls these, they call the compiled callbacks ------------------
    def _run(self, name: str, event, origin_ts_ns: int) -> None:
        kernel = self.KERNELS.get(name)
        if kernel is None:
            return
        guarded(kernel)(self.context(origin_ts_ns), event)
        fault = self.portfolio.pf[pnb.PF_FAULT]
        if fault != 0.0:
            self.portfolio.pf[pnb.PF_FAULT] = 0.0  # reported once; a resumed strategy starts clean
            raise StrategyError(self.name, fault_text(fault))

    def on_book(self, snapshot):
        bid, ask = float(snapshot["bid_px"][0]), float(snapshot["ask_px"][0])
        book = BookTop(int(snapshot["exch_ts_ns"]), bid, ask, float(snapshot["bid_qty"][0]),
                       float(snapshot["ask_qty"][0]), float(snapshot["mid"]), int(snapshot["valid"]))
        self._run("on_book", book, self.origin_ts_ns)

    def on_tick(self, events):
        if "on_trade" in self.KERNELS:
            for k in np.flatnonzero(events["kind"] == EventKind.TRADE).tolist():
                self._run("on_trade", events[k], self.origin_ts_ns)
        if "on_events" in self.KERNELS:
            self._run("on_events", np.ascontiguousarray(events), self.origin_ts_ns)

    def on_execution_report(self, report):
        self._run("on_report", report, self.origin_ts_ns)

    def on_timer(self, now_ns):
        self._run("on_timer", int(now_ns), self.origin_ts_ns)
