"""Strategies: the interface authors implement, the runtime that drives them, the built-ins.

``Strategy`` and ``Param`` (base.py) are what you subclass and declare for a Python strategy;
``CompiledStrategy`` (compiled.py) with ``context_nb``'s helpers for a compiled one (numba
callbacks; the backtest runs it with no Python per tick); ``StrategyHost`` (runtime.py) runs many
side by side; ``registry.load_class`` finds one by name, ``module:Class``, file path or entry point;
``StrategyWorker`` (worker.py) puts them on the platform's rings.
"""

from hftshm.strategies.base import Param, Strategy, StrategyError
from hftshm.strategies.compiled import Array, CompiledStrategy

__all__ = ["Array", "CompiledStrategy", "Param", "Strategy", "StrategyError"]
