"""Reading the canonical tick CSV into ``market_event`` records, block by block (memory stays flat).

Malformed rows are skipped and counted by reason with their line numbers (``RowReport``); with
``strict=True`` the first one raises ``TickCsvError`` naming the file, the line and the problem.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from hftshm.feed import csv_nb
from hftshm.feed.ticks import HEADER, N_ISSUES, REJECT_ISSUES, WARNING_ISSUES, RowIssue
from hftshm.symbols import SymbolTable
from hftshm.transport.layout import load as load_layout

MAX_RECORDED_ISSUES = 10_000  # issues listed with line numbers; beyond that only counted
BLOCK_BYTES = 8 << 20

ISSUE_TEXT = {
    RowIssue.WRONG_COLUMN_COUNT: "wrong column count (expected 8)",
    RowIssue.BAD_TIMESTAMP: "timestamp is not a non-negative integer",
    RowIssue.UNKNOWN_SYMBOL: "unknown symbol (not in [symbols])",
    RowIssue.UNKNOWN_KIND: "unknown kind (depth, trade, bbo, snapshot, clear)",
    RowIssue.BAD_SIDE: "side is not buy or sell",
    RowIssue.NON_NUMERIC_PRICE: "price is not a decimal number",
    RowIssue.NON_NUMERIC_QTY: "qty is not a decimal number",
    RowIssue.NAN_OR_INF: "price or qty is NaN or infinite",
    RowIssue.BAD_UPDATE_ID: "update_id is not a non-negative integer",
    RowIssue.NEGATIVE_QTY: "qty is negative",
    RowIssue.NON_POSITIVE_PRICE: "price is zero or negative",
    RowIssue.LOCAL_TS_BACKWARDS: "local_ts_ns earlier than the previous row of this symbol (kept)",
    RowIssue.EXCH_TS_BACKWARDS: "exch_ts_ns earlier than the previous row of this symbol and kind (kept)",
}


class TickCsvError(ValueError):
    """The file is not a canonical tick CSV, or (strict) a row is malformed; names file and line."""


@dataclass
class RowReport:
    source: str
    lines: int = 0
    records: int = 0
    issue_counts: dict = field(default_factory=dict)  # RowIssue -> count
    issue_lines: list = field(default_factory=list)  # (line, RowIssue), the first MAX_RECORDED_ISSUES
    symbol_stats: dict = field(default_factory=dict)  # symbol -> {rows by kind, inferred tick/lot, time range}
    min_local_minus_exch_ns: int | None = None

    @property
    def rejected(self) -> int:
        return sum(self.issue_counts.get(i, 0) for i in REJECT_ISSUES)

    @property
    def warnings(self) -> int:
        return sum(self.issue_counts.get(i, 0) for i in WARNING_ISSUES)

    def lines_for(self, issue: RowIssue, limit: int = 20) -> list[int]:
        return [line for line, code in self.issue_lines if code == issue][:limit]

    def problem_lines(self, limit_per_issue: int = 10) -> list[str]:
        """Human-readable: one line per issue with its count and the first line numbers."""
        out = []
        for issue in sorted(self.issue_counts, key=int):
            count = self.issue_counts[issue]
            lines = self.lines_for(issue, limit_per_issue)
            more = " ..." if count > len(lines) else ""
            shown = ", ".join(map(str, lines))
            out.append(f"{issue.name.lower()}: {count} row(s) — {ISSUE_TEXT[issue]}; lines {shown}{more}")
        return out


def _open(path: Path):
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _symbol_arrays(symbols: SymbolTable):
    table = list(symbols)
    width = max([len(s.name) for s in table] + [1])
    names = np.zeros((max(len(table), 1), width), np.uint8)
    lens = np.zeros(max(len(table), 1), np.int64)
    ids = np.zeros(len(table), np.int64)
    for i, sym in enumerate(table):
        encoded = sym.name.encode()
        names[i, : len(encoded)] = np.frombuffer(encoded, np.uint8)
        lens[i] = len(encoded)
        ids[i] = sym.symbol_id
    return table, names, lens, ids


def iter_records(path: str | Path, symbols: SymbolTable, *, strict: bool = False, report: RowReport | None = None,
                 block_bytes: int = BLOCK_BYTES, on_progress=None) -> Iterator[np.ndarray]:
    """Yield blocks of ``market_event`` records parsed from ``path`` (each valid until the next is taken).

    Fill ``report`` (pass one in to read it afterwards) with line counts, issues and per-symbol stats.
    ``on_progress(bytes_read, bytes_total, records_so_far)`` (file bytes, compressed for gzip) is called per
    block.
    """
    path = Path(path)
    if report is None:
        report = RowReport(str(path))
    dtype = load_layout("market_event").dtype
    table, names, lens, ids = _symbol_arrays(symbols)
    state = np.zeros(csv_nb.N_STATE, np.int64)
    issue_counts = np.zeros(N_ISSUES, np.int64)
    issue_lines = np.zeros(MAX_RECORDED_ISSUES, np.int64)
    issue_codes = np.zeros(MAX_RECORDED_ISSUES, np.int64)
    last_local = np.zeros(len(ids), np.int64)
    last_exch = np.zeros((len(ids), 8), np.int64)
    sym_stats = np.zeros((len(ids), csv_nb.N_SYMBOL_STATS), np.int64)
    out = np.zeros(0, dtype)
    carry = None
    line_no = 2  # line 1 is the header
    try:
        handle = _open(path)
    except OSError as exc:
        raise TickCsvError(f"cannot read {path}: {exc}") from None
    with handle:
        header = handle.readline().decode(errors="replace").strip()
        if header != HEADER:
            raise TickCsvError(f"{path}:1: not a canonical tick CSV header: expected {HEADER!r}, "
                               f"found {header[:120]!r}{import_hint(header, path)}")
        rest = b""
        raw_file = getattr(handle, "fileobj", None) or handle
        total_bytes = path.stat().st_size
        while True:
            chunk = handle.read(block_bytes)
            if on_progress is not None:
                on_progress(raw_file.tell(), total_bytes, report.records)
            if chunk:
                data = rest + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    rest = data
                    continue
                rest, data = data[cut + 1:], data[: cut + 1]
            else:
                data, rest = rest, b""
                if not data:
                    break
            n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
            need = 2 * n_lines + 2
            if len(out) < need:
                out = np.zeros(need, dtype)
            state[csv_nb.ST_CARRY] = 0
            if carry is not None:
                out[0] = carry
                state[csv_nb.ST_CARRY] = 1
            n = csv_nb.parse_block(np.frombuffer(data, np.uint8), line_no, strict, names, lens, ids, out, state,
                                   issue_counts, issue_lines, issue_codes, last_local, last_exch, sym_stats)
            if state[csv_nb.ST_STOP_LINE]:
                bad_line = int(state[csv_nb.ST_STOP_LINE])
                issue = RowIssue(int(state[csv_nb.ST_STOP_ISSUE]))
                text = data.split(b"\n")[bad_line - line_no].decode(errors="replace")[:200]
                _finish_report(report, table, state, issue_counts, issue_lines, issue_codes, sym_stats, line_no)
                raise TickCsvError(f"{path}:{bad_line}: {ISSUE_TEXT[issue]}: {text!r} "
                                   f"(--strict stops at the first bad row)")
            line_no += n_lines
            if n > 0:
                carry = out[n - 1].copy()
                if n > 1:
                    report.records += n - 1
                    yield out[: n - 1]
            else:
                carry = None
            if not chunk:
                break
    if carry is not None:
        carry["flags"] |= 1  # EventFlag.LAST_IN_MESSAGE: the data ends here
        report.records += 1
        yield np.array([carry], dtype)
    _finish_report(report, table, state, issue_counts, issue_lines, issue_codes, sym_stats, line_no)


def _finish_report(report, table, state, issue_counts, issue_lines, issue_codes, sym_stats, next_line) -> None:
    report.lines = next_line - 1
    known = RowIssue._value2member_map_
    report.issue_counts = {RowIssue(i): int(c) for i, c in enumerate(issue_counts) if c and i in known}
    k = int(state[csv_nb.ST_N_RECORDED])
    report.issue_lines = [(int(issue_lines[i]), RowIssue(int(issue_codes[i]))) for i in range(k)]
    report.min_local_minus_exch_ns = int(state[csv_nb.ST_MIN_LOCAL_MINUS_EXCH]) if state[csv_nb.ST_HAS_MIN] else None
    for i, sym in enumerate(table):
        s = sym_stats[i]
        rows = {"depth": int(s[csv_nb.SS_DEPTH]), "trade": int(s[csv_nb.SS_TRADE]), "bbo": int(s[csv_nb.SS_BBO]),
                "snapshot": int(s[csv_nb.SS_SNAPSHOT]), "clear": int(s[csv_nb.SS_CLEAR])}
        if not any(rows.values()):
            continue
        report.symbol_stats[sym.name] = {
            "symbol_id": sym.symbol_id,
            "rows": rows,
            "inferred_tick_size": _from_e8(int(s[csv_nb.SS_PRICE_GCD_E8])),
            "inferred_lot_size": _from_e8(int(s[csv_nb.SS_QTY_GCD_E8])),
            "price_gcd_e8": int(s[csv_nb.SS_PRICE_GCD_E8]),  # exact: units of 1e-8
            "qty_gcd_e8": int(s[csv_nb.SS_QTY_GCD_E8]),
            "price_decimals": int(s[csv_nb.SS_PRICE_DECIMALS]),
            "qty_decimals": int(s[csv_nb.SS_QTY_DECIMALS]),
            "first_local_ts_ns": int(s[csv_nb.SS_FIRST_LOCAL]),
            "last_local_ts_ns": int(s[csv_nb.SS_LAST_LOCAL]),
            "first_exch_ts_ns": int(s[csv_nb.SS_FIRST_EXCH]),
            "last_exch_ts_ns": int(s[csv_nb.SS_LAST_EXCH]),
            "config_tick_size": sym.tick_size,
            "config_lot_size": sym.lot_size,
        }


def _from_e8(value: int) -> float | None:
    """A gcd in units of 1e-8 as a decimal number (None when nothing was seen)."""
    if value <= 0:
        return None
    return float(f"{value // 10**8}.{value % 10**8:08d}")


def import_hint(first_line: str, path) -> str:
    """What to do with a file that is not a tick CSV but a recording ``hftshm data import`` converts
    ("" when the first line looks like none of them)."""
    stamp, _, rest = first_line.partition(" ")
    if stamp.isdigit() and rest.lstrip().startswith("{"):
        fmt = ""  # Binance stream recording: '<local ns> <stream JSON>'
    elif first_line.startswith("exchange,symbol,timestamp,local_timestamp"):
        fmt = " --format tardis"
    else:
        return ""
    return (f"; it is an exchange recording: convert it first with "
            f"'hftshm data import{fmt} {path} -o OUT.csv.gz' and use OUT.csv.gz")
