"""Finding a strategy class by name.

Three ways to name one, tried in this order:

1. a built-in: ``market_maker``, ``mean_reversion``, ``vwap``;
2. ``package.module:Class``: any importable module; the working directory is importable, as
   ``python -m`` makes it (``mystrats:ImbalanceTaker`` finds ``./mystrats.py``), and so is a file
   path, ``path/to/mystrats.py:ImbalanceTaker``. The directory is added to ``sys.path`` and to
   ``PYTHONPATH``, so the platform's worker processes (spawned from this one) import it too;
3. an installed plugin: a distribution that declares, in its ``pyproject.toml``::

       [project.entry-points."hftshm.strategies"]
       my_strategy = "my_pkg.strategies:MyStrategy"

   is found by its entry-point name (``my_strategy``) through ``importlib.metadata``.

Every failure is a ``StrategyLoadError`` that says what was tried and what exists.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from importlib.metadata import entry_points

from hftshm.strategies.base import Strategy

ENTRY_POINT_GROUP = "hftshm.strategies"

BUILTINS: dict[str, str] = {
    "market_maker": "hftshm.strategies.builtin.market_maker:MarketMaker",
    "mean_reversion": "hftshm.strategies.builtin.mean_reversion:MeanReversion",
    "vwap": "hftshm.strategies.builtin.vwap:VwapExecution",
}


class StrategyLoadError(LookupError):
    """The named strategy class cannot be found or is not a Strategy."""


def _plugins() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_class(spec: str | type) -> type[Strategy]:
    """The Strategy subclass ``spec`` names (a built-in, ``module:Class``, or an entry-point name)."""
    if isinstance(spec, type):
        return _checked(spec, spec.__qualname__)
    spec = spec.strip()
    target = BUILTINS.get(spec, spec)
    if ":" in target:
        module_name, _, attr = target.rpartition(":")
        try:
            module = _import(module_name)
        except ImportError as exc:
            raise StrategyLoadError(f"strategy {spec!r}: cannot import module {module_name!r}: {exc}") from exc
        obj = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise StrategyLoadError(f"strategy {spec!r}: module {module_name!r} has no {attr!r}") from None
        return _checked(obj, spec)
    plugins = _plugins()
    if spec in plugins:
        try:
            obj = plugins[spec].load()
        except Exception as exc:  # a broken plugin must not take the platform down; say which
            raise StrategyLoadError(f"strategy {spec!r}: entry point {plugins[spec].value!r} failed to load: "
                                    f"{exc}") from exc
        return _checked(obj, spec)
    raise StrategyLoadError(
        f"unknown strategy {spec!r}: not a built-in ({', '.join(sorted(BUILTINS))}), not 'package.module:Class', "
        f"and no '{ENTRY_POINT_GROUP}' entry point of that name "
        f"(installed: {', '.join(sorted(plugins)) or 'none'})")


def importable(directory: str) -> None:
    """Make modules in ``directory`` importable here and in processes started from here."""
    directory = os.path.abspath(directory)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if directory not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([directory, *paths])


def _import(module_name: str):
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = os.path.abspath(module_name)
        if not os.path.isfile(path):
            raise ImportError(f"no file {path}")
        importable(os.path.dirname(path))
        module_name = os.path.splitext(os.path.basename(path))[0]
        return importlib.import_module(module_name)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        if exc.name != top:
            raise  # the module was found; something it imports is missing: say so unchanged
        cwd = os.getcwd()
        found = os.path.isfile(os.path.join(cwd, top + ".py")) or os.path.isdir(os.path.join(cwd, top))
        if not found:
            raise
        importable(cwd)  # the working directory, as ``python -m`` puts it first on sys.path
        return importlib.import_module(module_name)


def _checked(obj: object, spec: str) -> type[Strategy]:
    if not (inspect.isclass(obj) and issubclass(obj, Strategy)):
        raise StrategyLoadError(f"strategy {spec!r}: {obj!r} is not a subclass of hftshm.strategies.Strategy")
    return obj


def available() -> dict[str, str]:
    """Every strategy name loadable without a module path: built-ins and installed entry points."""
    names = dict(BUILTINS)
    for name, ep in _plugins().items():
        names.setdefault(name, ep.value)
    return names


def describe(cls: type[Strategy]) -> str:
    text = cls.DESCRIPTION or (inspect.getdoc(cls) or "").split("\n", 1)[0]
    return text.strip()
