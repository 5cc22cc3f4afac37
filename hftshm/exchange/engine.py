"""``MatchingEngine``: price-time priority limit order books, one per configured symbol.

    engine = MatchingEngine(ExchangeConfig(), symbols)
    reports = engine.process(orders)        # ndarray[order] -> ndarray[execution_report]
    bids, asks = engine.book_top(1, 5)      # best 5 levels: price, qty, orders

All matching happens in one numba call per batch (``matching_nb.process_orders``); this class owns
the preallocated tables and the output buffer, and hides the case where a batch produces more
reports than the buffer holds (the buffer grows, rarely, outside the kernel).

The array ``process`` returns is a view of the engine's output buffer: valid until the next call.
Copy it (``reports.copy()``) to keep it.
"""

from __future__ import annotations

import numpy as np

from hftshm.exchange import order_book_nb, matching_nb
from hftshm.exchange.common_nb import (SC_CONTRACT_USD, SC_LOT, SC_LOT_INV, SC_TICK, SC_TICK_INV, SCALE_COLS,
                                       idmap_new)
from hftshm.exchange.config import ExchangeConfig
from hftshm.symbols import DEFAULT_SYMBOLS, SymbolTable
from hftshm.transport.layout import load

ORDER_DTYPE = load("order").dtype
REPORT_DTYPE = load("execution_report").dtype
LEVEL_DTYPE = np.dtype([("price", "f8"), ("qty", "f8"), ("orders", "i8")])


def integral_inverse(unit: float) -> float:
    """1/unit when it is (within float noise) an integer, else 0: the exact float conversion path."""
    inv = 1.0 / unit
    nearest = round(inv)
    return float(nearest) if nearest >= 1 and abs(inv - nearest) < 1e-9 * nearest else 0.0


def scale_table(symbols: SymbolTable) -> tuple[np.ndarray, np.ndarray]:
    """(symbol id -> book index map of 65536 entries, -1 unknown; per-book tick/lot table)."""
    sym_to_book = np.full(65536, -1, dtype=np.int64)
    scale = np.zeros((max(len(symbols), 1), SCALE_COLS), dtype=np.float64)
    for b, sym in enumerate(symbols):
        sym_to_book[sym.symbol_id] = b
        scale[b, SC_TICK] = sym.tick_size
        scale[b, SC_TICK_INV] = integral_inverse(sym.tick_size)
        scale[b, SC_LOT] = sym.lot_size
        scale[b, SC_LOT_INV] = integral_inverse(sym.lot_size)
        scale[b, SC_CONTRACT_USD] = sym.contract_size if sym.market == "inverse" else 0.0
    return sym_to_book, scale


class MatchingEngine:
    def __init__(self, config: ExchangeConfig | None = None, symbols: SymbolTable | None = None,
                 output_capacity: int = 65536):
        self.config = config or ExchangeConfig()
        self.symbols = symbols or DEFAULT_SYMBOLS
        self.capacity = self.config.book_capacity
        self._sym_to_book, self._scale = scale_table(self.symbols)
        n_books = max(len(self.symbols), 1)
        self._tables = order_book_nb.allocate(n_books, self.capacity)
        self._id_table = idmap_new(n_books * self.capacity)
        self._stats = np.zeros(matching_nb.STATS_COLS, dtype=np.int64)
        self._out = np.zeros(max(output_capacity, 16), dtype=REPORT_DTYPE)
        self._maker_bps = float(self.config.maker_fee_bps)
        self._taker_bps = float(self.config.taker_fee_bps)

    def _kernel_args(self) -> tuple:
        t = self._tables
        return (self._stats, self._sym_to_book, self._scale, self._maker_bps, self._taker_bps,
                t["orders"], t["levels"], t["ladder"], t["book_i64"], t["free_orders"], t["free_levels"],
                self._id_table)

    def process(self, orders: np.ndarray) -> np.ndarray:
        """Apply ``orders`` in sequence; return their reports (a view valid until the next call)."""
        orders = as_layout(orders, ORDER_DTYPE, "order")
        n = len(orders)
        i = j = 0
        while True:
            i, j = matching_nb.process_orders(orders, i, n, self._out, j, *self._kernel_args())
            if i >= n:
                return self._out[:j]
            # not enough room for the next order's worst case: grow (rare; the buffer then stays big)
            need = j + int(matching_nb.reports_needed(orders[i], self._sym_to_book, self._tables["orders"],
                                                      self._tables["book_i64"], self._id_table))
            bigger = np.zeros(max(2 * len(self._out), need), dtype=REPORT_DTYPE)
            bigger[:j] = self._out[:j]
            self._out = bigger

    def process_into(self, orders: np.ndarray, start: int, out: np.ndarray, out_start: int = 0) -> tuple[int, int]:
        """Low-level: process from ``orders[start]`` writing from ``out[out_start]`` while the worst case fits.

        Returns (next order index, next report index); a worker hands a claimed output region here.
        """
        i, j = matching_nb.process_orders(orders, start, len(orders), out, out_start, *self._kernel_args())
        return int(i), int(j)

    def book_top(self, symbol_id: int, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Best ``n`` bid and ask levels of a symbol, best first: fields price, qty, orders."""
        if not 0 <= symbol_id < 65536 or self._sym_to_book[symbol_id] < 0:
            known = ", ".join(f"{s.name}={s.symbol_id}" for s in self.symbols)
            raise KeyError(f"unknown symbol id {symbol_id}; configured: {known}")
        b = int(self._sym_to_book[symbol_id])
        t = self._tables
        sides = []
        for side in (0, 1):
            ticks = np.zeros(n, dtype=np.int64)
            lots = np.zeros(n, dtype=np.int64)
            count = np.zeros(n, dtype=np.int64)
            k = matching_nb.top_levels(t["levels"], t["ladder"], t["book_i64"], b, side, n, ticks, lots, count)
            levels = np.zeros(k, dtype=LEVEL_DTYPE)
            levels["price"] = _to_float(ticks[:k], self._scale[b, SC_TICK], self._scale[b, SC_TICK_INV])
            levels["qty"] = _to_float(lots[:k], self._scale[b, SC_LOT], self._scale[b, SC_LOT_INV])
            levels["orders"] = count[:k]
            sides.append(levels)
        return sides[0], sides[1]

    def open_order(self, order_id: int) -> dict | None:
        """A resting order's state (price, leaves_qty, cum_qty, side, owner, symbol_id) or None."""
        from hftshm.exchange.common_nb import idmap_find

        slot = int(idmap_find(self._id_table, order_id)) if order_id > 0 else -1
        if slot < 0:
            return None
        row = self._tables["orders"][slot]
        b = int(row[order_book_nb.OR_BOOK])
        tick, tick_inv, lot, lot_inv = (self._scale[b, c] for c in (SC_TICK, SC_TICK_INV, SC_LOT, SC_LOT_INV))
        return {
            "order_id": int(row[order_book_nb.OR_ID]),
            "price": float(_to_float(np.int64(row[order_book_nb.OR_PRICE]), tick, tick_inv)),
            "leaves_qty": float(_to_float(np.int64(row[order_book_nb.OR_LEAVES]), lot, lot_inv)),
            "cum_qty": float(_to_float(np.int64(row[order_book_nb.OR_CUM]), lot, lot_inv)),
            "side": int(row[order_book_nb.OR_SIDE]) + 1,
            "owner": int(row[order_book_nb.OR_OWNER]),
            "symbol_id": int(row[order_book_nb.OR_SYMBOL]),
        }

    def resting_orders(self, symbol_id: int) -> int:
        b = int(self._sym_to_book[symbol_id])
        book = self._tables["book_i64"]
        return int(book[b, order_book_nb.BK_ORDERS] + book[b, order_book_nb.BK_ORDERS + 1])

    @property
    def stats(self) -> dict[str, int]:
        return {name: int(self._stats[k]) for k, name in enumerate(matching_nb.STAT_NAMES)}


def as_layout(array: np.ndarray, dtype: np.dtype, layout: str) -> np.ndarray:
    """``array`` with exactly the layout's dtype. Same fields in another packing (``np.concatenate`` drops
    the explicit offsets) are converted with a copy; anything else is a TypeError."""
    if isinstance(array, np.ndarray) and array.dtype == dtype:
        return array
    if isinstance(array, np.ndarray) and array.dtype.names is not None and set(array.dtype.names) == set(dtype.names):
        return array.astype(dtype)
    got = getattr(array, "dtype", type(array).__name__)
    raise TypeError(f"expected an array of the '{layout}' layout, got {got}")


def _to_float(units: np.ndarray, unit: float, unit_inv: float) -> np.ndarray:
    return units / unit_inv if unit_inv > 0 else units * unit
