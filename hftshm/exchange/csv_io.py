"""Orders CSV in, reports CSV out: the file formats of ``hftshm exchange replay``.

Orders: ``ts,order_id,owner,symbol,action,side,type,tif,price,qty`` (cancel needs only order_id;
replace carries the new price and qty; owner is an opaque account name, numbers included). Reports: ``order_id,event,price,qty,leaves_qty,
contra_order_id,reason``. Numbers print as the shortest decimal that reads back as the same
double, so 61800.1 prints as ``61800.1`` and never as ``61800.10000000001``.

A row that cannot become an order record at all (wrong column count, an order id that is not an
integer, an unknown action/side/type/tif, text where a number belongs) is a ``RowError`` with its
line number; the caller reports it and carries on. A row that is well formed but nonsensical
(NaN or negative price, zero qty, unknown symbol) becomes an order the engine rejects with a reason.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from hftshm.codes import Action, OrderType, Reason, ReportEvent, Side, TimeInForce
from hftshm.symbols import SymbolTable
from hftshm.transport.layout import load

ORDER_HEADER = ("ts", "order_id", "owner", "symbol", "action", "side", "type", "tif", "price", "qty")
REPORT_HEADER = ("order_id", "event", "price", "qty", "leaves_qty", "contra_order_id", "reason")
UNKNOWN_SYMBOL_ID = 0  # ids start at 1, so 0 never resolves: the engine rejects it as unknown_symbol

_ACTIONS = {"new": Action.NEW, "cancel": Action.CANCEL, "replace": Action.REPLACE}
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_TYPES = {"limit": OrderType.LIMIT, "market": OrderType.MARKET}
_TIFS = {"gtc": TimeInForce.GTC, "ioc": TimeInForce.IOC, "fok": TimeInForce.FOK, "post_only": TimeInForce.POST_ONLY}


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class HeaderError(ValueError):
    """The file does not start with the expected header."""


def _choice(text: str, allowed: dict, what: str, default=None):
    key = text.strip().lower()
    if not key and default is not None:
        return default
    if key not in allowed:
        raise ValueError(f"{what} {text!r} is not one of: {', '.join(allowed)}")
    return allowed[key]


def _integer(text: str, what: str, default: int | None = None, lo: int | None = None, hi: int | None = None) -> int:
    text = text.strip()
    if not text and default is not None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an integer") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{what} {value} is outside {lo}..{hi}")
    return value


def _number(text: str, what: str) -> float:
    """A float; empty is NaN (the engine rejects it where a number is needed)."""
    text = text.strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None


class OwnerIds(dict):
    """Owner (an opaque account name: "alice", "42", "desk-7") -> the u2 id in ``order`` records, by first
    appearance; the same name is always the same owner (self-trade prevention, FOK), an empty one is 0."""

    def __init__(self):
        super().__init__({"": 0})

    def id_of(self, name: str) -> int:
        key = name.strip()
        found = self.get(key)
        if found is None:
            if len(self) > 65535:
                raise ValueError(f"owner {key!r}: more than 65535 distinct owners in one file")
            found = self[key] = len(self)
        return found


def order_symbols(stream: TextIO) -> dict[str, tuple[list[str], list[str]]]:
    """symbol -> (price texts, qty texts) of an orders CSV (a first pass: to infer unknown instruments)."""
    reader = csv.reader(stream)
    next(reader, None)
    out: dict[str, tuple[list[str], list[str]]] = {}
    for row in reader:
        if len(row) != len(ORDER_HEADER) or not row[3].strip():
            continue
        prices, qtys = out.setdefault(row[3].strip().upper(), ([], []))
        prices.append(row[8].strip())
        qtys.append(row[9].strip())
    return out


def read_orders(stream: TextIO, symbols: SymbolTable) -> tuple[np.ndarray, list[RowError]]:
    """Parse an orders CSV into ``order`` records (in file order) and the rows that were malformed."""
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None or tuple(h.strip().lower() for h in header) != ORDER_HEADER:
        raise HeaderError(f"expected header {','.join(ORDER_HEADER)}, found {','.join(header or []) or '(empty file)'}")
    rows: list[tuple] = []
    errors: list[RowError] = []
    owners = OwnerIds()
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        try:
            rows.append(_parse_row(row, symbols, len(rows), owners))
        except ValueError as exc:
            errors.append(RowError(line, str(exc)))
    orders = np.zeros(len(rows), dtype=load("order").dtype)
    for k, values in enumerate(rows):
        orders[k] = values
    return orders, errors


def _parse_row(row: list[str], symbols: SymbolTable, seq: int, owners: OwnerIds) -> np.ndarray:
    if len(row) != len(ORDER_HEADER):
        raise ValueError(f"expected {len(ORDER_HEADER)} columns, found {len(row)}")
    ts_text, id_text, owner_text, symbol, action_text, side_text, type_text, tif_text, price_text, qty_text = row
    ts_ns = _integer(ts_text, "ts", default=0)
    order_id = _integer(id_text, "order_id", lo=-(1 << 63), hi=(1 << 63) - 1)
    action = _choice(action_text, _ACTIONS, "action")
    record = np.zeros((), dtype=load("order").dtype)
    record["seq"] = seq
    record["ts_ns"] = ts_ns
    record["market_ts_ns"] = ts_ns
    record["order_id"] = order_id
    if action != Action.NEW:
        record["target_order_id"] = order_id
    record["action"] = action
    record["owner"] = record["strategy_id"] = owners.id_of(owner_text)
    if action == Action.CANCEL:
        record["price"] = record["qty"] = math.nan  # not part of a cancel: a reject echoes them empty
        return record
    record["price"] = _number(price_text, "price")
    record["qty"] = _number(qty_text, "qty")
    if action == Action.REPLACE:
        return record
    symbol = symbol.strip()
    record["symbol_id"] = symbols.by_name(symbol).symbol_id if symbol and symbol in symbols else UNKNOWN_SYMBOL_ID
    record["side"] = _choice(side_text, _SIDES, "side")
    record["order_type"] = _choice(type_text, _TYPES, "type")
    if record["order_type"] == OrderType.MARKET:
        record["tif"] = TimeInForce.IOC
        record["price"] = math.nan
    else:
        record["tif"] = _choice(tif_text, _TIFS, "tif", default=TimeInForce.GTC)
    return record


def format_number(value: float) -> str:
    """Shortest round-trip decimal, positional; NaN (no price) is empty."""
    if value != value:
        return ""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = np.format_float_positional(value, trim="-")
    return "0" if text == "-0" else text


def report_row(r: np.void) -> list[str]:
    reason = int(r["reason"])
    return [
        str(int(r["order_id"])),
        ReportEvent(int(r["event"])).name.lower(),
        format_number(float(r["price"])),
        format_number(float(r["qty"])),
        format_number(float(r["leaves_qty"])),
        str(int(r["contra_order_id"])),
        Reason(reason).name.lower() if reason else "",
    ]


def write_reports(stream: TextIO, reports: np.ndarray, header: bool = True) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    if header:
        writer.writerow(REPORT_HEADER)
    for r in reports:
        writer.writerow(report_row(r))


def read_orders_file(path: str | Path, symbols: SymbolTable) -> tuple[np.ndarray, list[RowError]]:
    with open(path, newline="") as stream:
        return read_orders(stream, symbols)
