"""``ExchangeSimulator``: our orders filled against the replayed real market, in simulated time.

    sim = ExchangeSimulator(ExchangeConfig(), symbols, seed=1)
    for batch in market_event_batches:
        reports = sim.on_market(batch)            # due orders first, then each event, in order
        ...strategy reacts, stamping each order's market_ts_ns with the event's exch_ts_ns...
        reports = sim.on_orders(orders)           # queued; arrive at market_ts_ns + entry latency
    reports = sim.flush()                         # end of data: the orders still in flight

Time is market time only (``exch_ts_ns`` of the events, kept monotonic as their running maximum);
the wall clock is never read. An order applies just before the first event at or after its
arrival, so two drivers that hand the simulator the same events and orders in the same
interleaving get bit-identical reports. Reports carry ``exch_ts_ns`` (when the exchange acted) and
``local_ts_ns`` (exch_ts_ns + response latency: when the strategy may see it), plus ``flags`` =
how a fill happened (``fill_model_nb.LIQ_*``).

Parity between an in-process backtest and a multi-process run. An order stamped ``market_ts_ns =
T`` arrives no earlier than ``T + min entry latency``. So once upstream has confirmed it has sent
every order caused by events up to market time W, events with market time below
``safe_horizon_ns(W) = W + min_entry_latency_ns`` can be applied without missing an order that
should come first. ``on_orders`` applies an order at once only if its arrival is already in the
past (counted as ``late_orders``; that is where the two runs could differ).

The arrays returned are views of an internal buffer: valid until the next call (copy to keep).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hftshm.exchange import fill_model_nb as fm
from hftshm.exchange import market_view_nb as mv
from hftshm.exchange.common_nb import SC_LOT, SC_LOT_INV, SC_TICK, SC_TICK_INV, idmap_find, idmap_new
from hftshm.exchange.config import ExchangeConfig
from hftshm.exchange.engine import LEVEL_DTYPE, ORDER_DTYPE, REPORT_DTYPE, as_layout, scale_table
from hftshm.exchange.latency_nb import ENTRY, RESPONSE, new_latency
from hftshm.runtime.resident import touch_pages
from hftshm.symbols import DEFAULT_SYMBOLS, SymbolTable
from hftshm.transport.layout import load

EVENT_DTYPE = load("market_event").dtype
_MODELS = {"risk_averse": fm.MODEL_RISK_AVERSE, "probabilistic": fm.MODEL_PROBABILISTIC}


class ExchangeSimulator:
    def __init__(self, config: ExchangeConfig | None = None, symbols: SymbolTable | None = None,
                 seed: int | None = None, *, base_dir: Path | None = None, pending_capacity: int = 1 << 14,
                 output_capacity: int = 1 << 14):
        self.config = config or ExchangeConfig()
        self.symbols = symbols or DEFAULT_SYMBOLS
        self.seed = self.config.seed if seed is None else int(seed)
        c = self.config
        n_books = max(len(self.symbols), 1)
        sym_to_book, scale = scale_table(self.symbols)
        view = mv.allocate(n_books, c.market_depth_levels)
        max_open = c.max_open_orders
        so = np.zeros((max_open, fm.SO_COLS), dtype=np.int64)
        sq = np.zeros((max_open, fm.SQ_COLS), dtype=np.float64)
        active = np.zeros(max_open, dtype=np.int64)
        free = np.arange(max_open, dtype=np.int64)[::-1].copy()
        sw = np.zeros(fm.SW_WORDS, dtype=np.int64)
        sw[fm.SW_FREE_TOP] = max_open
        sw[fm.SW_FILL_MODEL] = _MODELS[c.fill_model]
        sw[fm.SW_CLOCK] = np.iinfo(np.int64).min
        sw[fm.SW_LAST_ARRIVAL] = np.iinfo(np.int64).min
        sw[fm.SW_LAST_LOCAL] = np.iinfo(np.int64).min
        params = np.zeros(fm.P_WORDS, dtype=np.float64)
        params[fm.P_MAKER_BPS] = c.maker_fee_bps
        params[fm.P_TAKER_BPS] = c.taker_fee_bps
        params[fm.P_QUEUE_POWER] = c.queue_power
        entry, entry_series = new_latency(c.entry_latency, self.seed, ENTRY, base_dir)
        response, response_series = new_latency(c.response_latency, self.seed, RESPONSE, base_dir)
        self.min_entry_latency_ns = c.entry_latency.min_ns(base_dir)
        self._S = (scale, sym_to_book, view["mv_price"], view["mv_qty"], view["mv_used"], view["mv_i64"], so, sq,
                   active, free, idmap_new(max_open), sw, params, entry, entry_series, response, response_series)
        self._sw = sw
        self._scale = scale
        self._sym_to_book = sym_to_book
        # an arriving order reports at most: ack, one fill per visible level, and a cancel
        self._room_per_order = c.market_depth_levels + 4
        self._out = np.zeros(max(output_capacity, 2 * (self._room_per_order + max_open) + 16), dtype=REPORT_DTYPE)
        self._pend = np.zeros(_pow2(pending_capacity), dtype=ORDER_DTYPE)
        self._pend_arrival = np.zeros(len(self._pend), dtype=np.int64)

    def make_resident(self) -> int:
        """Map every page of the fill model's tables now (``runtime.resident``): the market view's
        dense price window is written wherever the market moves, and the order tables at the slots
        orders land in, so a live exchange would otherwise take first-write page faults inside its
        stage for the first minutes of a run. The worker calls it; a backtest need not. Returns bytes."""
        arrays = [a for a in self._S if isinstance(a, np.ndarray)]
        return touch_pages(*arrays, self._out, self._pend, self._pend_arrival)

    # ------------------------------------------------------------------ driving it
    def on_orders(self, orders: np.ndarray) -> np.ndarray:
        """Queue our orders (arrival = market_ts_ns + entry latency); returns reports of any already due."""
        orders = as_layout(orders, ORDER_DTYPE, "order")
        done = 0
        while done < len(orders):
            done += int(fm.enqueue_orders(self._S, self._pend, self._pend_arrival, orders, done, len(orders)))
            if done < len(orders):
                self._grow_pending()
        return self.advance_to(int(self._sw[fm.SW_CLOCK]))

    def on_market(self, events: np.ndarray) -> np.ndarray:
        """Apply market events in order; before each, the orders that arrive by its time."""
        events = as_layout(events, EVENT_DTYPE, "market_event")
        i = j = 0
        n = len(events)
        while True:
            i, j = fm.run_events(self._S, self._pend, self._pend_arrival, events, i, n, self._out, j,
                                 self._room_per_order)
            if i >= n:
                return self._out[:j]
            j = self._grow_output(j)

    def advance_to(self, ts_ns: int) -> np.ndarray:
        """Apply the orders that arrive by market time ``ts_ns`` (no market event needed)."""
        j = 0
        while True:
            j = int(fm.apply_due(self._S, self._pend, self._pend_arrival, np.int64(ts_ns), self._out, j,
                                 self._room_per_order))
            if not self._due(ts_ns):
                return self._out[:j]
            j = self._grow_output(j)

    def flush(self) -> np.ndarray:
        """End of data: apply every queued order at its own arrival time."""
        return self.advance_to(np.iinfo(np.int64).max)

    def safe_horizon_ns(self, upstream_watermark_ns: int) -> int:
        """Events with market time below this may be applied once upstream has sent every order
        caused by events up to ``upstream_watermark_ns`` (no such order can arrive earlier)."""
        return int(upstream_watermark_ns) + self.min_entry_latency_ns

    @property
    def kernel_state(self) -> tuple:
        """(S, pend, pend_arrival, room_per_order) for a compiled driver calling ``fill_model_nb`` kernels
        itself (``run_events``, ``enqueue_orders``, ``apply_due``) from inside numba. The output buffer is
        the caller's: it must hold ``room_per_order`` reports beyond what it already holds."""
        return self._S, self._pend, self._pend_arrival, self._room_per_order

    # ------------------------------------------------------------------ looking at it
    @property
    def clock_ns(self) -> int:
        """Simulated market time: the running maximum of applied events' and orders' times."""
        return int(self._sw[fm.SW_CLOCK])

    @property
    def pending(self) -> int:
        """Orders sent but not yet arrived."""
        return int(self._sw[fm.SW_PEND_TAIL] - self._sw[fm.SW_PEND_HEAD])

    def next_arrival_ns(self) -> int | None:
        """Arrival time of the next queued order, or None."""
        if not self.pending:
            return None
        return int(self._pend_arrival[self._sw[fm.SW_PEND_HEAD] & (len(self._pend) - 1)])

    @property
    def stats(self) -> dict[str, int]:
        return {name: int(self._sw[word]) for name, word in fm.STAT_WORDS.items()} | {
            "levels_dropped": int(self._S[5][:, mv.MV_DROPPED].sum())}

    def open_order(self, order_id: int) -> dict | None:
        """One of our resting orders: price, leaves_qty, cum_qty, queue_ahead_qty (visible qty ahead)."""
        so, sq, id_table = self._S[6], self._S[7], self._S[10]
        slot = int(idmap_find(id_table, order_id)) if order_id > 0 else -1
        if slot < 0:
            return None
        b = int(so[slot, fm.SO_BOOK])
        tick, tick_inv, lot, lot_inv = (self._scale[b, c] for c in (SC_TICK, SC_TICK_INV, SC_LOT, SC_LOT_INV))
        lots_to_qty = (lambda x: x / lot_inv) if lot_inv > 0 else (lambda x: x * lot)
        return {
            "order_id": int(so[slot, fm.SO_ID]),
            "price": float(so[slot, fm.SO_PRICE] / tick_inv if tick_inv > 0 else so[slot, fm.SO_PRICE] * tick),
            "leaves_qty": float(lots_to_qty(so[slot, fm.SO_LEAVES])),
            "cum_qty": float(lots_to_qty(so[slot, fm.SO_CUM])),
            "queue_ahead_qty": float(lots_to_qty(sq[slot, fm.SQ_AHEAD])),
            "side": int(so[slot, fm.SO_SIDE]) + 1,
        }

    def book_top(self, symbol_id: int, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The fill model's view of the visible market book: best ``n`` levels per side (price, qty, orders=0)."""
        b = int(self._sym_to_book[symbol_id]) if 0 <= symbol_id < 65536 else -1
        if b < 0:
            raise KeyError(f"unknown symbol id {symbol_id}")
        tick, tick_inv, lot, lot_inv = (self._scale[b, c] for c in (SC_TICK, SC_TICK_INV, SC_LOT, SC_LOT_INV))
        sides = []
        for side in (0, 1):
            price = np.zeros(max(int(n), 0), dtype=np.int64)
            qty = np.zeros(len(price), dtype=np.int64)
            count = int(mv.top_levels(self._S[2], self._S[3], self._S[5], b, side, price, qty))
            levels = np.zeros(count, dtype=LEVEL_DTYPE)
            levels["price"] = price[:count] / tick_inv if tick_inv > 0 else price[:count] * tick
            levels["qty"] = qty[:count] / lot_inv if lot_inv > 0 else qty[:count] * lot
            sides.append(levels)
        return sides[0], sides[1]

    # ------------------------------------------------------------------ internals
    def _due(self, ts_ns: int) -> bool:
        nxt = self.next_arrival_ns()
        return nxt is not None and nxt <= ts_ns

    def _grow_output(self, j: int) -> int:
        """The buffer filled up mid-call: keep what was written and double it (rare; it then stays big)."""
        bigger = np.zeros(2 * len(self._out), dtype=REPORT_DTYPE)
        bigger[:j] = self._out[:j]
        self._out = bigger
        return j

    def _grow_pending(self) -> None:
        head, tail = int(self._sw[fm.SW_PEND_HEAD]), int(self._sw[fm.SW_PEND_TAIL])
        cap = len(self._pend)
        order = [(head + k) & (cap - 1) for k in range(tail - head)]
        pend = np.zeros(2 * cap, dtype=ORDER_DTYPE)
        arrival = np.zeros(2 * cap, dtype=np.int64)
        pend[:len(order)] = self._pend[order]
        arrival[:len(order)] = self._pend_arrival[order]
        self._pend, self._pend_arrival = pend, arrival
        self._sw[fm.SW_PEND_HEAD], self._sw[fm.SW_PEND_TAIL] = 0, tail - head


def _pow2(n: int) -> int:
    size = 16
    while size < n:
        size *= 2
    return size

