"""Test helpers: files in other formats derived from the shipped real recordings (no network), and the
final book of a canonical CSV for comparing imports."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

from hftshm.book.book import BookSet
from hftshm.feed.instruments import symbols_for_data
from hftshm.feed.tickcsv import iter_records

DATA = Path(__file__).resolve().parents[1] / "data"
SPOT_FIRST = DATA / "binance_spot_ethusdt_20240808.gz"


def canonical_rows(path: Path, limit: int | None = None) -> list[list[str]]:
    with gzip.open(path, "rt") if str(path).endswith(".gz") else open(path) as handle:
        reader = csv.reader(handle)
        next(reader)
        rows = []
        for row in reader:
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
    return rows


def tardis_from_canonical(rows: list[list[str]], out_dir: Path, exchange: str = "binance",
                          with_snapshot: bool = True) -> list[Path]:
    """incremental_book_L2, trades and quotes CSVs (gzip) holding what ``rows`` hold, Tardis-style: us
    timestamps, is_snapshot rows for a snapshot, bid/ask sides."""
    out_dir.mkdir(parents=True, exist_ok=True)
    book, trades, quotes = out_dir / "book.csv.gz", out_dir / "trades.csv.gz", out_dir / "quotes.csv.gz"
    with gzip.open(book, "wt", newline="") as b, gzip.open(trades, "wt", newline="") as t, \
            gzip.open(quotes, "wt", newline="") as q:
        bw, tw, qw = csv.writer(b), csv.writer(t), csv.writer(q)
        bw.writerow(["exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount"])
        tw.writerow(["exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"])
        qw.writerow(["exchange", "symbol", "timestamp", "local_timestamp", "ask_amount", "ask_price", "bid_price",
                     "bid_amount"])
        pending_bid = None
        for exch, local, symbol, kind, side, price, qty, uid in rows:
            us_exch, us_local = int(exch) // 1000, int(local) // 1000
            if kind in ("snapshot", "depth"):
                if kind == "snapshot" and not with_snapshot:
                    continue
                bw.writerow([exchange, symbol, us_exch, us_local, "true" if kind == "snapshot" else "false",
                             "bid" if side == "buy" else "ask", price, qty])
            elif kind == "trade":
                tw.writerow([exchange, symbol, us_exch, us_local, uid, side, price, qty])
            elif kind == "bbo" and side == "buy":
                pending_bid = (price, qty)
            elif kind == "bbo" and pending_bid is not None:
                qw.writerow([exchange, symbol, us_exch, us_local, qty, price, pending_bid[0], pending_bid[1]])
                pending_bid = None
    return [book, trades, quotes]


def final_book(path: Path, symbol: str, levels: int = 50, symbols=None):
    """(bids, asks) as decimal strings, the book's validity, and row counts by kind, after the whole file."""
    symbols = symbols or symbols_for_data([path], None)
    books = BookSet(symbols)
    for block in iter_records(path, symbols):
        books.apply(block)
    book = books[symbol]
    return book.levels_decimal(levels), book.valid
