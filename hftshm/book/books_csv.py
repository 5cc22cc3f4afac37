"""Writing L2 books as CSV: one row per consistent point, the top N levels as exact decimals.

``exch_ts_ns,local_ts_ns,symbol,bid_px_1..bid_px_N,bid_qty_1..bid_qty_N,ask_px_1..ask_px_N,ask_qty_1..ask_qty_N``

Prices and quantities are formatted from integer ticks and lots (``61800.2``, never
``61800.200000001``); levels a side does not have are empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from hftshm.book.book import BookSet, TopRows
from hftshm.feed.ticks import open_binary


def books_header(levels: int) -> str:
    cols = ["exch_ts_ns", "local_ts_ns", "symbol"]
    for name in ("bid_px", "bid_qty", "ask_px", "ask_qty"):
        cols += [f"{name}_{k}" for k in range(1, levels + 1)]
    return ",".join(cols)


def format_rows(books: BookSet, rows: TopRows) -> list[str]:
    """CSV lines (without newlines) for a block of top-N rows."""
    n, levels = len(rows.meta), rows.px.shape[2]
    table = np.empty((n, 3 + 4 * levels), dtype=object)
    table[:, 0] = rows.meta[:, 1].astype(str)
    table[:, 1] = rows.meta[:, 2].astype(str)
    book_index = rows.meta[:, 0]
    present = np.arange(levels)
    views = books.symbols_view
    for b in np.unique(book_index):
        mask = book_index == b
        view = views[int(b)]
        table[mask, 2] = view.symbol.name
        for side, (px_col, qty_col) in enumerate(((3, 3 + levels), (3 + 2 * levels, 3 + 3 * levels))):
            counts = rows.meta[mask, 5 + side]
            have = present[None, :] < counts[:, None]
            px = view.price_step.format_array(rows.px[mask, side, :].ravel()).reshape(-1, levels)
            qty = view.qty_step.format_array(rows.qty[mask, side, :].ravel()).reshape(-1, levels)
            table[mask, px_col: px_col + levels] = np.where(have, px, "")
            table[mask, qty_col: qty_col + levels] = np.where(have, qty, "")
    return [",".join(row) for row in table]


class BooksRejected(ValueError):
    """The books could not be written faithfully (``accept`` refused them); nothing was written."""


def write_books(books: BookSet, blocks: Iterable[np.ndarray], out: str | Path, levels: int,
                accept: Callable[[], str | None] | None = None) -> int:
    """Apply event blocks to ``books`` and write the top ``levels`` at every consistent point.

    Written to ``out.partial`` and renamed at the end; ``accept()`` (when given) is asked first, and a
    message from it means the output is wrong (e.g. the book rejected off-grid events): the partial file
    goes and ``BooksRejected`` carries the message."""
    out = Path(out)
    written = 0
    tmp = out.with_name(out.name + ".partial")
    try:
        with open_binary(tmp, "wb", gzipped=out.name.endswith(".gz")) as handle:
            handle.write((books_header(levels) + "\n").encode())
            for block in blocks:
                for rows in books.apply_top(block, levels=levels):
                    lines = format_rows(books, rows)
                    if lines:
                        handle.write(("\n".join(lines) + "\n").encode())
                    written += len(lines)
        refusal = accept() if accept is not None else None
        if refusal:
            raise BooksRejected(refusal)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written
