"""Compile a compiled strategy's callbacks in a separate process, filling numba's on-disk cache.

``python -m hftshm.strategies.precompile SPEC SYMBOL PARAMS_JSON`` builds the strategy exactly as a
worker would (same class, symbol and parameters: same record types) and runs its warm-up rehearsal,
so every callback and helper it reaches is compiled and cached; exit 0 on success, 1 with the error
on stderr. The strategy worker starts this for a hot add and adds the strategy once it exits: the
add then loads cached machine code in milliseconds instead of compiling for tens of seconds inside
the worker's duty cycle, while the strategies already running keep trading.
"""

from __future__ import annotations

import json
import subprocess
import sys


def command(spec: str, symbol: str, params: dict) -> list[str]:
    return [sys.executable, "-m", "hftshm.strategies.precompile", spec, symbol, json.dumps(params)]


def start(spec: str, symbol: str, params: dict) -> subprocess.Popen:
    """The compiling process (its cwd and PYTHONPATH are this process's: it imports the same module)."""
    return subprocess.Popen(command(spec, symbol, params), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def needs_compiling(spec: str) -> bool:
    """True for a compiled strategy class not yet compiled in this process."""
    from hftshm.strategies.compiled import CompiledStrategy
    from hftshm.strategies.registry import load_class

    try:
        cls = load_class(spec)
    except LookupError:
        return False  # the add itself reports it
    return issubclass(cls, CompiledStrategy) and not cls._types_cache


def main(argv: list[str]) -> int:
    from hftshm.strategies.runtime import STATUS_LAYOUT, StrategyHost
    from hftshm.strategies.warmup import rehearse
    from hftshm.symbols import DEFAULT_SYMBOLS

    spec, symbol, params = argv[0], argv[1], json.loads(argv[2]) if len(argv) > 2 else {}
    try:
        host = StrategyHost(DEFAULT_SYMBOLS, STATUS_LAYOUT.zeros(1))
        # the record types depend on the class and its parameters, not on the symbol's table
        known = symbol.upper() in {s.name for s in DEFAULT_SYMBOLS}
        host.add("precompile", spec, symbol if known else next(iter(DEFAULT_SYMBOLS)).name, params)
        rehearse(host)
    except Exception as exc:  # noqa: BLE001 - reported to the worker, which refuses the add with it
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
