"""Market data for a backtest: a file (or an array) -> one ``market_event`` array in memory.

A backtest replays the whole file from memory so the loop measures strategy, risk, OMS and
exchange, not parsing. The canonical tick CSV (``.csv`` or ``.csv.gz``) goes through the feed's
event cache (``hftshm.feed.cache``: parsed once into ``X.events.bin``, memory-mapped on every later
run); a ``.npy`` of ``market_event`` records loads directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hftshm.symbols import SymbolTable
from hftshm.transport.layout import load as load_layout

EVENT_DTYPE = load_layout("market_event").dtype


class BacktestDataError(ValueError):
    """The data cannot be used: missing, unreadable, wrong record layout, or empty."""


def load_events(data: str | Path | np.ndarray, symbols: SymbolTable) -> tuple[np.ndarray, str]:
    """(events, description) for a path or an events array."""
    if isinstance(data, np.ndarray):
        if data.dtype != EVENT_DTYPE:
            raise BacktestDataError(f"events array has dtype {data.dtype}, expected the market_event layout")
        return data, f"<{len(data)} events>"
    path = Path(data)
    if not path.is_file():
        raise BacktestDataError(f"data file {path} does not exist")
    if path.suffix == ".npy":
        events = np.load(path, allow_pickle=False)
        if events.dtype != EVENT_DTYPE:
            raise BacktestDataError(f"{path} does not hold market_event records (dtype {events.dtype})")
    else:
        events = _load_csv(path, symbols)
    if len(events) == 0:
        raise BacktestDataError(f"{path} holds no market events")
    return events, str(path)


def _load_csv(path: Path, symbols: SymbolTable) -> np.ndarray:
    """Through the feed's binary cache (parsed once, memory-mapped after): the same records the
    platform's feed replays."""
    from hftshm.feed import cache
    from hftshm.feed.tickcsv import TickCsvError

    try:
        return cache.load_events(path, symbols)
    except (TickCsvError, cache.CacheError) as exc:
        raise BacktestDataError(str(exc)) from None
