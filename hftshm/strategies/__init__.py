"""Strategies: the interface authors implement, the runtime that drives them, the built-ins.

``Strategy`` and ``Param`` (base.py) are what you subclass and declare; ``StrategyHost``
(runtime.py) runs many side by side; ``registry.load_class`` finds one by name, ``module:Class`` or
entry point; ``StrategyWorker`` (worker.py) puts them on the platform's rings.
"""

from hftshm.strategies.base import Param, Strategy, StrategyError

__all__ = ["Param", "Strategy", "StrategyError"]
