"""The import's fast path: one recording, read in blocks, scanned by the byte scanner (binance_nb.py).

Trades and bookTickers need no book synchronisation: their rows are formatted straight from the
decompressed bytes, in order. Depth diffs go through ``BinanceImporter``'s synchronisation (the same
code as the line-by-line path) carrying a reference to their levels instead of decoded lists, and
what it emits becomes a plan entry. Lines the scanner does not take (snapshots, other events, malformed
or unusual lines) go through ``BinanceImporter.feed`` exactly as in the line-by-line path, so they are
counted, dropped or reported the same way; their rows are text pieces of the plan. The plan is
formatted to bytes by the compiled formatter in chunks that the writer thread compresses while the
next block is scanned.
"""

from __future__ import annotations

import gzip
import io
import json
from collections import deque
from pathlib import Path
from typing import Callable

import numpy as np

from hftshm.feed import binance_nb as nb
from hftshm.feed import binance_rows_nb as rows_nb
from hftshm.feed.binance import _LIVE, BinanceImporter, ImportSummary, _is_gzip, split_line

BLOCK_BYTES = 4 << 20  # decompressed input per block
CHUNK_BYTES = 2 << 20  # formatted output per write


class _FastLevels:
    """A scanned diff's levels: row ``line`` of the current block's line table."""

    __slots__ = ("line", "n_bids", "n_asks")

    def __init__(self, line: int, n_bids: int, n_asks: int):
        self.line = line
        self.n_bids = n_bids
        self.n_asks = n_asks


class _PlanningImporter(BinanceImporter):
    """BinanceImporter whose output is a plan: line ranges of the block, and text pieces."""

    def __init__(self, *, strict: bool, sync_table: tuple | None = None):
        super().__init__(self._add_text, strict=strict, sync_table=sync_table)
        self.plan: list[tuple[int, int, int]] = []
        self.texts: list[bytes] = []

    def _add_text(self, text: str) -> None:
        self.plan.append((-1, len(self.texts), 0))
        self.texts.append(text.encode())

    def add_lines(self, first: int, stop: int, local_ts_ns: int = -1) -> None:
        self._flush()  # text formatted before these lines comes first
        self.plan.append((first, stop, local_ts_ns))

    def _emit_depth(self, sync, msg: tuple, not_before_local_ns: int) -> None:
        levels = msg[5]
        if type(levels) is not _FastLevels:
            super()._emit_depth(sync, msg, not_before_local_ns)
            return
        local_ts_ns, last_id = msg[0], msg[3]
        sync.state = _LIVE
        sync.prev_u = last_id
        self.add_lines(levels.line, levels.line + 1,
                       local_ts_ns if local_ts_ns >= not_before_local_ns else not_before_local_ns)
        self.summary.rows_by_kind["depth"] += levels.n_bids + levels.n_asks
        if not levels.n_bids and not levels.n_asks:
            self.summary.notes["depth_without_levels"] += 1

    def materialize(self, data: bytes, table: np.ndarray) -> None:
        """Before the block goes: buffered diffs that still refer to it get their levels decoded."""
        for sync in self._syncs.values():
            if any(type(msg[5]) is _FastLevels for msg in sync.buffer):
                sync.buffer = deque(_materialized(msg, data, table) for msg in sync.buffer)


def _materialized(msg: tuple, data: bytes, table: np.ndarray) -> tuple:
    levels = msg[5]
    if type(levels) is not _FastLevels:
        return msg
    row = table[levels.line]
    bids = json.loads(data[row[nb.C_F0S]:row[nb.C_F0E]])
    asks = json.loads(data[row[nb.C_F1S]:row[nb.C_F1E]])
    return msg[:5] + (bids, asks) + msg[7:]


def _blocks(path: Path, on_bytes: Callable[[int], None]):
    """Decompressed input in pieces that end at a line end (the last one may not)."""
    raw = open(path, "rb")
    stream = gzip.GzipFile(fileobj=raw) if _is_gzip(path) else raw
    try:
        rest = b""
        while True:
            piece = stream.read(BLOCK_BYTES)
            on_bytes(raw.tell())
            if not piece:
                if rest:
                    yield rest
                return
            piece = rest + piece
            cut = piece.rfind(b"\n") + 1
            if cut == 0:
                rest = piece
                continue
            rest = piece[cut:]
            yield piece[:cut]
    finally:
        stream.close()
        raw.close()


def _prefetched(blocks, depth: int = 2):
    """The blocks inflated on a thread (zlib releases the GIL) while the caller scans the one before."""
    import queue
    import threading

    pipe: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    failure: list[BaseException] = []
    stop = threading.Event()

    def run():
        try:
            for block in blocks:
                while not stop.is_set():
                    try:
                        pipe.put(block, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)
        finally:
            blocks.close()
            pipe.put(done)

    thread = threading.Thread(target=run, name="hftshm-import-reader", daemon=True)
    thread.start()
    try:
        while True:
            block = pipe.get()
            if block is done:
                if failure:
                    raise failure[0]
                return
            yield block
    finally:
        stop.set()
        while thread.is_alive():
            try:
                pipe.get(timeout=0.1)
            except queue.Empty:
                pass


def import_scanned(path: Path, name: str, write: Callable[[bytes], None], *, strict: bool = False,
                   on_progress: Callable[[int, int], None] | None = None) -> ImportSummary:
    """Import one recording; rows go to ``write`` as bytes. Same rows and summary as the line path."""
    importer = _PlanningImporter(strict=strict)
    total = path.stat().st_size
    report = (lambda done: on_progress(done, total)) if on_progress is not None else (lambda done: None)
    lines_before = 0
    for data in _prefetched(_blocks(path, report)):
        if b"\r" in data:  # universal newlines would split these lines differently: the line path decides
            lines_before = _feed_text(importer, data, name, lines_before)
            _write_plan(importer, data, np.zeros((0, nb.N_COLS), np.int64), write)
            continue
        n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        table = nb.scan_lines(np.frombuffer(data, np.uint8), n_lines)
        _feed_block(importer, data, table, name, lines_before)
        _write_plan(importer, data, table, write)
        importer.materialize(data, table)
        lines_before += n_lines
    summary = importer.finish()
    _write_plan(importer, b"", np.zeros((0, nb.N_COLS), np.int64), write)
    return summary


def _feed_block(importer: _PlanningImporter, data: bytes, table: np.ndarray, name: str, lines_before: int) -> None:
    kinds = table[:, nb.C_KIND]
    summary = importer.summary
    bbo = kinds == nb.BBO
    n_bbo = int(bbo.sum())
    n_trade = int((kinds == nb.TRADE).sum())
    if n_bbo:
        summary.rows_by_kind["bbo"] += 2 * n_bbo
        without = int((table[bbo, nb.C_HAS_EXCH_KEY] == 0).sum())
        if without:
            summary.notes["bbo_without_exchange_time"] += without
    if n_trade:
        summary.rows_by_kind["trade"] += n_trade
    summary.lines += int((kinds >= nb.BBO).sum())
    _add_symbols(summary, data, table[(kinds == nb.BBO) | (kinds == nb.TRADE)])
    syncs = {}
    start = 0
    for line in np.flatnonzero((kinds == nb.FALLBACK) | (kinds == nb.DEPTH)).tolist():
        if line > start:
            importer.add_lines(start, line)
        start = line + 1
        row = table[line]
        line_no = lines_before + line + 1
        if row[nb.C_KIND] == nb.FALLBACK:
            text = data[row[nb.C_START]:row[nb.C_END] + 1].decode("utf-8", "replace")
            _feed_line(importer, text, name, line_no)
            continue
        symbol_bytes = data[row[nb.C_SYM_S]:row[nb.C_SYM_E]]
        sync = syncs.get(symbol_bytes)
        if sync is None:
            sync = syncs[symbol_bytes] = importer._sync_for(symbol_bytes.decode().upper())
        prev_id = int(row[nb.C_PREV])
        sync.spot = prev_id < 0
        levels = _FastLevels(line, int(row[nb.C_NBIDS]), int(row[nb.C_NASKS]))
        msg = (int(row[nb.C_LOCAL]), int(row[nb.C_EXCH]), int(row[nb.C_FIRST]), int(row[nb.C_UID]), prev_id,
               levels, None, name, line_no)
        importer._on_depth_msg(sync, msg)
    if len(table) > start:
        importer.add_lines(start, len(table))


def _add_symbols(summary: ImportSummary, data: bytes, rows: np.ndarray) -> None:
    """The symbols of scanned trade/bbo rows (read where the symbol changes from the row before)."""
    if not len(rows):
        return
    starts, ends = rows[:, nb.C_SYM_S].copy(), rows[:, nb.C_SYM_E].copy()
    changes = nb.symbol_changes(np.frombuffer(data, np.uint8), starts, ends)
    seen = {data[starts[k]:ends[k]] for k in changes.tolist()}
    summary.symbols.update(s.decode().upper() for s in seen)


def _feed_line(importer: BinanceImporter, line: str, name: str, line_no: int) -> None:
    """One line the scanner did not take, as the line path treats it."""
    split = split_line(line)
    if split is None:
        return
    ts, payload = split
    if ts >= 0 and payload:
        importer.feed(ts, payload, name, line_no)
    else:
        importer.summary.lines += 1
        importer.reject(name, line_no, "bad_timestamp")


def _feed_text(importer: _PlanningImporter, data: bytes, name: str, lines_before: int) -> int:
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace")
    count = 0
    for count, line in enumerate(text, 1):
        _feed_line(importer, line, name, lines_before + count)
    return lines_before + count


def _write_plan(importer: _PlanningImporter, data: bytes, table: np.ndarray, write: Callable[[bytes], None]) -> None:
    importer._flush()
    if not importer.plan:
        return
    plan = np.array(importer.plan, np.int64).reshape(-1, 3)
    texts = importer.texts
    offsets = np.zeros(len(texts) + 1, np.int64)
    if texts:
        np.cumsum([len(t) for t in texts], out=offsets[1:])
    blob = np.frombuffer(b"".join(texts), np.uint8) if texts else np.zeros(0, np.uint8)
    biggest = max(int(table[:, nb.C_BOUND].max()) if len(table) else 0,
                  max((len(t) for t in texts), default=0))
    out = np.empty(max(CHUNK_BYTES, biggest), np.uint8)
    buf = np.frombuffer(data, np.uint8) if data else np.zeros(0, np.uint8)
    entry, line = 0, -1
    while entry < len(plan):
        entry, line, size = rows_nb.format_plan(buf, table, plan, blob, offsets, entry, line, out)
        if size:
            write(out[:size].tobytes())
    importer.plan.clear()
    importer.texts.clear()
