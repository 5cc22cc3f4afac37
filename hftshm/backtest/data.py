"""Market data for a backtest: a file, several files (or an array) -> one ``market_event`` array, memory-mapped.

A backtest replays records already parsed so the loop measures strategy, risk, OMS and exchange,
not parsing. The canonical tick CSV (``.csv`` or ``.csv.gz``) goes through the feed's event cache
(``hftshm.feed.cache``: parsed once into ``X.events.bin``, memory-mapped on every later run); a
``.npy`` of ``market_event`` records is memory-mapped read-only as well, so both are the same numba
type (one compiled loop, not one per array flavour). Several files (several symbols, or consecutive
days) are merged by exchange time, whole exchange messages at a time, in the same order the
platform's feed replays them (``merge_events``).

Memory stays flat whatever the file's length: the loop reads the map in windows and ``release_passed``
drops the pages behind it from the process (they stay in the page cache), as the feed's replay
does (``EventCache.release``).
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from hftshm.codes import EventFlag
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


def load_many(paths, symbols: SymbolTable) -> tuple[np.ndarray, str]:
    """(events, description) of several files merged by exchange time (``merge_events``)."""
    loaded = [load_events(path, symbols) for path in paths]
    return merge_events([events for events, _ in loaded]), " + ".join(description for _, description in loaded)


def merge_events(sources: list[np.ndarray]) -> np.ndarray:
    """One array of the sources' exchange messages merged by exchange time, each message kept whole.

    The rule is the feed's (``replay_nb.stage``): the next message is the one, among each source's
    next message, whose first event has the smallest exchange time; a tie goes to the earlier source.
    Within a file, message times are not always increasing (a trade may carry an earlier time than
    the depth message before it); that greedy merge then equals a stable sort of the messages by
    (the running maximum of message times within their source, source index), which numpy does
    without a Python loop per message. ``seq`` is renumbered densely, as a feed publishes it.
    """
    if len(sources) == 1:
        return sources[0]
    keys, source_ids, starts, stops = [], [], [], []
    for k, events in enumerate(sources):
        if events.dtype != EVENT_DTYPE:
            raise BacktestDataError(f"source {k} does not hold market_event records (dtype {events.dtype})")
        if len(events) == 0:
            continue
        ends = np.flatnonzero(events["flags"] & np.uint32(EventFlag.LAST_IN_MESSAGE)) + 1
        if len(ends) == 0 or ends[-1] != len(events):
            ends = np.append(ends, len(events))
        begins = np.concatenate(([0], ends[:-1]))
        keys.append(np.maximum.accumulate(events["exch_ts_ns"][begins]))
        source_ids.append(np.full(len(begins), k, np.int64))
        starts.append(begins)
        stops.append(ends)
    key, source, start, stop = (np.concatenate(a) for a in (keys, source_ids, starts, stops))
    order = np.lexsort((source, key))  # stable: a source's messages keep their file order
    out = np.empty(sum(len(e) for e in sources), dtype=EVENT_DTYPE)
    lengths = (stop - start)[order]
    dest = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    for k, events in enumerate(sources):
        mine = source[order] == k
        if not mine.any():
            continue
        # destination index of every event of source k (its messages in merged order)
        offsets = np.repeat(dest[mine] - start[order][mine], lengths[mine])
        out[np.arange(len(events)) + offsets] = events
    out["seq"] = np.arange(len(out))
    out.setflags(write=False)  # the type of a read-only map, as one file is: the same compiled loop
    return out


def _load_csv(path: Path, symbols: SymbolTable) -> np.ndarray:
    """Through the feed's binary cache (parsed once, memory-mapped after): the same records the
    platform's feed replays."""
    from hftshm.feed import cache
    from hftshm.feed.tickcsv import TickCsvError

    try:
        return cache.load_events(path, symbols)
    except (TickCsvError, cache.CacheError) as exc:
        raise BacktestDataError(str(exc)) from None


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
