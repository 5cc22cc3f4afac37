"""Small synthetic market data for tests: Binance recording lines and canonical tick CSVs.

    lines = [depth(1, 100, 110, pu=90, bids=[("100.0", "1.000")]), snapshot(2, 105, bids=..., asks=...)]
    write_recording(path, lines)
    write_tick_csv(path, [(exch, local, "BTCUSDT", "depth", "buy", "100.0", "1.000", 7), ...])
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from hftshm.feed.ticks import HEADER

EXCH_OFFSET_MS = 1_270  # the synthetic exchange clock runs ahead of the local one, as in the real day
T0_NS = 1_723_161_255_000_000_000


def local_ns(step: int) -> int:
    return T0_NS + step * 1_000_000


def _line(step: int, body: dict) -> str:
    return f"{local_ns(step)} {json.dumps(body, separators=(',', ':'))}"


def depth(step: int, first_id: int, last_id: int, pu: int | None = None, bids: Sequence = (), asks: Sequence = (),
          symbol: str = "BTCUSDT", spot: bool = False) -> str:
    """A depth diff received at ``step`` ms; futures (with ``pu``) unless ``spot``."""
    ms = local_ns(step) // 1_000_000 + EXCH_OFFSET_MS
    data = {"e": "depthUpdate", "E": ms, "T": ms, "s": symbol, "U": first_id, "u": last_id,
            "b": [list(b) for b in bids], "a": [list(a) for a in asks]}
    if not spot:
        data["pu"] = first_id - 1 if pu is None else pu
    stream = f"{symbol.lower()}@depth" + ("" if spot else "@0ms")
    return _line(step, {"stream": stream, "data": data})


def snapshot(step: int, last_update_id: int, bids: Sequence = (), asks: Sequence = ()) -> str:
    ms = local_ns(step) // 1_000_000 + EXCH_OFFSET_MS
    return _line(step, {"lastUpdateId": last_update_id, "E": ms, "T": ms, "bids": [list(b) for b in bids],
                        "asks": [list(a) for a in asks]})


def book_ticker(step: int, update_id: int, bid: tuple, ask: tuple, symbol: str = "BTCUSDT") -> str:
    ms = local_ns(step) // 1_000_000 + EXCH_OFFSET_MS
    return _line(step, {"stream": f"{symbol.lower()}@bookTicker",
                        "data": {"e": "bookTicker", "u": update_id, "s": symbol, "b": bid[0], "B": bid[1],
                                 "a": ask[0], "A": ask[1], "T": ms, "E": ms}})


def trade(step: int, trade_id: int, price: str, qty: str, buyer_is_maker: bool, symbol: str = "BTCUSDT",
          kind: str = "MARKET") -> str:
    ms = local_ns(step) // 1_000_000 + EXCH_OFFSET_MS
    return _line(step, {"stream": f"{symbol.lower()}@trade",
                        "data": {"e": "trade", "E": ms, "T": ms, "s": symbol, "t": trade_id, "p": price, "q": qty,
                                 "X": kind, "m": buyer_is_maker}})


def write_recording(path: str | Path, lines: Iterable[str]) -> Path:
    """Write recording lines (gzip when the name ends in .gz)."""
    path = Path(path)
    text = "".join(line + "\n" for line in lines)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def write_tick_csv(path: str | Path, rows: Iterable[Sequence], header: str = HEADER) -> Path:
    """Write a tick CSV from row tuples (or ready-made strings, written as they are)."""
    path = Path(path)
    lines = [header] + [row if isinstance(row, str) else ",".join(str(v) for v in row) for row in rows]
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def read_tick_csv(path: str | Path) -> list[list[str]]:
    """Rows of a tick CSV as lists of strings (header excluded)."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as handle:
        lines = handle.read().splitlines()
    return [line.split(",") for line in lines[1:]]


def events(rows: Sequence[dict]) -> np.ndarray:
    """``market_event`` records from dicts of field values (missing fields are 0)."""
    from hftshm.transport.layout import load

    out = load("market_event").zeros(len(rows))
    for i, row in enumerate(rows):
        for key, value in row.items():
            out[i][key] = value
    return out
