"""Building ``slots_nb.StrategySlot`` bundles for compiled strategies (the Python side of the slots)."""

from __future__ import annotations

import numpy as np
from numba import typeof, types

from hftshm.strategies import slots_nb as sn
from hftshm.strategies.compiled import CALLBACKS, CompiledStrategy

_HAS = {"on_book": sn.HAS_BOOK, "on_trade": sn.HAS_TRADE, "on_events": sn.HAS_EVENTS, "on_report": sn.HAS_REPORT,
        "on_timer": sn.HAS_TIMER}


class CallbackAddress:
    """A compiled callback as a slot carries it: the address of its machine code, looked up once.

    Why not the dispatcher itself: every call from Python into a kernel taking the slot unboxes each
    first-class function again, and for a dispatcher numba looks its compiled overload up by
    signature (hashing every argument type) twice per callback: ~50 us each, 0.26 ms for the five
    callbacks of one strategy, paid by every return to the compiled trading cycle (its housekeeping
    cadence, every wake-up after a park). An object with ``__wrapper_address__`` (numba's wrapper
    address protocol) is unboxed with one attribute call. The compiled loops then call the
    callback's C-ABI wrapper instead of its numba entry: one extra direct call, no behaviour change
    (the guard around a strategy's callbacks turns every exception into its fault code)."""

    __slots__ = ("kernel", "address", "function_type")

    def __init__(self, kernel, function_type):
        signature = function_type.signature
        compiled = kernel.overloads[tuple(signature.args)]
        self.kernel = kernel  # keeps the machine code alive
        self.function_type = function_type
        self.address = compiled.library.get_pointer_to_function(compiled.fndesc.llvm_cfunc_wrapper_name)

    def __wrapper_address__(self) -> int:
        return self.address

    def signature(self):
        return self.function_type.signature

    def __call__(self, *args):
        return self.kernel(*args)


def slot_of(strategy: CompiledStrategy, book_index: int = 0, events_type=None, running: bool = True):
    """(the bundle for ``strategy``, its numba type: callbacks typed by signature). The bundle shares
    the strategy's arrays (portfolio, state): what a compiled loop does is what Python then reads."""
    kernels = strategy.kernel_types(events_type)
    ids = np.zeros(sn.ID_SIZE, np.int64)
    ids[sn.ID_STRATEGY] = strategy.strategy_id
    ids[sn.ID_SYMBOL] = strategy.symbol.symbol_id
    ids[sn.ID_BOOK] = book_index
    ids[sn.ID_RUNNING] = int(running)
    ids[sn.ID_TIMER_NS] = int(strategy.TIMER_INTERVAL_NS)
    ids[sn.ID_HAS] = sum(bit for name, bit in _HAS.items() if name in strategy.KERNELS)
    market = np.array([strategy.best_bid, strategy.best_ask, strategy.symbol.tick_size, strategy.symbol.lot_size])
    p = strategy.portfolio
    arrays = (strategy.params_array, strategy.state_array, p.pf, p.orders, ids, market)
    slot = sn.StrategySlot(*arrays, *(CallbackAddress(*kernels[name]) for name in CALLBACKS))
    slot_type = types.NamedTuple([typeof(a) for a in arrays] + [kernels[name][1] for name in CALLBACKS],
                                 sn.StrategySlot)
    return slot, slot_type


def step_bundle(strategies: list[CompiledStrategy], outbox_capacity: int = 4096):
    """(a ``step_nb.StrategiesStep`` over ``strategies``, a function ``run(reports, events, books) ->
    work`` calling ``step_nb.step`` compiled for exactly these types, or loaded from the cache)."""
    from hftshm.strategies import step_nb
    from hftshm.transport.layout import load

    bundles = [slot_of(s) for s in strategies]
    intents = load("order_intent").zeros(outbox_capacity)
    bundle = step_nb.StrategiesStep(tuple(b[0] for b in bundles), intents, np.zeros(1, np.int64),
                                    np.zeros(2, np.int64))
    bundle_type = types.NamedTuple([types.BaseTuple.from_types([b[1] for b in bundles]), typeof(intents),
                                    typeof(bundle.icount), typeof(bundle.clock)], step_nb.StrategiesStep)
    cache: dict = {}

    def run(reports, events, books) -> int:
        key = (typeof(reports), typeof(events), typeof(books))
        entry = cache.get(key)
        if entry is None:
            argtypes = (bundle_type, key[0], types.int64, key[1], types.int64, key[2], types.int64)
            step_nb.step.compile(argtypes)
            entry = cache[key] = step_nb.step.overloads[argtypes].entry_point
        return entry(bundle, reports, len(reports), events, len(events), books, len(books))

    run.bundle_type = bundle_type  # for a caller compiling its own loop over this bundle (runtime.trading_cycle)
    return bundle, run
