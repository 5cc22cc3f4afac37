"""The binary event cache: a tick CSV parsed once into ``market_event`` records, memory-mapped on replay.

``X.csv.gz`` -> ``X.events.bin`` next to it (generated on first use, never committed):

    bytes 0..4095   header: b"HFTSHMEV", format version (u32), JSON length (u32), JSON
                    {layout, fingerprint, count, source {name, size, mtime_ns}, symbols, report, ...}
    bytes 4096..    count records of the market_event layout, in file order

The cache is rebuilt when it is stale: the source's size or mtime changed, the layout fingerprint
changed, the symbol table changed, or the file is not a cache at all. Replay maps it with
``np.memmap`` and releases pages it has passed (``EventCache.release``), so memory stays flat
however long the data.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from hftshm.feed.ticks import RowIssue
from hftshm.feed.tickcsv import ISSUE_TEXT, RowReport, TickCsvError, iter_records
from hftshm.symbols import SymbolTable
from hftshm.transport.layout import load as load_layout

MAGIC = b"HFTSHMEV"
FORMAT_VERSION = 1
HEADER_BYTES = 4096
CACHE_SUFFIX = ".events.bin"
_REPORTED_ISSUE_LINES = 100  # issue lines kept in the header (the header is one page)


class CacheError(ValueError):
    """A cache file is unreadable or does not match its source."""


def cache_path_for(source: str | Path) -> Path:
    """``X.csv.gz`` / ``X.csv`` -> ``X.events.bin`` in the same directory."""
    source = Path(source)
    name = source.name
    for suffix in (".csv.gz", ".csv", ".gz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return source.with_name(name + CACHE_SUFFIX)


def _symbols_json(symbols: SymbolTable) -> list:
    return [[s.name, s.symbol_id, s.tick_size, s.lot_size] for s in symbols]


def _source_json(source: Path) -> dict:
    st = source.stat()
    return {"name": source.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class EventCache:
    """An opened cache: ``events`` is a read-only memory map of the records."""

    path: Path
    header: dict
    events: np.ndarray

    @property
    def count(self) -> int:
        return len(self.events)

    @property
    def min_local_minus_exch_ns(self) -> int | None:
        return self.header.get("min_local_minus_exch_ns")

    @property
    def report(self) -> dict:
        return self.header.get("report", {})

    def release(self, upto: int) -> None:
        """Drop the pages of records before ``upto`` from this process's memory (they stay in the
        page cache); replay calls this as it moves on so a long file does not grow RSS."""
        mm = getattr(self.events, "_mmap", None)
        if mm is None or upto <= 0 or not hasattr(mm, "madvise"):
            return
        # the map starts at the allocation-granularity boundary at or below the records' offset
        delta = HEADER_BYTES % mmap.ALLOCATIONGRANULARITY
        end = min(delta + upto * self.events.itemsize, len(mm)) // mmap.PAGESIZE * mmap.PAGESIZE
        if end > 0:
            mm.madvise(mmap.MADV_DONTNEED, 0, end)

    def close(self) -> None:
        mm = getattr(self.events, "_mmap", None)
        self.events = np.zeros(0, self.events.dtype)
        if mm is not None:
            try:
                mm.close()
            except BufferError:  # a view is still alive somewhere; the OS unmaps when it goes
                pass


def read_header(path: str | Path) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(HEADER_BYTES)
    except OSError as exc:
        raise CacheError(f"cannot read cache {path}: {exc}") from None
    if len(raw) < 16 or raw[:8] != MAGIC:
        raise CacheError(f"{path} is not an hftshm event cache")
    version, length = struct.unpack_from("<II", raw, 8)
    if version != FORMAT_VERSION:
        raise CacheError(f"{path}: cache format {version}, this version reads {FORMAT_VERSION}")
    try:
        return json.loads(raw[16: 16 + length])
    except ValueError:
        raise CacheError(f"{path}: corrupt cache header") from None


def staleness(cache: str | Path, source: str | Path, symbols: SymbolTable) -> str | None:
    """Why ``cache`` cannot be used for ``source`` (None when it is fresh)."""
    cache, source = Path(cache), Path(source)
    if not cache.exists():
        return "no cache yet"
    try:
        header = read_header(cache)
    except CacheError as exc:
        return str(exc)
    layout = load_layout("market_event")
    if header.get("fingerprint") != layout.fingerprint:
        return "market_event layout changed"
    if header.get("source") != _source_json(source):
        return "source file changed (size or mtime)"
    if header.get("symbols") != _symbols_json(symbols):
        return "symbol table changed"
    expected = HEADER_BYTES + header.get("count", -1) * layout.itemsize
    if cache.stat().st_size != expected:
        return "cache file truncated"
    return None


def build(source: str | Path, symbols: SymbolTable, cache: str | Path | None = None, *, strict: bool = False,
          on_block: Callable[[int], None] | None = None) -> tuple[Path, RowReport]:
    """Parse ``source`` into a cache file (atomically replaced); returns its path and the row report."""
    source = Path(source)
    cache = Path(cache) if cache is not None else cache_path_for(source)
    layout = load_layout("market_event")
    report = RowReport(str(source))
    fd, tmp_name = tempfile.mkstemp(prefix=cache.name + ".", suffix=".partial", dir=cache.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(b"\0" * HEADER_BYTES)
            count = 0
            for block in iter_records(source, symbols, strict=strict, report=report):
                block = block.copy()
                block["seq"] = np.arange(count, count + len(block))
                out.write(block.tobytes())
                count += len(block)
                if on_block is not None:
                    on_block(count)
            check_grids(source, report, symbols)
            header = {
                "layout": layout.name,
                "fingerprint": layout.fingerprint,
                "count": count,
                "source": _source_json(source),
                "symbols": _symbols_json(symbols),
                "min_local_minus_exch_ns": report.min_local_minus_exch_ns,
                "report": _report_json(report),
            }
            out.seek(0)
            out.write(_encode_header(header))
        os.chmod(tmp, 0o644)
        tmp.replace(cache)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return cache, report


def check_grids(source: Path, report: RowReport, symbols: SymbolTable) -> None:
    """Every price and quantity of each symbol on its tick and lot (the scan's exact gcds say so at no
    extra cost); else ``TickCsvError`` naming the first row off the grid: a replay or backtest never runs
    on a book that would reject most of its events."""
    from decimal import Decimal

    from hftshm.feed.instruments import first_off_grid, on_grid, step_from_e8, text_of

    for name, stats in report.symbol_stats.items():
        sym = symbols.by_name(name)
        for key, step_value, column, what in (("price_gcd_e8", sym.tick_size, 5, "tick"),
                                              ("qty_gcd_e8", sym.lot_size, 6, "lot")):
            gcd = step_from_e8(int(stats.get(key, 0)))
            step = Decimal(repr(float(step_value))).normalize()
            if gcd is None or -step.as_tuple().exponent > 8 or on_grid(gcd, step):
                continue
            found = first_off_grid(source, name, column, step)
            where = f"{source}:{found[0]}: {name} {'price' if column == 5 else 'qty'} {found[1]}" if found else \
                f"{source}: {name}"
            raise TickCsvError(f"{where} is off the {what} size grid {text_of(step)} of {name} (its values are on a "
                               f"{text_of(gcd)} grid): fix the instrument ({source.name}.instruments.json or "
                               f"[symbols.{name}])")


def _report_json(report: RowReport) -> dict:
    return {
        "lines": report.lines,
        "records": report.records,
        "issues": {i.name.lower(): c for i, c in report.issue_counts.items()},
        "issue_lines": [[line, issue.name.lower()] for line, issue in report.issue_lines[:_REPORTED_ISSUE_LINES]],
        "symbols": report.symbol_stats,
    }


def _encode_header(header: dict) -> bytes:
    payload = json.dumps(header, separators=(",", ":")).encode()
    while len(payload) > HEADER_BYTES - 16:  # drop listed issue lines until it fits (counts stay)
        lines = header["report"]["issue_lines"]
        if not lines:
            header["report"]["symbols"] = {}
        header["report"]["issue_lines"] = lines[: len(lines) // 2]
        payload = json.dumps(header, separators=(",", ":")).encode()
    raw = MAGIC + struct.pack("<II", FORMAT_VERSION, len(payload)) + payload
    return raw + b"\0" * (HEADER_BYTES - len(raw))


def open_cache(path: str | Path) -> EventCache:
    path = Path(path)
    header = read_header(path)
    dtype = load_layout("market_event").dtype
    count = int(header["count"])
    if count == 0:
        return EventCache(path, header, np.zeros(0, dtype))
    events = np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(count,))
    return EventCache(path, header, events)


def load(source: str | Path, symbols: SymbolTable, *, strict: bool = False, rebuild: bool = False,
         cache: str | Path | None = None, on_block: Callable[[int], None] | None = None) -> EventCache:
    """The cache for ``source``, built first if missing or stale (``rebuild`` forces it).

    A cache file itself (``*.events.bin``) is opened as is. When the source's directory is read-only
    the cache goes to the temp directory instead.
    """
    source = Path(source)
    if source.name.endswith(CACHE_SUFFIX):
        return open_cache(source)
    if not source.is_file():
        raise TickCsvError(f"market data file {source} does not exist")
    cache = Path(cache) if cache is not None else cache_path_for(source)
    if not os.access(cache.parent, os.W_OK):
        digest = hashlib.blake2b(str(source.resolve()).encode(), digest_size=6).hexdigest()
        cache = Path(tempfile.gettempdir()) / "hftshm-cache" / f"{digest}-{cache.name}"
        cache.parent.mkdir(parents=True, exist_ok=True)
    if rebuild or staleness(cache, source, symbols) is not None:
        build(source, symbols, cache, strict=strict, on_block=on_block)
    elif strict and _has_rejects(read_header(cache)):
        build(source, symbols, cache, strict=True, on_block=on_block)  # raises at the first bad row
    return open_cache(cache)


def _has_rejects(header: dict) -> bool:
    issues = header.get("report", {}).get("issues", {})
    return any(RowIssue[name.upper()] < 20 and count for name, count in issues.items())


def describe_issues(header: dict, limit: int = 10) -> list[str]:
    """The cache's recorded row issues as text lines (counts and first line numbers)."""
    report = header.get("report", {})
    lines_by_issue: dict[str, list[int]] = {}
    for line, name in report.get("issue_lines", []):
        lines_by_issue.setdefault(name, []).append(line)
    out = []
    for name, count in report.get("issues", {}).items():
        issue = RowIssue[name.upper()]
        shown = lines_by_issue.get(name, [])[:limit]
        more = " ..." if count > len(shown) else ""
        out.append(f"{name}: {count} row(s) — {ISSUE_TEXT[issue]}; lines {', '.join(map(str, shown))}{more}")
    return out


def load_events(source: str | Path, symbols: SymbolTable) -> np.ndarray:
    """All events of ``source`` as a read-only memory-mapped ``market_event`` array (cache built once)."""
    return load(source, symbols).events
