"""Tardis.dev CSV -> the canonical tick CSV (``hftshm data import --format tardis``).

Data types, recognised by their header (gzip or plain):

- ``incremental_book_L2``: ``exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount``.
  Rows with one ``local_timestamp`` are one message. ``is_snapshot`` turning true starts a new full
  book (a ``snapshot`` message: it replaces the book; all its rows carry the first row's timestamps);
  later false rows are diffs (``depth``; amount 0 deletes). A diff before any snapshot of its symbol
  means no book can be built: the import stops with an error naming the file and line.
- ``book_snapshot_25`` (any N): ``...,asks[0].price,asks[0].amount,bids[0].price,bids[0].amount,...``,
  each row a full top-N book: a ``snapshot`` message.
- ``trades``: ``exchange,symbol,timestamp,local_timestamp,id,side,price,amount`` (side = aggressor;
  ``unknown`` sides are not written, counted).
- ``quotes``: ``exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount``:
  ``bbo`` rows.

Timestamps are microseconds (-> ns). Tardis carries no exchange update ids: each symbol's messages are
numbered 1, 2, ... in the output's ``update_id`` so consecutive rows of one message stay one message.
Several files (e.g. a day's book and trades) are merged by local timestamp. Prices and amounts are
written as Tardis printed them; the instruments are inferred from them exactly (``instruments.py``).
Market kind from the exchange name: ``binance`` spot, ``binance-futures`` linear, ``binance-delivery``
inverse (others: from the symbol name).
"""

from __future__ import annotations

import csv
import heapq
import io
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from hftshm.feed.binance import MAX_REPORTED_LINES, FeedImportError, ImportSummary
from hftshm.feed.ticks import HEADER, open_binary

US_TO_NS = 1_000
BOOK_L2 = ["exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount"]
TRADES = ["exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"]
QUOTES = ["exchange", "symbol", "timestamp", "local_timestamp", "ask_amount", "ask_price", "bid_price", "bid_amount"]
_EXCHANGE_MARKETS = {"binance": "spot", "binance-us": "spot", "binance-futures": "linear",
                     "binance-delivery": "inverse"}
_BOOK_SIDES = {"bid": "buy", "buy": "buy", "ask": "sell", "sell": "sell"}


class _Rejects:
    def __init__(self, summary: ImportSummary, strict: bool):
        self.summary, self.strict = summary, strict

    def __call__(self, source: str, line: int, reason: str) -> None:
        if self.strict:
            raise FeedImportError(f"{source}:{line}: {reason.replace('_', ' ')} (--strict stops at the first bad row)")
        self.summary.rejects[reason] += 1
        if len(self.summary.reject_lines) < MAX_REPORTED_LINES:
            self.summary.reject_lines.append((source, line, reason))


def _open_text(path: Path, raws: list):
    """A text reader of ``path``; its underlying file goes to ``raws`` (bytes read, for progress)."""
    import gzip

    raw = open(path, "rb")
    gzipped = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)
    raws.append(raw)
    return io.TextIOWrapper(gzip.GzipFile(fileobj=raw) if gzipped else raw, encoding="utf-8", newline="")


def data_type(header: list[str]) -> str:
    if header == BOOK_L2:
        return "incremental_book_L2"
    if header == TRADES:
        return "trades"
    if header == QUOTES:
        return "quotes"
    if header[:4] == BOOK_L2[:4] and len(header) > 4 and header[4] in ("asks[0].price", "bids[0].price"):
        return "book_snapshot"
    raise FeedImportError(f"not a Tardis CSV this importer reads (incremental_book_L2, book_snapshot_N, trades, "
                          f"quotes): header {','.join(header[:8])}")


def _us(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("negative timestamp")
    return value * US_TO_NS


def _number(text: str) -> str:
    """The amount/price text as written, after checking it is a finite non-negative decimal."""
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise ValueError(f"{text!r} is not a finite non-negative number")
    return text.strip()


def _messages(path: Path, index: int, reject: _Rejects, summary: ImportSummary,
              markets: dict[str, str], raws: list) -> Iterator[tuple]:
    """(local ns, file index, sequence, symbol, kind, exch ns, rows [(side, price, qty)]) per message."""
    name = str(path)
    with _open_text(path, raws) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise FeedImportError(f"{name}: empty file")
        kind_of_file = data_type([h.strip() for h in header])
        parse = {"incremental_book_L2": _book_rows, "trades": _trade_rows, "quotes": _quote_rows,
                 "book_snapshot": _snapshot_rows}[kind_of_file]
        seq = 0
        for message in parse(reader, header, name, reject, summary, markets):
            yield (message[0], index, seq) + message[1:]
            seq += 1


def _common(row: list[str], summary: ImportSummary, markets: dict[str, str]) -> tuple[str, int, int]:
    symbol = row[1].strip().upper()
    if not symbol:
        raise ValueError("empty symbol")
    exch_ns, local_ns = _us(row[2]), _us(row[3])
    if symbol not in summary.symbols:
        summary.symbols.add(symbol)
        markets.setdefault(symbol, _EXCHANGE_MARKETS.get(row[0].strip().lower(), ""))
    return symbol, exch_ns, local_ns


def _book_rows(reader, header, name, reject, summary, markets):
    in_snapshot: dict[str, bool] = {}
    synced: set[str] = set()
    current = None  # [local, symbol, kind, exch, rows]
    for row in reader:
        line = reader.line_num
        summary.lines += 1
        try:
            if len(row) != len(BOOK_L2):
                raise ValueError("column count")
            symbol, exch_ns, local_ns = _common(row, summary, markets)
            snap = row[4].strip().lower() == "true"
            side = _BOOK_SIDES[row[5].strip().lower()]
            price, qty = _number(row[6]), _number(row[7])
        except (ValueError, KeyError):
            reject(name, line, "malformed_row")
            continue
        starts_snapshot = snap and not in_snapshot.get(symbol, False)
        in_snapshot[symbol] = snap
        if not snap and symbol not in synced:
            raise FeedImportError(
                f"{name}:{line}: {symbol}: incremental_book_L2 update before any snapshot (is_snapshot=true rows) of "
                f"{symbol}: no book can be built from diffs alone (Tardis files start with a snapshot; was the "
                f"file cut, or is the day's first file missing?)")
        if snap:
            synced.add(symbol)
        kind = "snapshot" if snap else "depth"
        same = (current is not None and current[1] == symbol and current[2] == kind
                and (not snap or not starts_snapshot) and (snap or current[0] == local_ns))
        if not same:
            if current is not None:
                yield tuple(current)
            current = [local_ns, symbol, kind, exch_ns, []]
        current[4].append((side, price, qty))
    if current is not None:
        yield tuple(current)


def _snapshot_rows(reader, header, name, reject, summary, markets):
    header = [h.strip() for h in header]
    levels = []
    for side, prefix in (("buy", "bids"), ("sell", "asks")):
        k = 0
        while f"{prefix}[{k}].price" in header:
            levels.append((side, header.index(f"{prefix}[{k}].price"), header.index(f"{prefix}[{k}].amount")))
            k += 1
    for row in reader:
        line = reader.line_num
        summary.lines += 1
        try:
            if len(row) != len(header):
                raise ValueError("column count")
            symbol, exch_ns, local_ns = _common(row, summary, markets)
            rows = [(side, _number(row[p]), _number(row[q])) for side, p, q in levels if row[p].strip()]
        except ValueError:
            reject(name, line, "malformed_row")
            continue
        yield local_ns, symbol, "snapshot", exch_ns, rows


def _trade_rows(reader, header, name, reject, summary, markets):
    for row in reader:
        line = reader.line_num
        summary.lines += 1
        try:
            if len(row) != len(TRADES):
                raise ValueError("column count")
            symbol, exch_ns, local_ns = _common(row, summary, markets)
            side = row[5].strip().lower()
            price, qty = _number(row[6]), _number(row[7])
        except ValueError:
            reject(name, line, "malformed_row")
            continue
        if side not in ("buy", "sell"):
            summary.dropped["trade_without_aggressor_side"] += 1
            continue
        yield local_ns, symbol, "trade", exch_ns, [(side, price, qty)]


def _quote_rows(reader, header, name, reject, summary, markets):
    for row in reader:
        line = reader.line_num
        summary.lines += 1
        try:
            if len(row) != len(QUOTES):
                raise ValueError("column count")
            symbol, exch_ns, local_ns = _common(row, summary, markets)
            if not all(cell.strip() for cell in row[4:8]):
                summary.dropped["quote_with_an_empty_side"] += 1
                continue
            ask_qty, ask_px, bid_px, bid_qty = (_number(c) for c in row[4:8])
        except ValueError:
            reject(name, line, "malformed_row")
            continue
        yield local_ns, symbol, "bbo", exch_ns, [("buy", bid_px, bid_qty), ("sell", ask_px, ask_qty)]


def import_tardis(sources: Iterable[str | Path], out_path: str | Path, *, strict: bool = False,
                  compresslevel: int = 1, on_progress: Callable[[int, int], None] | None = None,
                  overrides: dict | None = None) -> ImportSummary:
    """Convert Tardis.dev CSV files to one canonical CSV and its instruments sidecar (see the docstring)."""
    from hftshm.feed import instruments as inst

    paths = [Path(s) for s in sources]
    for path in paths:
        if not path.is_file():
            raise FeedImportError(f"input {path} does not exist or is not a file")
    summary = ImportSummary()
    reject = _Rejects(summary, strict)
    markets: dict[str, str] = {}
    started, cpu_started = time.perf_counter(), time.process_time()
    out_path = Path(out_path)
    tmp_path = out_path.with_name(out_path.name + ".partial")
    total = sum(p.stat().st_size for p in paths)
    update_ids: dict[str, int] = {}
    try:
        with open_binary(tmp_path, "wb", compresslevel=compresslevel, gzipped=out_path.name.endswith(".gz")) as out:
            out.write((HEADER + "\n").encode())
            raws: list = []
            streams = [_messages(p, i, reject, summary, markets, raws) for i, p in enumerate(paths)]
            merged = heapq.merge(*streams, key=lambda m: (m[0], m[1], m[2])) if len(streams) > 1 else streams[0]
            chunk: list[str] = []
            for count, (local_ns, _index, _seq, symbol, kind, exch_ns, rows) in enumerate(merged):
                uid = update_ids[symbol] = update_ids.get(symbol, 0) + 1
                head = f"{exch_ns},{local_ns},{symbol},{kind},"
                chunk.extend(f"{head}{side},{price},{qty},{uid}\n" for side, price, qty in rows)
                summary.rows_by_kind[kind] += len(rows)
                if kind == "snapshot":
                    summary.snapshots_applied += 1
                if len(chunk) > 16384:
                    out.write("".join(chunk).encode())
                    chunk.clear()
                if on_progress is not None and count & 4095 == 0:
                    on_progress(sum(r.tell() for r in raws if not r.closed), total, summary.rows)
            out.write("".join(chunk).encode())
        markets = {s: m or inst.market_from_recording(s, False, False) for s, m in markets.items()}
        try:
            summary.instruments = inst.record_instruments(tmp_path, out_path, summary.symbols, markets,
                                                          overrides or {}, {"sources": [p.name for p in paths]})
        except inst.OffGridError as exc:
            raise FeedImportError(_off_grid_line(paths, exc)) from None
        except inst.InstrumentError as exc:
            raise FeedImportError(str(exc)) from None
        tmp_path.replace(out_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    if on_progress is not None:
        on_progress(total, total)
    summary.elapsed_s = time.perf_counter() - started
    summary.cpu_s = time.process_time() - cpu_started
    return summary


def _off_grid_line(paths: list[Path], error) -> str:
    """The first Tardis row whose price (tick) or amount (lot) of the symbol is off the grid given for it:
    file, line, value, grid (the error path only: a plain scan)."""
    from decimal import Decimal, InvalidOperation

    from hftshm.feed.instruments import on_grid, text_of

    suffix = ("price",) if error.what == "tick size" else ("amount",)
    for path in paths:
        with _open_text(path, []) as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            columns = [k for k, h in enumerate(header) if h.endswith(suffix)]
            for row in reader:
                if len(row) != len(header) or row[1].strip().upper() != error.symbol:
                    continue
                for k in columns:
                    try:
                        value = Decimal(row[k])
                    except InvalidOperation:
                        continue
                    if value != 0 and not on_grid(value, error.step):
                        return (f"{path}:{reader.line_num}: {error.symbol} {header[k]} {row[k]} is off the "
                                f"{error.what} grid {text_of(error.step)} given for it (the data is on a "
                                f"{text_of(error.inferred)} grid); nothing written")
    return f"{', '.join(map(str, paths))}: {error}; nothing written"
