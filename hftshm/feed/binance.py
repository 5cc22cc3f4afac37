"""Binance collector recordings -> the canonical tick CSV, with Binance's order book synchronisation.

Input: lines ``<local receive ns> <JSON>`` (gzip or plain), JSON either a combined-stream wrapper
``{"stream": ..., "data": {...}}`` or a bare event; depth diffs, trades/aggTrades, bookTickers and REST
depth snapshots (``{"lastUpdateId": ...}``), for USD-M/COIN-M futures or spot, any symbols.

Book synchronisation follows Binance's "how to manage a local order book" procedure per symbol:
diffs are buffered until a snapshot arrives; diffs older than the snapshot are dropped; the first
applied diff must straddle the snapshot (futures: ``U <= lastUpdateId <= u``; spot:
``U <= lastUpdateId + 1 <= u``); after that every diff must continue the previous one (futures:
``pu == previous u``; spot: ``U == previous u + 1``). A break is a gap: it is reported (where, and how
many update ids were skipped), a ``clear`` row marks the book invalid, and diffs are buffered again
until the next snapshot. Nothing is papered over.

Buffered diffs applied after a snapshot carry the snapshot's local receive time: that is the first
moment a live reader could have applied them (their exchange time is their own).
Exchange time is the event time ``E`` (``T`` if absent); spot bookTickers carry neither, so their
exchange time is their local receive time (counted as ``bbo_without_exchange_time``).
"""

from __future__ import annotations

import heapq
import json
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from hftshm.feed import binance_sync_nb as sync_nb
from hftshm.feed.ticks import HEADER, open_binary

MS_TO_NS = 1_000_000
MAX_REPORTED_LINES = 1000  # rejected lines listed individually; beyond this they are only counted
_FLUSH_ROWS = 16384

_NO_SNAPSHOT, _AWAIT_FIRST, _LIVE = sync_nb.NO_SNAPSHOT, sync_nb.AWAIT_FIRST, sync_nb.LIVE
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class FeedImportError(ValueError):
    """The recording cannot be imported (unreadable file, or --strict and a malformed line)."""


@dataclass(frozen=True)
class Gap:
    """A break in a symbol's depth diff sequence: the book is invalid from here until the next snapshot."""

    symbol: str
    source: str
    line: int
    local_ts_ns: int
    expected_id: int  # the pu (futures) or U (spot) that would have continued the sequence
    got_id: int
    missing_ids: int  # update ids skipped

    def describe(self) -> str:
        return (f"{self.symbol} gap at {self.source}:{self.line} (local {self.local_ts_ns}): "
                f"expected {self.expected_id}, got {self.got_id}, {self.missing_ids} update id(s) missed; "
                f"book invalid until the next snapshot")


@dataclass
class ImportSummary:
    lines: int = 0
    rows_by_kind: Counter = field(default_factory=Counter)
    gaps: list[Gap] = field(default_factory=list)
    rejects: Counter = field(default_factory=Counter)  # malformed lines by reason
    reject_lines: list[tuple[str, int, str]] = field(default_factory=list)  # (source, line, reason), first ones
    dropped: Counter = field(default_factory=Counter)  # valid messages not written, by reason
    ignored_streams: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    snapshots_applied: int = 0
    symbols: set = field(default_factory=set)
    depth_markets: dict = field(default_factory=dict)  # symbol -> "spot" (diffs without pu) or "futures"
    never_synced: list = field(default_factory=list)  # symbols with depth diffs but no snapshot to build on
    instruments: list = field(default_factory=list)  # hftshm.feed.instruments.Instrument, one per symbol
    elapsed_s: float = 0.0
    cpu_s: float = 0.0  # process CPU time (both threads); steadier than elapsed_s on a busy machine

    @property
    def rows(self) -> int:
        return sum(self.rows_by_kind.values())

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else float("nan")


class _SymbolSync:
    """One symbol's synchronisation: the state machine's words live in a row of the importer's
    table (``binance_sync_nb``), where the live feed's kernel reads and advances them too."""

    __slots__ = ("symbol", "words", "buffer")

    def __init__(self, symbol: str, words: np.ndarray):
        self.symbol = symbol
        self.words = words  # int64[N_SYNC_WORDS], a row of the table
        words[sync_nb.W_STATE] = _NO_SNAPSHOT
        words[sync_nb.W_LAST_UPDATE_ID] = -1
        words[sync_nb.W_PREV_U] = -1
        words[sync_nb.W_SPOT] = 0
        self.buffer: deque = deque()

    @property
    def state(self) -> int:
        return int(self.words[sync_nb.W_STATE])

    @state.setter
    def state(self, value: int) -> None:
        self.words[sync_nb.W_STATE] = value

    @property
    def prev_u(self) -> int:
        return int(self.words[sync_nb.W_PREV_U])

    @prev_u.setter
    def prev_u(self, value: int) -> None:
        self.words[sync_nb.W_PREV_U] = value

    @property
    def last_update_id(self) -> int:
        return int(self.words[sync_nb.W_LAST_UPDATE_ID])

    @last_update_id.setter
    def last_update_id(self, value: int) -> None:
        self.words[sync_nb.W_LAST_UPDATE_ID] = value

    @property
    def spot(self) -> bool:
        return bool(self.words[sync_nb.W_SPOT])

    @spot.setter
    def spot(self, value: bool) -> None:
        self.words[sync_nb.W_SPOT] = 1 if value else 0


class BinanceImporter:
    """Feed it lines (``feed``) in receive order; rows go to ``write``; ``finish`` returns the summary."""

    def __init__(self, write: Callable[[str], None], *, strict: bool = False, max_buffered: int = 500_000,
                 sync_table: tuple | None = None):
        """``sync_table``: (words, names, name lengths) of ``binance_sync_nb.new_tables`` for one
        importer (the live decoder passes its per-market slice); by default the importer's own."""
        if sync_table is None:
            words, names, lens = sync_nb.new_tables(1)
            sync_table = (words[0], names[0], lens[0])
        self.sync_words, self.sync_names, self.sync_name_lens = sync_table
        self._write = write
        self._strict = strict
        self._max_buffered = max_buffered
        self._rows: list[str] = []
        self._syncs: dict[str, _SymbolSync] = {}
        self._source_symbols: dict[str, set[str]] = {}
        self._pending_snapshots: dict[str, list] = {}
        self.summary = ImportSummary()
        self._loads = json.JSONDecoder().decode  # str in: no per-line encoding detection

    # ----------------------------------------------------------------- input
    def feed(self, local_ts_ns: int, payload: str, source: str, line_no: int) -> None:
        self.summary.lines += 1
        try:
            message = self._loads(payload)
            data = message["data"] if "stream" in message else message
            if "lastUpdateId" in data:
                self._on_snapshot(local_ts_ns, data, message.get("stream"), source, line_no)
                return
            event = data.get("e")
            if event == "depthUpdate":
                self._on_depth(local_ts_ns, data, source, line_no)
            elif event == "bookTicker" or (event is None and "B" in data and "A" in data and "u" in data):
                self._on_bbo(local_ts_ns, data)
            elif event == "trade" or event == "aggTrade":
                self._on_trade(local_ts_ns, data, event)
            else:
                self.summary.ignored_streams[str(event)] += 1
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            reason = "bad_json" if isinstance(exc, json.JSONDecodeError) else "malformed_message"
            self.reject(source, line_no, reason)
        if len(self._rows) >= _FLUSH_ROWS:
            self._flush()

    def reject(self, source: str, line_no: int, reason: str) -> None:
        if self._strict:
            raise FeedImportError(f"{source}:{line_no}: {reason.replace('_', ' ')} "
                                  f"(--strict stops at the first bad line)")
        self.summary.rejects[reason] += 1
        if len(self.summary.reject_lines) < MAX_REPORTED_LINES:
            self.summary.reject_lines.append((source, line_no, reason))

    def finish(self) -> ImportSummary:
        for source, pending in self._pending_snapshots.items():
            self.summary.dropped["snapshot_without_symbol"] += len(pending)
        for sync in self._syncs.values():
            self.summary.depth_markets[sync.symbol] = "spot" if sync.spot else "futures"
            if sync.last_update_id < 0 and (sync.buffer or sync.state == _NO_SNAPSHOT):
                self.summary.never_synced.append(sync.symbol)
            if sync.buffer:
                self.summary.dropped["depth_never_synced"] += len(sync.buffer)
                sync.buffer.clear()
        self._flush()
        return self.summary

    def _flush(self) -> None:
        if self._rows:
            self._write("".join(self._rows))
            self._rows.clear()

    # ----------------------------------------------------------------- streams
    def _exch_ns(self, data: dict, local_ts_ns: int) -> int:
        stamp = data.get("E") or data.get("T")
        return int(stamp) * MS_TO_NS if stamp else local_ts_ns

    def _on_bbo(self, local_ts_ns: int, d: dict) -> None:
        symbol = d["s"].upper()
        self.summary.symbols.add(symbol)
        if "E" not in d and "T" not in d:
            self.summary.notes["bbo_without_exchange_time"] += 1
        prefix = f"{self._exch_ns(d, local_ts_ns)},{local_ts_ns},{symbol},bbo,"
        suffix = f",{int(d['u'])}\n"
        self._rows.append(prefix + "buy," + d["b"] + "," + d["B"] + suffix)
        self._rows.append(prefix + "sell," + d["a"] + "," + d["A"] + suffix)
        self.summary.rows_by_kind["bbo"] += 2

    def _on_trade(self, local_ts_ns: int, d: dict, event: str) -> None:
        kind = d.get("X", "MARKET")
        if kind != "MARKET":  # insurance fund / ADL fills did not trade on the book
            self.summary.dropped[f"trade_{kind.lower()}"] += 1
            return
        trade_id = int(d["t"] if event == "trade" else d["a"])
        side = "sell" if d["m"] else "buy"  # m: the buyer was the maker, so the seller was the aggressor
        symbol = d["s"].upper()
        self.summary.symbols.add(symbol)
        exch_ns = self._exch_ns(d, local_ts_ns)
        self._rows.append(f"{exch_ns},{local_ts_ns},{symbol},trade,{side},{d['p']},{d['q']},{trade_id}\n")
        self.summary.rows_by_kind["trade"] += 1

    def _sync_for(self, symbol: str) -> _SymbolSync:
        sync = self._syncs.get(symbol)
        if sync is None:
            row = len(self._syncs)
            name = symbol.encode()
            if row < len(self.sync_words) and len(name) <= self.sync_names.shape[1] and name.isascii():
                words = self.sync_words[row]
                self.sync_names[row, :len(name)] = np.frombuffer(name, np.uint8)
                self.sync_name_lens[row] = len(name)  # (last: the kernel then finds a whole row)
            else:  # past the table (or a name it cannot hold): a private row, the Python path only
                words = np.zeros(sync_nb.N_SYNC_WORDS, np.int64)
            sync = self._syncs[symbol] = _SymbolSync(symbol, words)
            self.summary.symbols.add(symbol)
        return sync

    def _on_depth(self, local_ts_ns: int, d: dict, source: str, line_no: int) -> None:
        symbol = d["s"].upper()
        sync = self._sync_for(symbol)
        sync.spot = "pu" not in d
        msg = (local_ts_ns, self._exch_ns(d, local_ts_ns), _update_id(d["U"]), _update_id(d["u"]),
               _update_id(d["pu"]) if "pu" in d else -1, d["b"], d["a"], source, line_no)
        self._on_depth_msg(sync, msg)

    def _on_depth_msg(self, sync: _SymbolSync, msg: tuple) -> None:
        """A parsed diff: (local ns, exchange ns, U, u, pu or -1, bids, asks, source, line number)."""
        source, symbol = msg[7], sync.symbol
        seen = self._source_symbols.setdefault(source, set())
        if symbol not in seen:
            seen.add(symbol)
            pending = self._pending_snapshots.pop(source, None)
            if pending:
                for snap in pending:
                    self._apply_snapshot(sync, *snap)
        self._process_diff(sync, msg, 0)

    def _process_diff(self, sync: _SymbolSync, msg: tuple, not_before_local_ns: int) -> None:
        local_ts_ns, exch_ns, first_id, last_id, prev_id, bids, asks, source, line_no = msg
        state = sync.state
        if state == _LIVE:
            spot, prev_u = sync.spot, sync.prev_u
            verdict = sync_nb.continues(spot, prev_u, first_id, last_id, prev_id)
            if verdict == sync_nb.EMIT:
                self._emit_depth(sync, msg, not_before_local_ns)
                return
            if verdict == sync_nb.DUPLICATE:
                self.summary.dropped["depth_duplicate"] += 1
                return
            expected, got = (prev_u + 1, first_id) if spot else (prev_u, prev_id)
            missing = (got - expected) if spot else (prev_id - prev_u)
            self._gap(sync, msg, expected, got, max(missing, 1))
            return
        if state == _NO_SNAPSHOT:
            sync.buffer.append(msg)
            if len(sync.buffer) > self._max_buffered:
                sync.buffer.popleft()
                self.summary.dropped["depth_buffer_overflow"] += 1
            return
        # waiting for the first diff after a snapshot
        target = sync.last_update_id + 1 if sync.spot else sync.last_update_id
        if last_id < target:
            self.summary.dropped["depth_before_snapshot"] += 1
        elif first_id <= target:
            self._emit_depth(sync, msg, not_before_local_ns)
        else:
            self._gap(sync, msg, target, first_id, first_id - target)

    def _emit_depth(self, sync: _SymbolSync, msg: tuple, not_before_local_ns: int) -> None:
        local_ts_ns, exch_ns, _first, last_id, _prev, bids, asks, _source, _line = msg
        sync.state = _LIVE
        sync.prev_u = last_id
        local = local_ts_ns if local_ts_ns >= not_before_local_ns else not_before_local_ns
        head = f"{exch_ns},{local},{sync.symbol},depth,"
        tail = f",{last_id}\n"
        rows = self._rows
        if bids:
            bid_head = head + "buy,"
            rows.extend([bid_head + p + "," + q + tail for p, q in bids])
        if asks:
            ask_head = head + "sell,"
            rows.extend([ask_head + p + "," + q + tail for p, q in asks])
        self.summary.rows_by_kind["depth"] += len(bids) + len(asks)
        if not bids and not asks:
            self.summary.notes["depth_without_levels"] += 1

    def _gap(self, sync: _SymbolSync, msg: tuple, expected: int, got: int, missing: int) -> None:
        local_ts_ns, exch_ns, _first, _last, _prev, _b, _a, source, line_no = msg
        self.summary.gaps.append(Gap(sync.symbol, source, line_no, local_ts_ns, expected, got, missing))
        if sync.state != _NO_SNAPSHOT:
            last_good = sync.prev_u if sync.state == _LIVE else sync.last_update_id
            self._rows.append(f"{exch_ns},{local_ts_ns},{sync.symbol},clear,,,,{last_good}\n")
            self.summary.rows_by_kind["clear"] += 1
        sync.state = _NO_SNAPSHOT
        sync.buffer.clear()
        sync.buffer.append(msg)

    # ----------------------------------------------------------------- snapshots
    def _on_snapshot(self, local_ts_ns: int, d: dict, stream: str | None, source: str, line_no: int) -> None:
        symbol = (d.get("s") or d.get("symbol") or (stream.split("@")[0] if stream else "")).upper()
        snap = (local_ts_ns, d, source, line_no)
        last_update_id = _update_id(d["lastUpdateId"])  # (checked now: a pending snapshot is applied later)
        if not symbol:
            symbol = self._attribute_snapshot(last_update_id, source)
        if not symbol:
            # no depth seen from this source yet: it belongs to the next symbol whose diffs appear here
            self._pending_snapshots.setdefault(source, []).append(snap)
            return
        self._apply_snapshot(self._sync_for(symbol), *snap)

    def _attribute_snapshot(self, last_update_id: int, source: str) -> str:
        candidates = sorted(self._source_symbols.get(source, ()))
        if len(candidates) == 1:
            return candidates[0]
        for symbol in candidates:  # several symbols in one file: the one whose diffs straddle the snapshot
            buffered = self._syncs[symbol].buffer
            if buffered and buffered[0][2] <= last_update_id + 1 and buffered[-1][3] >= last_update_id:
                return symbol
        return ""

    def _apply_snapshot(self, sync: _SymbolSync, local_ts_ns: int, d: dict, source: str, line_no: int) -> None:
        last_update_id = _update_id(d["lastUpdateId"])
        if sync.state == _LIVE and last_update_id <= sync.prev_u:
            self.summary.dropped["snapshot_older_than_live_book"] += 1
            return
        if sync.state == _NO_SNAPSHOT and sync.buffer:
            # Binance: buffered diffs older than the snapshot go; if the oldest left starts after it, the
            # snapshot is too old to connect (fetch another): keep buffering, nothing is emitted
            target = last_update_id + 1 if sync.spot else last_update_id
            while sync.buffer and sync.buffer[0][3] < target:
                sync.buffer.popleft()
                self.summary.dropped["depth_before_snapshot"] += 1
            if sync.buffer and sync.buffer[0][2] > target:
                self.summary.dropped["snapshot_older_than_buffered_diffs"] += 1
                return
        exch_ns = self._exch_ns(d, local_ts_ns)
        head = f"{exch_ns},{local_ts_ns},{sync.symbol},snapshot,"
        tail = f",{last_update_id}\n"
        bids, asks = d["bids"], d["asks"]
        rows = self._rows
        rows.extend([head + "buy," + p + "," + q + tail for p, q, *_ in bids])
        rows.extend([head + "sell," + p + "," + q + tail for p, q, *_ in asks])
        self.summary.rows_by_kind["snapshot"] += len(bids) + len(asks)
        self.summary.snapshots_applied += 1
        sync.state = _AWAIT_FIRST
        sync.last_update_id = last_update_id
        buffered, sync.buffer = sync.buffer, deque()
        for msg in buffered:
            self._process_diff(sync, msg, local_ts_ns)


def _update_id(value) -> int:
    """An update id as the synchronisation keeps it (an int64 word): anything else is malformed."""
    number = int(value)
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise ValueError(f"update id {number} out of range")
    return number


# --------------------------------------------------------------------- files


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def split_line(line: str) -> tuple[int, str] | None:
    """(local ts, payload) of a recording line; ts -1 if unreadable; None for a blank line."""
    space = line.find(" ")
    if space < 0 and not line.strip():
        return None
    try:
        ts = int(line[:space]) if space > 0 else -1
    except ValueError:
        ts = -1
    return ts, line[space + 1:]


def _lines(path: Path, index: int, progress: list[int]) -> Iterator[tuple[int, int, str, int]]:
    """(local_ts_ns, file index, payload, line number); ts -1 when the line has no readable timestamp."""
    import gzip
    import io

    raw = open(path, "rb")
    stream = gzip.GzipFile(fileobj=raw) if _is_gzip(path) else raw
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace")
    last_ts = 0
    try:
        for line_no, line in enumerate(text, 1):
            if line_no & 4095 == 0:
                progress[index] = raw.tell()
            split = split_line(line)
            if split is None:
                continue  # blank line: nothing lost
            ts, payload = split
            if ts < 0:
                yield last_ts, index, "", line_no  # keeps its place in the merge; rejected as bad_timestamp
                continue
            last_ts = ts
            yield ts, index, payload, line_no
    finally:
        progress[index] = raw.tell()
        text.close()
        raw.close()


class _BackgroundWriter:
    """Encodes and writes (compresses, for gzip) chunks on a thread: zlib releases the GIL, so
    compression overlaps the JSON parsing instead of adding to it."""

    def __init__(self, handle):
        import queue
        import threading

        self._handle = handle
        self._queue: queue.Queue = queue.Queue(maxsize=16)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hftshm-import-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            text = self._queue.get()
            if text is None:
                return
            if self._error is None:
                try:
                    self._handle.write(text.encode() if isinstance(text, str) else text)
                except BaseException as exc:  # surfaced by write/close in the caller's thread
                    self._error = exc

    def write(self, text: str | bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(text)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def import_files(sources: Iterable[str | Path], out_path: str | Path, *, strict: bool = False,
                 compresslevel: int = 1, fast: bool = True,
                 on_progress: Callable[[int, int], None] | None = None,
                 overrides: dict | None = None) -> ImportSummary:
    """Convert recordings to one canonical CSV (``.gz`` out if the name ends in .gz).

    Several inputs are merged by local receive time (e.g. one file per symbol, or consecutive days).
    ``on_progress(bytes_read, bytes_total[, rows_written])`` is called every few thousand lines (the line path
    also passes the rows written so far).
    One input goes through the byte scanner (binance_fast.py; the same output, several times faster);
    ``fast=False`` or several inputs: every line through the JSON decoder. ``compresslevel`` 1 by default:
    deflating the output at 6 costs more CPU than all the rest of the import (the file is ~25 % smaller).
    """
    paths = [Path(s) for s in sources]
    for path in paths:
        if not path.is_file():
            raise FeedImportError(f"input {path} does not exist or is not a file")
    if len(set(p.resolve() for p in paths)) != len(paths):
        raise FeedImportError("the same input is named twice")
    names = [str(p) if len(paths) > 1 else p.name for p in paths]
    total = sum(p.stat().st_size for p in paths)
    progress = [0] * len(paths)
    started = time.perf_counter()
    cpu_started = time.process_time()
    out_path = Path(out_path)
    tmp_path = out_path.with_name(out_path.name + ".partial")
    try:
        with open_binary(tmp_path, "wb", compresslevel=compresslevel, gzipped=out_path.name.endswith(".gz")) as out:
            out.write((HEADER + "\n").encode())
            writer = _BackgroundWriter(out)
            if fast and len(paths) == 1:
                from hftshm.feed.binance_fast import import_scanned

                try:
                    summary = import_scanned(paths[0], names[0], writer.write, strict=strict,
                                             on_progress=on_progress)
                finally:
                    writer.close()
            else:
                summary = _import_lines(paths, names, writer, progress, strict, on_progress, total)
        _refuse_bookless(summary, names)
        summary.instruments = _record_instruments(tmp_path, out_path, summary, paths, overrides or {})
        tmp_path.replace(out_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    if on_progress is not None:
        on_progress(total, total)
    summary.elapsed_s = time.perf_counter() - started
    summary.cpu_s = time.process_time() - cpu_started
    return summary


def _import_lines(paths, names, writer, progress, strict, on_progress, total) -> ImportSummary:
    """The line-by-line path: several inputs merged by receive time, every line through the JSON decoder."""
    importer = BinanceImporter(writer.write, strict=strict)
    streams = [_lines(p, i, progress) for i, p in enumerate(paths)]
    merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda item: item[0])
    count = 0
    for ts, index, payload, line_no in merged:
        if payload:
            importer.feed(ts, payload, names[index], line_no)
        else:
            importer.summary.lines += 1
            importer.reject(names[index], line_no, "bad_timestamp")
        count += 1
        if on_progress is not None and count & 8191 == 0:
            on_progress(sum(progress), total, importer.summary.rows)
    try:
        return importer.finish()
    finally:
        writer.close()


def _refuse_bookless(summary: ImportSummary, names: list[str]) -> None:
    """Depth diffs with no snapshot to start from cannot become a book: say so instead of writing
    trades and quotes next to a book that does not exist."""
    if not summary.never_synced:
        return
    symbols = ", ".join(sorted(summary.never_synced))
    raise FeedImportError(
        f"{symbols}: {', '.join(names)} holds depth diffs but no depth snapshot to build the book on, so no "
        f"book can be built (a continuation file? import it together with the file holding the snapshot, as "
        f"several sources of one recording: hftshm data import FIRST.gz CONTINUATION.gz -o OUT.csv.gz)")


def _record_instruments(tmp_path: Path, out_path: Path, summary: ImportSummary, paths: list[Path],
                        overrides: dict) -> list:
    """Infer each symbol's instrument from the written rows (exact decimal gcds), apply the user's
    overrides, and write the sidecar next to the output (named for the final file)."""
    from hftshm.feed import instruments as inst

    markets = {}
    for symbol in summary.symbols:
        depth = summary.depth_markets.get(symbol)
        markets[symbol] = inst.market_from_recording(symbol, depth is not None, depth == "spot")
    try:
        return inst.record_instruments(tmp_path, out_path, summary.symbols, markets, overrides,
                                       {"sources": [p.name for p in paths]})
    except inst.OffGridError as exc:
        raise FeedImportError(_off_grid_in_sources(exc, paths)) from None
    except inst.InstrumentError as exc:
        raise FeedImportError(str(exc)) from None


def _off_grid_in_sources(error, paths: list[Path]) -> str:
    """The recording line of the first value off the grid the user gave (file, line, value, grid)."""
    import gzip

    from hftshm.feed.instruments import on_grid, text_of
    from decimal import Decimal, InvalidOperation

    import re

    column = "price" if error.what == "tick size" else "qty"
    # price: the first of a level pair, or the p/b/a fields; qty: the second, or q/B/A
    pattern = (re.compile(r'\["([0-9.]+)","[0-9.]+"|"[pba]":"([0-9.]+)"') if column == "price"
               else re.compile(r'\["[0-9.]+","([0-9.]+)"|"[qBA]":"([0-9.]+)"'))
    for path in paths:
        opener = gzip.open if _is_gzip(path) else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for line_no, line in enumerate(handle, 1):
                if error.symbol.lower() not in line.lower():
                    continue
                for groups in pattern.findall(line):
                    text = groups[0] or groups[1]
                    try:
                        value = Decimal(text)
                    except InvalidOperation:
                        continue
                    if value != 0 and not on_grid(value, error.step):
                        return (f"{path}:{line_no}: {error.symbol} value {text} is off the {error.what} grid "
                                f"{text_of(error.step)} given for it (its {column}s are on a "
                                f"{text_of(error.inferred)} grid); nothing written")
    return str(error) + "; nothing written"
