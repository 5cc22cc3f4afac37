"""Market data for a backtest: a file (or an array) -> one ``market_event`` array, memory-mapped.

A backtest replays records already parsed so the loop measures strategy, risk, OMS and exchange,
not parsing. The canonical tick CSV (``.csv`` or ``.csv.gz``) goes through the feed's event cache
(``hftshm.feed.cache``: parsed once into ``X.events.bin``, memory-mapped on every later run); a
``.npy`` of ``market_event`` records is memory-mapped read-only as well, so both are the same numba
type (one compiled loop, not one per array flavour).

Memory stays flat whatever the file's length: the loop reads the map in windows
(``longest_message`` looks at one window's flags, never the whole file's) and ``release_passed``
drops the pages behind it from the process (they stay in the page cache), as the feed's replay
does (``EventCache.release``).
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from hftshm.runtime import warm_types
from hftshm.symbols import SymbolTable
from hftshm.transport.layout import load as load_layout

EVENT_DTYPE = load_layout("market_event").dtype
warm_types.install()  # every backtest loads its data before it compiles: one signature per argument type


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
        try:
            events = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:  # an object array, or not a .npy at all
            raise BacktestDataError(f"{path} is not a .npy of market_event records ({exc})") from None
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


def longest_message(events: np.ndarray, start: int, stop: int) -> int:
    """Events in the longest exchange message of ``events[start:stop]`` as the loop frames it (up to
    an event flagged last, or ``stop``): reads that window's flags only."""
    if stop <= start:
        return 1
    last = np.flatnonzero(events["flags"][start:stop] & 1)
    if len(last) == 0 or last[-1] != stop - start - 1:
        last = np.append(last, stop - start - 1)  # the window's tail is framed as one message
    return int(np.diff(last, prepend=-1).max())


def release_passed(events: np.ndarray, upto: int) -> None:
    """Drop the pages of ``events[:upto]`` from this process's memory when ``events`` is a read-only
    file mapping (``np.memmap`` mode "r", or a view of one): a long file then costs a window of
    RSS, not its length. Anything else (an array in memory, a copy-on-write map) is left alone:
    there, dropping pages would lose data."""
    owner = events
    while not isinstance(owner, np.memmap) and isinstance(getattr(owner, "base", None), np.ndarray):
        owner = owner.base
    mm = getattr(owner, "_mmap", None) if isinstance(owner, np.memmap) else None
    if mm is None or mm.closed or owner.mode != "r" or upto <= 0:
        return
    # the map starts at the allocation-granularity boundary at or below the array's file offset
    map_address = owner.ctypes.data - owner.offset % mmap.ALLOCATIONGRANULARITY
    upto = min(upto, len(events))
    end = (events.ctypes.data - map_address + upto * events.strides[0]) // mmap.PAGESIZE * mmap.PAGESIZE
    end = min(end, len(mm))
    if end > 0:
        mm.madvise(mmap.MADV_DONTNEED, 0, end)
