"""hftbacktest's npz event files <-> the canonical tick CSV: ``data import --format hftbacktest`` and
``data export-hftbacktest``.

hftbacktest (github.com/nkaz001/hftbacktest) stores one asset's market data as ``np.savez_compressed(...,
data=events)``: 64-byte events ``ev u8, exch_ts i8, local_ts i8, px f8, qty f8, order_id u8, ival i8,
fval f8`` (``HBT_EVENT_DTYPE`` here: a foreign format, so declared here and not in layouts/, which
declares hftshm's own records). ``ev`` is a kind in its low byte (1 depth, 2 trade, 3 depth clear,
4 depth snapshot, 5 best bid/offer) with flag bits EXCH (1<<31: the exchange side replays it),
LOCAL (1<<30: the local side does), BUY (1<<29), SELL (1<<28); times are ns.

Import takes the LOCAL rows (the receive order; every row when no row carries EXCH/LOCAL), one symbol
(``--symbol``: the file does not say), prices as the shortest decimal that reads back as the same
double. A snapshot is the clear rows plus the snapshot rows of one timestamp; a depth row before any
snapshot means no book can be built (an error, as for the other formats: give the file holding the
initial snapshot first). Best bid/offer events (the bid with BUY, the ask with SELL, one timestamp)
become one ``bbo`` message, as the export writes them. Messages get update ids 1, 2, ...

Export writes one symbol of a canonical CSV: depth, trade and best bid/offer rows map one to one; a
snapshot becomes a per-side clear (up to its farthest price, as hftbacktest's own converters write it)
and its levels; a gap's clear becomes a clear of both sides. The EXCH/LOCAL flags come from merging the
exchange-time and local-time orders (``hftbacktest_npz_nb.merge_orders``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from hftshm.feed.binance import FeedImportError, ImportSummary
from hftshm.feed.ticks import HEADER, open_binary

HBT_EVENT_DTYPE = np.dtype([("ev", "u8"), ("exch_ts", "i8"), ("local_ts", "i8"), ("px", "f8"), ("qty", "f8"),
                            ("order_id", "u8"), ("ival", "i8"), ("fval", "f8")], align=True)
DEPTH_EVENT, TRADE_EVENT, DEPTH_CLEAR_EVENT, DEPTH_SNAPSHOT_EVENT, DEPTH_BBO_EVENT = 1, 2, 3, 4, 5
EXCH_EVENT, LOCAL_EVENT, BUY_EVENT, SELL_EVENT = 1 << 31, 1 << 30, 1 << 29, 1 << 28
_KIND_MASK = 0xFF


def _describe(dtype: np.dtype) -> str:
    if dtype.names is None:
        return f"{dtype} (no fields)"
    return ", ".join(f"{n} {dtype.fields[n][0].str.lstrip('<|=')}" for n in dtype.names) + f"; {dtype.itemsize} bytes"


def load_events(path: str | Path) -> np.ndarray:
    """The event array of an hftbacktest npz (key ``data``, or its only array); a foreign dtype is an error."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise FeedImportError(f"{path}: an .npy array, not an npz archive of hftbacktest events")
            key = "data" if "data" in npz.files else (npz.files[0] if len(npz.files) == 1 else None)
            if key is None:
                raise FeedImportError(f"{path}: no 'data' array among {', '.join(npz.files)}")
            events = npz[key]
    except (OSError, ValueError) as exc:
        raise FeedImportError(f"{path}: not a readable npz file ({exc})") from None
    if events.dtype != HBT_EVENT_DTYPE:
        raise FeedImportError(f"{path}: array '{key}' has a foreign dtype ({_describe(events.dtype)}); expected "
                              f"hftbacktest's 64-byte event dtype ({_describe(HBT_EVENT_DTYPE)})")
    return events


def _text(value: float) -> str:
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = np.format_float_positional(float(value), trim="-")
    return text[:-2] if text.endswith(".0") else text


def import_npz(sources: Iterable[str | Path], out_path: str | Path, *, symbol: str | None = None,
               strict: bool = False, compresslevel: int = 1,
               on_progress: Callable[[int, int], None] | None = None, overrides: dict | None = None) -> ImportSummary:
    """hftbacktest npz files (one asset, in order: e.g. the initial snapshot, then the day) -> canonical CSV."""
    from hftshm.feed import instruments as inst

    if not symbol:
        raise FeedImportError("an hftbacktest npz does not name its symbol: give --symbol SYMBOL")
    symbol = symbol.strip().upper()
    paths = [Path(s) for s in sources]
    for path in paths:
        if not path.is_file():
            raise FeedImportError(f"input {path} does not exist or is not a file")
    summary = ImportSummary()
    summary.symbols.add(symbol)
    started, cpu_started = time.perf_counter(), time.process_time()
    out_path = Path(out_path)
    tmp_path = out_path.with_name(out_path.name + ".partial")
    total = sum(p.stat().st_size for p in paths)
    done = 0
    try:
        with open_binary(tmp_path, "wb", compresslevel=compresslevel, gzipped=out_path.name.endswith(".gz")) as out:
            out.write((HEADER + "\n").encode())
            state = {"uid": 0, "synced": False}
            for path in paths:
                events = load_events(path)
                _write_rows(events, path, symbol, out, summary, state)
                done += path.stat().st_size
                if on_progress is not None:
                    on_progress(done, total)
        try:
            summary.instruments = inst.record_instruments(
                tmp_path, out_path, summary.symbols, {symbol: inst.market_from_recording(symbol, False, False)},
                overrides or {}, {"sources": [p.name for p in paths]})
        except inst.InstrumentError as exc:
            raise FeedImportError(f"{', '.join(map(str, paths))}: {exc}; nothing written") from None
        tmp_path.replace(out_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    summary.elapsed_s = time.perf_counter() - started
    summary.cpu_s = time.process_time() - cpu_started
    return summary


def _write_rows(events: np.ndarray, path: Path, symbol: str, out, summary: ImportSummary, state: dict) -> None:
    ev = events["ev"].astype(np.uint64)
    flagged = (ev & np.uint64(EXCH_EVENT | LOCAL_EVENT)) != 0
    if flagged.any():
        keep = np.flatnonzero((ev & np.uint64(LOCAL_EVENT)) != 0)
    else:
        keep = np.arange(len(events))
    summary.lines += len(events)
    sel = events[keep]
    kinds = (sel["ev"] & np.uint64(_KIND_MASK)).astype(np.int64)
    sides = np.where((sel["ev"] & np.uint64(BUY_EVENT)) != 0, 1, np.where((sel["ev"] & np.uint64(SELL_EVENT)) != 0, 2, 0))
    exch, local, px, qty = sel["exch_ts"], sel["local_ts"], sel["px"], sel["qty"]
    rows: list[str] = []
    previous_key = None
    n = len(sel)
    for k in range(n):
        kind = int(kinds[k])
        key = (int(exch[k]), int(local[k]))
        if kind == DEPTH_CLEAR_EVENT:
            # part of a snapshot when snapshot rows of the same timestamps follow; else the book is invalid
            nxt = k + 1
            while nxt < n and int(kinds[nxt]) == DEPTH_CLEAR_EVENT and (int(exch[nxt]), int(local[nxt])) == key:
                nxt += 1
            if nxt < n and int(kinds[nxt]) == DEPTH_SNAPSHOT_EVENT and (int(exch[nxt]), int(local[nxt])) == key:
                continue
            state["uid"] += 1
            rows.append(f"{key[0]},{key[1]},{symbol},clear,,,,{state['uid']}\n")
            summary.rows_by_kind["clear"] += 1
            previous_key = None
            continue
        side = int(sides[k])
        if kind not in (DEPTH_EVENT, TRADE_EVENT, DEPTH_SNAPSHOT_EVENT, DEPTH_BBO_EVENT) or side == 0:
            summary.dropped[f"hftbacktest_event_{kind}{'_without_side' if side == 0 else ''}"] += 1
            continue
        name = {DEPTH_EVENT: "depth", TRADE_EVENT: "trade", DEPTH_SNAPSHOT_EVENT: "snapshot", DEPTH_BBO_EVENT: "bbo"}[kind]
        if kind == DEPTH_EVENT and not state["synced"]:
            raise FeedImportError(
                f"{path}: event {int(keep[k])}: a depth update before any depth snapshot: no book can be built "
                f"(give the npz holding the initial snapshot first, as several sources of one import)")
        if kind == DEPTH_SNAPSHOT_EVENT:
            state["synced"] = True
            summary.snapshots_applied += previous_key != ("snapshot",) + key
        message_key = (name,) + key
        if message_key != previous_key or kind == TRADE_EVENT:
            state["uid"] += 1
            previous_key = message_key
        rows.append(f"{key[0]},{key[1]},{symbol},{name},{'buy' if side == 1 else 'sell'},"
                    f"{_text(px[k])},{_text(qty[k])},{state['uid']}\n")
        summary.rows_by_kind[name] += 1
        if len(rows) >= 16384:
            out.write("".join(rows).encode())
            rows.clear()
    out.write("".join(rows).encode())


def export_npz(source: str | Path, out_path: str | Path, symbols, symbol: str | None = None,
               on_progress: Callable[[int, int], None] | None = None) -> dict:
    """One symbol of a canonical CSV -> an hftbacktest npz (``data``); returns counts by kind."""
    from hftshm.codes import EventFlag, EventKind, Side
    from hftshm.feed.hftbacktest_npz_nb import merge_orders
    from hftshm.feed.tickcsv import iter_records

    from hftshm.feed.instruments import instruments_of

    source, out_path = Path(source), Path(out_path)
    names = [i.symbol for i in instruments_of(source)]
    if symbol is None:
        if len(names) != 1:
            raise FeedImportError(f"{source} holds {', '.join(names)}: an hftbacktest file is one asset, give --symbol")
        symbol = names[0]
    symbol_id = symbols.by_name(symbol).symbol_id
    blocks = [b[b["symbol_id"] == symbol_id].copy() for b in iter_records(source, symbols, on_progress=on_progress)]
    records = np.concatenate(blocks) if blocks else np.zeros(0, np.dtype([("kind", "u1")]))
    kinds, sides, flags = records["kind"], records["side"], records["flags"]
    side_bits = np.where(sides == Side.BUY, BUY_EVENT, np.where(sides == Side.SELL, SELL_EVENT, 0)).astype(np.uint64)
    hbt_kind = np.zeros(len(records), np.uint64)
    hbt_kind[kinds == EventKind.DEPTH] = DEPTH_EVENT
    hbt_kind[kinds == EventKind.TRADE] = TRADE_EVENT
    hbt_kind[kinds == EventKind.BBO] = DEPTH_BBO_EVENT
    hbt_kind[kinds == EventKind.SNAPSHOT] = DEPTH_SNAPSHOT_EVENT
    hbt_kind[kinds == EventKind.CLEAR] = DEPTH_CLEAR_EVENT
    events = np.zeros(len(records), HBT_EVENT_DTYPE)
    events["ev"] = hbt_kind | side_bits
    events["exch_ts"], events["local_ts"] = records["exch_ts_ns"], records["local_ts_ns"]
    events["px"], events["qty"] = records["price"], records["qty"]
    # a snapshot's leading CLEAR (no BOOK_INVALID) -> a clear per side up to the snapshot's farthest price
    pieces, start = [], 0
    snapshot_clears = np.flatnonzero((kinds == EventKind.CLEAR) & ((flags & EventFlag.BOOK_INVALID) == 0))
    for at in snapshot_clears.tolist():
        end = at + 1
        while end < len(records) and kinds[end] == EventKind.SNAPSHOT:
            end += 1
        pieces.append(events[start:at])
        body = events[at + 1:end]
        for side_bit, side in ((BUY_EVENT, Side.BUY), (SELL_EVENT, Side.SELL)):
            levels = body[sides[at + 1:end] == side]
            if len(levels):
                clear = events[at:at + 1].copy()
                clear["ev"] = DEPTH_CLEAR_EVENT | side_bit
                clear["px"] = levels["px"][-1]
                clear["qty"] = 0
                pieces += [clear, levels]
        start = end
    pieces.append(events[start:])
    events = np.concatenate(pieces) if pieces else events
    gap = (events["ev"] & np.uint64(_KIND_MASK)) == DEPTH_CLEAR_EVENT
    events["px"][gap & ((events["ev"] & np.uint64(BUY_EVENT | SELL_EVENT)) == 0)] = 0.0
    by_exch = np.argsort(events["exch_ts"], kind="stable")
    by_local = np.argsort(events["local_ts"], kind="stable")
    index, role = merge_orders(events["exch_ts"], events["local_ts"], by_exch, by_local,
                               np.uint64(EXCH_EVENT), np.uint64(LOCAL_EVENT))
    data = events[index]
    data["ev"] |= role
    tmp = out_path.with_name(out_path.name + ".partial")
    try:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, data=data)
        tmp.replace(out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    counts = {"events": len(events), "rows": len(data)}
    for name, code in (("depth", DEPTH_EVENT), ("trade", TRADE_EVENT), ("snapshot", DEPTH_SNAPSHOT_EVENT),
                       ("clear", DEPTH_CLEAR_EVENT), ("bbo", DEPTH_BBO_EVENT)):
        counts[name] = int(((events["ev"] & np.uint64(_KIND_MASK)) == code).sum())
    return counts
