"""The canonical tick CSV: one row per price level, trade or best-bid/offer side.

``exch_ts_ns,local_ts_ns,symbol,kind,side,price,qty,update_id``

- ``kind``: depth (one level of a diff; qty 0 deletes), snapshot (one level of a full book; a new
  snapshot replaces the book), trade, bbo (the exchange's own best bid/offer: a ``buy`` row for the
  bid then a ``sell`` row for the ask), clear (the book is invalid from here until the next snapshot:
  an update was missed).
- ``side``: buy/sell; bid/ask for depth, snapshot and bbo; the aggressor for trades; empty for clear.
- ``price``/``qty``: the exchange's decimal strings, unchanged (empty for clear).
- Consecutive rows of one symbol, kind, update_id and timestamps are one exchange message; the
  last of them is where the book is consistent again (``EventFlag.LAST_IN_MESSAGE`` in records).
"""

from __future__ import annotations

from enum import IntEnum

from hftshm.codes import EventKind, Side

HEADER = "exch_ts_ns,local_ts_ns,symbol,kind,side,price,qty,update_id"
COLUMNS = tuple(HEADER.split(","))

KIND_NAMES = {
    EventKind.DEPTH: "depth",
    EventKind.TRADE: "trade",
    EventKind.BBO: "bbo",
    EventKind.SNAPSHOT: "snapshot",
    EventKind.CLEAR: "clear",
}
KIND_BY_NAME = {name: kind for kind, name in KIND_NAMES.items()}

SIDE_NAMES = {Side.BUY: "buy", Side.SELL: "sell", Side.NONE: ""}
SIDE_BY_NAME = {name: side for side, name in SIDE_NAMES.items()}


def is_gzip_path(path) -> bool:
    return str(path).endswith(".gz")


def open_binary(path, mode: str = "rb", compresslevel: int = 6, gzipped: bool | None = None):
    """Open a plain or gzip file for binary reading or writing (gzip when the name ends in .gz, unless
    ``gzipped`` says otherwise)."""
    import gzip

    if gzipped is None:
        gzipped = is_gzip_path(path)
    if gzipped:
        if "w" not in mode:
            return gzip.open(path, mode)
        # no time stamp and no file name in the gzip header: the same rows give the same bytes whenever
        # and under whatever name they are written (``hftshm data import`` is byte-stable, not only its text)
        raw = open(path, mode)
        try:
            handle = gzip.GzipFile(filename="", mode=mode, fileobj=raw, compresslevel=compresslevel, mtime=0)
        except BaseException:
            raw.close()
            raise
        handle.myfileobj = raw  # GzipFile closes the file it holds here when it closes
        return handle
    return open(path, mode)


class RowIssue(IntEnum):
    """Why a CSV row was rejected (skipped) or flagged (kept); numba kernels use the values."""

    NONE = 0
    WRONG_COLUMN_COUNT = 1
    BAD_TIMESTAMP = 2  # exch_ts_ns / local_ts_ns not a non-negative integer
    UNKNOWN_SYMBOL = 3
    UNKNOWN_KIND = 4
    BAD_SIDE = 5
    NON_NUMERIC_PRICE = 6
    NON_NUMERIC_QTY = 7
    NAN_OR_INF = 8
    BAD_UPDATE_ID = 9
    NEGATIVE_QTY = 10
    NON_POSITIVE_PRICE = 11
    # warnings: the row is kept
    LOCAL_TS_BACKWARDS = 20  # local receive time earlier than the previous row of the symbol
    EXCH_TS_BACKWARDS = 21  # exchange time earlier than the previous row of the same symbol and kind


REJECT_ISSUES = tuple(i for i in RowIssue if 0 < i < 20)
WARNING_ISSUES = tuple(i for i in RowIssue if i >= 20)
N_ISSUES = 32  # size of per-issue count arrays
