"""Live frames -> ``market_event`` records, through the import's own code (one implementation).

A batch of frames is laid out as recording lines (``<receive ns> <frame>``) and goes through exactly
what ``hftshm data import`` runs on a block of a file: the byte scanner (``binance_nb.scan_lines``),
``BinanceImporter``'s synchronisation (``binance_fast._feed_block``: trades and bookTickers straight
from the bytes, depth diffs through the per-symbol state machine, other lines through
``BinanceImporter.feed``) and the compiled row formatter; the canonical rows then go through the tick
CSV parser (``csv_nb.parse_block``) into records. So a live book is built from the very rows the
import would have written for the same frames.

What the import has no notion of is a broken connection: ``interrupt`` marks every symbol of the
market invalid (a ``clear`` row, as a sequence gap does) until the next snapshot resyncs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hftshm.feed import binance_nb as scan_nb
from hftshm.feed import binance_sync_nb as sync_nb
from hftshm.feed import csv_nb
from hftshm.feed.binance import _LIVE, _NO_SNAPSHOT
from hftshm.feed.binance_fast import _feed_block, _PlanningImporter, _write_plan
from hftshm.feed.ticks import N_ISSUES, REJECT_ISSUES, RowIssue
from hftshm.feed.tickcsv import MAX_RECORDED_ISSUES, _symbol_arrays
from hftshm.symbols import SymbolTable
from hftshm.transport.layout import load as load_layout

_LAST = 1  # EventFlag.LAST_IN_MESSAGE
_NO_ROWS = np.zeros(0, np.uint8)
LINE_PATH_FRAMES = 32  # segments up to this many frames take the import's line path, longer ones its block path


class _LiveImporter(_PlanningImporter):
    def interrupt(self, local_ts_ns: int) -> list[str]:
        """The connection broke: every synced symbol is invalid until its next snapshot."""
        broken = []
        for sync in self._syncs.values():
            if sync.state != _NO_SNAPSHOT:
                last_good = sync.prev_u if sync.state == _LIVE else sync.last_update_id
                self._rows.append(f"{local_ts_ns},{local_ts_ns},{sync.symbol},clear,,,,{last_good}\n")
                self.summary.rows_by_kind["clear"] += 1
                broken.append(sync.symbol)
            sync.state = _NO_SNAPSHOT
            sync.buffer.clear()
        return broken

    def unsynced(self) -> list[str]:
        return [s.symbol for s in self._syncs.values() if s.state == _NO_SNAPSHOT]


@dataclass
class DecodeStats:
    frames: int = 0
    records: int = 0
    interruptions: int = 0
    row_rejects: int = 0  # canonical rows the tick parser refused (e.g. a symbol not in the symbol table)
    compiled_frames: int = 0  # frames that went from bytes to records in one kernel call (step_lines)
    compiled_depth_frames: int = 0  # of them, depth diffs (synchronised by the kernel on the importer's words)


class LiveDecoder:
    """Decodes batches of ``(receive ns, frame bytes or None, market)``; None marks a disconnect."""

    def __init__(self, symbols: SymbolTable, markets: list[str]):
        # the importers' synchronisation words, one table per market, stacked: the live feed's kernel
        # call reads and advances them (binance_sync_nb)
        self.sync_tables = sync_nb.new_tables(len(markets))
        words, names, lens = self.sync_tables
        self.market_index = {m: k for k, m in enumerate(markets)}
        self.importers = {m: _LiveImporter(strict=False, sync_table=(words[k], names[k], lens[k]))
                          for k, m in enumerate(markets)}
        self._lines = {m: 0 for m in markets}
        self._table, self._names, self._lens, self._ids = _symbol_arrays(symbols)
        self._state = np.zeros(csv_nb.N_STATE, np.int64)
        self._issue_counts = np.zeros(N_ISSUES, np.int64)
        self._reject_index = np.array(REJECT_ISSUES, np.int64)
        self._rejects_seen = 0
        self._issue_lines = np.zeros(MAX_RECORDED_ISSUES, np.int64)
        self._issue_codes = np.zeros(MAX_RECORDED_ISSUES, np.int64)
        n = len(self._ids)
        self._last_local = np.zeros(n, np.int64)
        self._last_exch = np.zeros((n, 8), np.int64)
        self._sym_stats = np.zeros((n, csv_nb.N_SYMBOL_STATS), np.int64)
        self._dtype = load_layout("market_event").dtype
        self.out = np.zeros(1 << 14, self._dtype)
        self._csv: list[bytes] = []
        self._csv_line = 0
        self.stats = DecodeStats()
        self.snapshot_requests: list[tuple[str, str]] = []  # (market, symbol) the synchronisation wants
        self._fast_symbols: set[tuple] = set()  # (market, symbol as sent) of the lines step_lines took

    @property
    def clock_offset_ns(self) -> int | None:
        """min(local receive - exchange time) over the depth and trade events so far."""
        return int(self._state[csv_nb.ST_MIN_LOCAL_MINUS_EXCH]) if self._state[csv_nb.ST_HAS_MIN] else None

    def decode(self, frames: list) -> np.ndarray:
        """Records of ``frames`` (a view of a buffer reused by the next call)."""
        rows, n_lines = self.rows(frames)
        return self.records_of(rows, n_lines)

    def rows(self, frames: list) -> tuple[np.ndarray, int]:
        """The canonical rows of ``frames`` (uint8, whole lines) as the import writes them, and their
        count; ``out`` has room for their records afterwards. The records: ``parse_args`` plus
        ``csv_nb.parse_block`` (or ``decode``), then ``parsed``."""
        self._csv.clear()
        start = 0
        for k, (recv_ns, frame, market) in enumerate(frames):
            if frame is None or market != frames[start][2]:
                self._segment(frames, start, k)
                start = k
            if frame is None:
                self.stats.interruptions += 1
                importer = self.importers[market]
                importer.interrupt(recv_ns)
                importer._flush()
                self._drain_plan(importer, b"", None)
                start = k + 1
        self._segment(frames, start, len(frames))
        if not self._csv:
            return _NO_ROWS, 0
        buf = self._csv[0] if len(self._csv) == 1 else b"".join(self._csv)
        n_lines = buf.count(b"\n")
        if len(self.out) < 2 * n_lines + 2:
            self.out = np.zeros(2 * n_lines + 2, self._dtype)
        return np.frombuffer(buf, np.uint8), n_lines

    def fast_lines(self, frames: list, most: int) -> bytes | None:
        """The batch as recording lines for ``live_publish_nb.step_lines`` (the import's scanner,
        synchronisation rule and row formatter in the one call): up to ``most`` frames of one market,
        no disconnect, no snapshot (the kernel decides about the rest, and hands anything it does not
        take back to ``rows``)."""
        if len(frames) > most:
            return None
        market = frames[0][2]
        for _, frame, frame_market in frames:
            if frame is None or frame_market != market or b"depthSnapshot" in frame[:64]:
                return None
        if len(frames) == 1:
            recv_ns, frame, _ = frames[0]
            return b"%d %b\n" % (recv_ns, frame)
        return b"".join([b"%d %b\n" % (ns, frame) for ns, frame, _ in frames])

    def fast_taken(self, frames: list, lines: bytes, table: np.ndarray, n_bbo: int, n_trade: int,
                   bbo_without_exch: int, n_depth: int = 0, depth_rows: int = 0,
                   depth_without_levels: int = 0) -> None:
        """``step_lines`` took ``frames`` (as ``lines``): the counts of ``read_taken``."""
        self.read_taken(frames[0][2], len(frames), np.frombuffer(lines, np.uint8), table, n_bbo, n_trade,
                        bbo_without_exch, n_depth, depth_rows, depth_without_levels)

    def read_taken(self, market: str, n: int, lines: np.ndarray, table: np.ndarray, n_bbo: int, n_trade: int,
                   bbo_without_exch: int, n_depth: int, depth_rows: int, depth_without_levels: int,
                   new_symbols: bool = True) -> None:
        """The one call took ``n`` frames of ``market`` (``lines``: the recording lines it made of
        them; ``table``: their scan): the import's counts for them, as its block path keeps them
        (``binance_fast._feed_block``, ``_PlanningImporter._emit_depth``)."""
        summary = self.importers[market].summary
        summary.lines += n
        if n_bbo:
            summary.rows_by_kind["bbo"] += 2 * n_bbo
            if bbo_without_exch:
                summary.notes["bbo_without_exchange_time"] += bbo_without_exch
        if n_trade:
            summary.rows_by_kind["trade"] += n_trade
        if depth_rows:
            summary.rows_by_kind["depth"] += depth_rows
        if depth_without_levels:
            summary.notes["depth_without_levels"] += depth_without_levels
        if new_symbols:  # (not when every line's symbol has a synchronisation row: in the summary already)
            known = self._fast_symbols
            for start, end in table[:n, scan_nb.C_SYM_S:scan_nb.C_SYM_E + 1].tolist():
                symbol = (market, lines[start:end].tobytes())
                if symbol not in known:
                    known.add(symbol)
                    summary.symbols.add(symbol[1].decode().upper())
        self._lines[market] += n
        self.stats.frames += n
        self.stats.compiled_frames += n
        self.stats.compiled_depth_frames += n_depth

    def _segment(self, frames: list, start: int, stop: int) -> None:
        if stop <= start:
            return
        market = frames[start][2]
        importer = self.importers[market]
        if stop - start <= LINE_PATH_FRAMES:
            self._segment_by_line(importer, market, frames, start, stop)
            return
        data = b"".join([b"%d %b\n" % (ns, frame) for ns, frame, _ in frames[start:stop]])
        n_lines = stop - start
        table = scan_nb.scan_lines(np.frombuffer(data, np.uint8), n_lines)
        summary = importer.summary
        gaps, stale = len(summary.gaps), summary.dropped["snapshot_older_than_buffered_diffs"]
        _feed_block(importer, data, table, market, self._lines[market])
        self._lines[market] += n_lines
        self.stats.frames += n_lines
        self._drain_plan(importer, data, table)
        importer.materialize(data, table)
        for gap in summary.gaps[gaps:]:
            self.snapshot_requests.append((market, gap.symbol))
        if summary.dropped["snapshot_older_than_buffered_diffs"] > stale:
            self.snapshot_requests.extend((market, s) for s in importer.unsynced())

    def _segment_by_line(self, importer, market: str, frames: list, start: int, stop: int) -> None:
        """A few frames: the import's line path (``BinanceImporter.feed``, what it runs for several
        inputs; the same rows as the block path) costs ~6 us a frame against the block path's ~50 us
        of fixed cost per block, which is what a frame arriving on its own would pay."""
        summary = importer.summary
        gaps, stale = len(summary.gaps), summary.dropped["snapshot_older_than_buffered_diffs"]
        line = self._lines[market]
        feed = importer.feed
        for k in range(start, stop):
            recv_ns, frame, _ = frames[k]
            line += 1
            feed(recv_ns, frame.decode("utf-8", "replace"), market, line)
        self._lines[market] = line
        self.stats.frames += stop - start
        if importer.plan:  # the importer flushed on its own (a huge snapshot): keep the order
            self._drain_plan(importer, b"", None)
        rows = importer._rows
        if rows:
            self._csv.append("".join(rows).encode())
            rows.clear()
        for gap in summary.gaps[gaps:]:
            self.snapshot_requests.append((market, gap.symbol))
        if summary.dropped["snapshot_older_than_buffered_diffs"] > stale:
            self.snapshot_requests.extend((market, s) for s in importer.unsynced())

    def _drain_plan(self, importer, data: bytes, table) -> None:
        if table is None:
            table = np.zeros((0, scan_nb.N_COLS), np.int64)
        _write_plan(importer, data, table, self._csv.append)

    def parse_args(self) -> tuple:
        """``csv_nb.parse_block``'s arguments after the rows: the first line's number, then the symbol
        table, ``out`` and the parser's state (carried from batch to batch)."""
        return (self.next_line_no, self._names, self._lens, self._ids, self.out, self._state, self._issue_counts,
                self._issue_lines, self._issue_codes, self._last_local, self._last_exch, self._sym_stats)

    def parsed(self, n_lines: int, n_records: int) -> None:
        """After ``parse_block`` took ``n_lines`` rows into ``n_records`` records: the counters."""
        self._csv_line += n_lines
        if self._state[csv_nb.ST_N_RECORDED]:  # some row had an issue: count the rejects among them
            self.stats.row_rejects = int(self._issue_counts[self._reject_index].sum())
        self.stats.records += n_records

    @property
    def next_line_no(self) -> int:
        """The line number the next batch's first canonical row gets (the parser's issue reports)."""
        return self._csv_line + 1

    def records_of(self, rows: np.ndarray, n_lines: int) -> np.ndarray:
        """``rows`` (from ``rows``) parsed into records (a view of ``out``), the counters kept."""
        if not n_lines:
            return self.out[:0]
        self._state[csv_nb.ST_CARRY] = 0
        first, *args = self.parse_args()
        n = csv_nb.parse_block(rows, first, False, *args)
        if n:
            self.out[n - 1]["flags"] |= _LAST  # a batch ends at a frame's end: its last message is whole
        self.parsed(n_lines, n)
        return self.out[:n]

    def row_issues(self) -> dict[str, int]:
        return {RowIssue(i).name.lower(): int(c) for i, c in enumerate(self._issue_counts)
                if c and i in RowIssue._value2member_map_}

    def summaries(self) -> dict:
        return {m: imp.summary for m, imp in self.importers.items()}
