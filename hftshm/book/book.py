"""L2 books, the Python side: ``BookSet`` holds one book per symbol; ``L2Book`` is a read view of one.

    books = BookSet(symbols)                       # SymbolTable (or a list of Symbol)
    books.apply(events)                            # market_event records; bad ones counted, never raised
    book = books["BTCUSDT"]; book.best_bid, book.mid, book.levels(10)
    for rows in books.apply_top(events, levels=50): ...   # top-N (ticks, lots) at every consistent point
    snaps = books.apply_snapshots(events, levels=10)      # book_snapshot records

Prices and quantities live as integer ticks and lots; ``format_price``/``format_qty`` turn them into
exact decimal strings (never ``61800.200000001``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from hftshm.book import l2_apply_nb as nb
from hftshm.book.issues import N_BOOK_ISSUES, REJECTS, BookIssue
from hftshm.symbols import Symbol, SymbolTable
from hftshm.transport.layout import load as load_layout

DEFAULT_WINDOW_TICKS = 1 << 17
DEFAULT_FAR_CAPACITY = 4096
CHUNK_EVENTS = 16384  # events per kernel call: bounds how many far levels one call can add


@dataclass(frozen=True)
class DecimalStep:
    """A tick or lot size as ``num / 10**decimals`` with integer num, for exact conversions."""

    num: int
    decimals: int

    @classmethod
    def of(cls, size: float) -> "DecimalStep":
        for decimals in range(0, 13):
            scaled = size * 10**decimals
            if abs(scaled - round(scaled)) < 1e-9 * max(1.0, scaled) and round(scaled) > 0:
                return cls(int(round(scaled)), decimals)
        raise ValueError(f"step {size!r} is not a decimal with at most 12 decimals")

    @property
    def den(self) -> int:
        return 10**self.decimals

    def format(self, units: int) -> str:
        value = int(units) * self.num
        if self.decimals == 0:
            return str(value)
        sign = "-" if value < 0 else ""
        whole, frac = divmod(abs(value), self.den)
        return f"{sign}{whole}.{frac:0{self.decimals}d}"

    def format_array(self, units: np.ndarray) -> np.ndarray:
        """Vectorised ``format`` for non-negative int64 units (object array of str)."""
        values = units.astype(np.int64) * self.num
        if self.decimals == 0:
            return values.astype(str).astype(object)
        whole = (values // self.den).astype(str).astype(object)
        frac = np.char.zfill((values % self.den).astype(str), self.decimals).astype(object)
        return whole + "." + frac


class L2Book:
    """Read view of one symbol's book inside a ``BookSet`` (always current; no copies)."""

    def __init__(self, books: "BookSet", index: int, symbol: Symbol):
        self._set = books
        self.index = index
        self.symbol = symbol
        self.price_step = DecimalStep.of(symbol.tick_size)
        self.qty_step = DecimalStep.of(symbol.lot_size)

    def _state(self, slot: int) -> int:
        return int(self._set.arrays[0][self.index, slot])

    @property
    def best_bid_ticks(self) -> int | None:
        t = self._state(nb.BS_BEST_BID)
        return None if t == nb.NO_BID else t

    @property
    def best_ask_ticks(self) -> int | None:
        t = self._state(nb.BS_BEST_ASK)
        return None if t == nb.NO_ASK else t

    def _price(self, ticks: int | None) -> float:
        return float("nan") if ticks is None else ticks * self.price_step.num / self.price_step.den

    @property
    def best_bid(self) -> float:
        return self._price(self.best_bid_ticks)

    @property
    def best_ask(self) -> float:
        return self._price(self.best_ask_ticks)

    def levels(self, n: int = 10) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Best ``n`` levels a side as (ticks, lots), best first."""
        px = np.zeros((1, 2, n), np.int64)
        qty = np.zeros((1, 2, n), np.int64)
        n_bids, n_asks = nb.top_levels(self._set.arrays, self.index, n, px, qty)
        bids = [(int(px[0, 0, k]), int(qty[0, 0, k])) for k in range(n_bids)]
        asks = [(int(px[0, 1, k]), int(qty[0, 1, k])) for k in range(n_asks)]
        return bids, asks

    def levels_decimal(self, n: int = 10) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        bids, asks = self.levels(n)
        fp, fq = self.price_step.format, self.qty_step.format
        return [(fp(p), fq(q)) for p, q in bids], [(fp(p), fq(q)) for p, q in asks]

    def depth(self) -> tuple[int, int]:
        """Number of levels held a side (the whole book, not just the top)."""
        state = self._set.arrays[0]
        i = self.index
        return (int(state[i, nb.BS_WIN_BIDS] + state[i, nb.BS_FAR_BIDS]),
                int(state[i, nb.BS_WIN_ASKS] + state[i, nb.BS_FAR_ASKS]))

    def _top_qty(self) -> tuple[float, float]:
        bids, asks = self.levels(1)
        step = self.qty_step
        bq = bids[0][1] * step.num / step.den if bids else float("nan")
        aq = asks[0][1] * step.num / step.den if asks else float("nan")
        return bq, aq

    @property
    def mid(self) -> float:
        return 0.5 * (self.best_bid + self.best_ask)

    @property
    def spread(self) -> float:
        return self.best_ask - self.best_bid

    @property
    def imbalance(self) -> float:
        bq, aq = self._top_qty()
        return (bq - aq) / (bq + aq) if bq + aq > 0 else float("nan")

    @property
    def microprice(self) -> float:
        bq, aq = self._top_qty()
        return (self.best_bid * aq + self.best_ask * bq) / (bq + aq) if bq + aq > 0 else float("nan")

    valid = property(lambda self: bool(self._state(nb.BS_VALID)))
    exch_ts_ns = property(lambda self: self._state(nb.BS_EXCH_TS))
    local_ts_ns = property(lambda self: self._state(nb.BS_LOCAL_TS))
    update_id = property(lambda self: self._state(nb.BS_UPDATE_ID))
    book_seq = property(lambda self: self._state(nb.BS_BOOK_SEQ))
    messages = property(lambda self: self._state(nb.BS_MESSAGES))
    recentres = property(lambda self: self._state(nb.BS_RECENTRES))

    def issues(self) -> dict[BookIssue, int]:
        row = self._set.arrays[8][self.index]
        return {BookIssue(i): int(c) for i, c in enumerate(row) if c and i in BookIssue._value2member_map_}

    def __repr__(self) -> str:
        return (f"L2Book({self.symbol.name}, bid={self.best_bid}, ask={self.best_ask}, depth={self.depth()}, "
                f"valid={self.valid}, update_id={self.update_id})")


@dataclass
class TopRows:
    """Top-N at consecutive consistent points: ``meta`` columns book, exch_ts, local_ts, update_id, valid,
    n_bids, n_asks, event index; ``px``/``qty`` shaped (rows, 2, N): side 0 bids, 1 asks, best first,
    prices in ticks, quantities in lots (0 beyond n_bids / n_asks)."""

    meta: np.ndarray
    px: np.ndarray
    qty: np.ndarray

    @property
    def bid_px(self) -> np.ndarray:
        return self.px[:, 0, :]

    @property
    def ask_px(self) -> np.ndarray:
        return self.px[:, 1, :]

    @property
    def bid_qty(self) -> np.ndarray:
        return self.qty[:, 0, :]

    @property
    def ask_qty(self) -> np.ndarray:
        return self.qty[:, 1, :]


class BookSet:
    """One L2 book per symbol, all in one set of arrays so a kernel updates any of them."""

    def __init__(self, symbols: SymbolTable | Iterable[Symbol], *, window_ticks: int = DEFAULT_WINDOW_TICKS,
                 far_capacity: int = DEFAULT_FAR_CAPACITY):
        self.symbols = list(symbols)
        if not self.symbols:
            raise ValueError("a BookSet needs at least one symbol")
        if window_ticks < 64:
            raise ValueError(f"window_ticks must be >= 64, got {window_ticks}")
        n = len(self.symbols)
        state = np.zeros((n, nb.N_BOOK_STATE), np.int64)
        params = np.zeros((n, nb.N_BOOK_PARAMS), np.float64)
        book_of = np.full(max(s.symbol_id for s in self.symbols) + 1, -1, np.int64)
        self.books: dict[str, L2Book] = {}
        for i, sym in enumerate(self.symbols):
            book_of[sym.symbol_id] = i
            view = L2Book(self, i, sym)
            px, qty = view.price_step, view.qty_step
            params[i, nb.BP_PX_SCALE] = px.den / px.num
            params[i, nb.BP_PX_NUM], params[i, nb.BP_PX_DEN] = px.num, px.den
            params[i, nb.BP_QTY_SCALE] = qty.den / qty.num
            params[i, nb.BP_QTY_NUM], params[i, nb.BP_QTY_DEN] = qty.num, qty.den
            self.books[sym.name] = view
        state[:, nb.BS_BEST_BID] = nb.NO_BID
        state[:, nb.BS_BEST_ASK] = nb.NO_ASK
        far = [np.zeros((n, far_capacity), np.int64) for _ in range(4)]
        self.arrays = (state, params, np.zeros((n, window_ticks), np.int64), np.zeros((n, window_ticks), np.int64),
                       far[0], far[1], far[2], far[3], np.zeros((n + 1, N_BOOK_ISSUES), np.int64), book_of)
        self._snapshot_dtype = load_layout("book_snapshot").dtype

    # ---------------------------------------------------------------- access
    def __getitem__(self, symbol: str) -> L2Book:
        try:
            return self.books[symbol.upper()]
        except KeyError:
            raise KeyError(f"no book for {symbol!r}; books: {', '.join(self.books)}") from None

    def __iter__(self) -> Iterator[L2Book]:
        return iter(self.books.values())

    def by_id(self, symbol_id: int) -> L2Book:
        book_of = self.arrays[9]
        if not 0 <= symbol_id < len(book_of) or book_of[symbol_id] < 0:
            raise KeyError(f"no book for symbol id {symbol_id}")
        return self.symbols_view[int(book_of[symbol_id])]

    @property
    def symbols_view(self) -> list[L2Book]:
        return list(self.books.values())

    @property
    def window_ticks(self) -> int:
        return self.arrays[2].shape[1]

    @property
    def far_capacity(self) -> int:
        return self.arrays[4].shape[1]

    def unknown_symbol_events(self) -> int:
        return int(self.arrays[8][-1, BookIssue.UNKNOWN_SYMBOL])

    def issues(self) -> dict[str, dict[BookIssue, int]]:
        """Counts by reason per symbol; events of symbols without a book under ``"?"``."""
        out = {name: book.issues() for name, book in self.books.items()}
        unknown = self.unknown_symbol_events()
        if unknown:
            out["?"] = {BookIssue.UNKNOWN_SYMBOL: unknown}
        return out

    def rejected(self) -> int:
        table = self.arrays[8]
        return int(sum(table[:, i].sum() for i in REJECTS))

    # ---------------------------------------------------------------- capacity
    def reserve(self, events: int) -> None:
        """Make sure ``events`` more far-level inserts (plus a re-centre) cannot overflow the far arrays."""
        state = self.arrays[0]
        need = int(max((state[:, nb.BS_FAR_BIDS] + state[:, nb.BS_WIN_BIDS]).max(),
                       (state[:, nb.BS_FAR_ASKS] + state[:, nb.BS_WIN_ASKS]).max())) + events
        capacity = self.far_capacity
        if need <= capacity:
            return
        while capacity < need:
            capacity *= 2
        grown = []
        for old in self.arrays[4:8]:
            new = np.zeros((old.shape[0], capacity), np.int64)
            new[:, : old.shape[1]] = old
            grown.append(new)
        a = self.arrays
        self.arrays = (a[0], a[1], a[2], a[3], grown[0], grown[1], grown[2], grown[3], a[8], a[9])

    # ---------------------------------------------------------------- applying
    def apply(self, events: np.ndarray) -> int:
        """Apply ``market_event`` records in order; returns the number of complete book-changing messages."""
        messages = 0
        for start in range(0, len(events), CHUNK_EVENTS):
            stop = min(start + CHUNK_EVENTS, len(events))
            self.reserve(stop - start)
            messages += nb.apply_events(self.arrays, events, start, stop)
        return messages

    def apply_top(self, events: np.ndarray, levels: int = 10, rows_per_block: int = 8192) -> Iterator[TopRows]:
        """Apply events; yield the top ``levels`` at every consistent point (end of a book-changing
        message), in blocks (each valid until the next is taken)."""
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        meta = np.zeros((rows_per_block, 8), np.int64)
        px = np.zeros((rows_per_block, 2, levels), np.int64)
        qty = np.zeros((rows_per_block, 2, levels), np.int64)
        i = 0
        n = len(events)
        while i < n:
            stop = min(i + CHUNK_EVENTS, n)
            self.reserve(stop - i)
            i, rows = nb.apply_events_top(self.arrays, events, i, stop, levels, meta, px, qty)
            if rows:
                yield TopRows(meta[:rows], px[:rows], qty[:rows])

    def apply_snapshots(self, events: np.ndarray, levels: int = 10) -> np.ndarray:
        """Apply events; return a ``book_snapshot`` record for every consistent point (levels <= 10)."""
        width = self._snapshot_dtype["bid_px"].shape[0]
        if not 1 <= levels <= width:
            raise ValueError(f"levels must be 1..{width} for book_snapshot records, got {levels}")
        scratch_px = np.zeros((1, 2, width), np.int64)
        scratch_qty = np.zeros((1, 2, width), np.int64)
        blocks = []
        i = 0
        n = len(events)
        while i < n:
            stop = min(i + CHUNK_EVENTS, n)
            self.reserve(stop - i)
            out = np.zeros(stop - i, self._snapshot_dtype)
            i, rows = nb.apply_events_snapshots(self.arrays, events, i, stop, levels, out, scratch_px, scratch_qty)
            blocks.append(out[:rows])
        return np.concatenate(blocks) if blocks else np.zeros(0, self._snapshot_dtype)
