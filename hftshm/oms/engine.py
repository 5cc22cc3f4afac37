"""``OmsEngine``: the OMS state and its kernels, without rings or a database.

The worker (``hftshm.oms.worker``) feeds it ring batches and publishes what it stages; tests and
the benchmark drive it directly with numpy records. It owns every array the kernels touch,
allocated once here, so the hot path allocates nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from hftshm.codes import OrderState
from hftshm.oms import order_table_nb, oms_nb, states, timers_nb
from hftshm.runtime.resident import touch_pages
from hftshm.transport.layout import load

ORDER = load("order")
REPORT = load("execution_report")
ORDER_EVENT = load("order_event")


def ack_timeouts_ns(ack_timeout_ms: float, max_retries: int, backoff_factor: float,
                    max_backoff_ms: float) -> np.ndarray:
    """How long to wait after each send: ``timeouts[k]`` follows the k-th send (0 = the first).

    Exponential backoff: ``ack_timeout * factor**k``, capped at ``max_backoff``; ``max_retries``
    resends follow the first send, so the array has ``max_retries + 1`` entries.
    """
    cap = max(max_backoff_ms, ack_timeout_ms)
    timeouts = [min(ack_timeout_ms * backoff_factor**k, cap) for k in range(max_retries + 1)]
    return np.array([int(t * 1e6) for t in timeouts], dtype=np.int64)


@dataclass
class Staged:
    """Views of what the last kernel calls staged (valid until ``OmsEngine.clear``)."""

    orders: np.ndarray
    reports: np.ndarray
    events: np.ndarray

    def copy(self) -> "Staged":
        return Staged(self.orders.copy(), self.reports.copy(), self.events.copy())


class OmsEngine:
    def __init__(self, *, max_orders: int, timeouts_ns: np.ndarray, epoch: int, staging: int = 4096):
        if max_orders < 1:
            raise ValueError(f"max_orders must be >= 1, found {max_orders}")
        if not 1 <= epoch < 2**23:
            raise ValueError(f"epoch must be in [1, 2**23), found {epoch}")
        if staging < 4:
            raise ValueError(f"staging must be >= 4 records, found {staging}")
        self.max_orders = max_orders
        orders, free, retired, slot_words = order_table_nb.new_slots(max_orders)
        self.orders = orders
        self.slot_words = slot_words
        self.book = (orders, free, retired, slot_words, *order_table_nb.new_index(max_orders), *order_table_nb.new_index(max_orders))
        self.timers = np.zeros(max_orders, dtype=np.int32)
        self.words = np.zeros(oms_nb.O_WORDS, dtype=np.int64)
        self.words[oms_nb.O_EPOCH] = epoch
        self.words[oms_nb.O_NEXT_DEADLINE] = oms_nb.NO_DEADLINE
        self.stats = np.zeros(oms_nb.ST_WORDS, dtype=np.int64)
        self.timeouts_ns = np.ascontiguousarray(timeouts_ns, dtype=np.int64)
        if len(self.timeouts_ns) < 1 or (self.timeouts_ns <= 0).any():
            raise ValueError("timeouts_ns needs at least one positive timeout")
        # writable copies: one array type for every caller, so one compiled specialisation
        self.ctl = (self.timers, self.words, self.stats, states.NEXT_STATE.copy(), states.IS_TERMINAL.copy(),
                    self.timeouts_ns)
        self.counts = np.zeros(3, dtype=np.int64)
        self.out_orders = ORDER.zeros(staging)
        self.out_reports = REPORT.zeros(staging)
        self.out_events = ORDER_EVENT.zeros(staging)
        self.out = (self.out_orders, self.out_reports, self.out_events, self.counts)

    def fault_in(self) -> None:
        """Write every page of the order table, its two hash indexes, the timer list and the staging
        arrays once, now (each byte to itself): ``np.zeros`` maps a large table's pages only at their
        first write, so a live OMS would otherwise take that page fault on the hot path wherever a new
        order first lands (~2.4 faults per order over the first few hundred orders at the shipped
        65,536 slots: the hash indexes are written at random slots). ~12 MB resident from the start;
        the worker calls it, a backtest need not."""
        touch_pages(*self.book, self.timers, self.out_orders, self.out_reports, self.out_events)

    # -- the hot path ------------------------------------------------------------------------------

    def on_orders(self, records: np.ndarray, now_ns: int | None = None, wall_ns: int | None = None) -> int:
        """Apply ``order`` records from risk; returns how many were consumed (fewer: staging full)."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        wall_ns = time.time_ns() if wall_ns is None else wall_ns
        return int(oms_nb.on_orders(self.book, self.ctl, self.out, records, len(records), now_ns, wall_ns))

    def on_reports(self, records: np.ndarray, now_ns: int | None = None, wall_ns: int | None = None) -> int:
        """Apply execution reports from the exchange; returns how many were consumed."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        wall_ns = time.time_ns() if wall_ns is None else wall_ns
        return int(oms_nb.on_reports(self.book, self.ctl, self.out, records, len(records), now_ns, wall_ns))

    def on_timers(self, now_ns: int | None = None, wall_ns: int | None = None) -> int:
        """Resend or give up on requests past their ack deadline; returns how many were handled."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        if now_ns < self.words[oms_nb.O_NEXT_DEADLINE]:
            return 0
        wall_ns = time.time_ns() if wall_ns is None else wall_ns
        return int(timers_nb.on_timers(self.book, self.ctl, self.out, now_ns, wall_ns))

    def staged(self) -> Staged:
        c = self.counts
        return Staged(self.out_orders[: c[oms_nb.C_ORDERS]], self.out_reports[: c[oms_nb.C_REPORTS]],
                      self.out_events[: c[oms_nb.C_EVENTS]])

    def clear(self) -> None:
        """Forget the staged records (after they were published)."""
        self.counts[:] = 0

    # -- recovery ----------------------------------------------------------------------------------

    def restore(self, rows: np.ndarray, now_ns: int | None = None) -> int:
        """Load ``ORDER_SLOT_DTYPE`` rows (oldest first) recovered from the database."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        rows = np.ascontiguousarray(rows, dtype=order_table_nb.ORDER_SLOT_DTYPE)
        return int(timers_nb.restore(self.book, self.ctl, rows, len(rows), now_ns))

    # -- inspection (tests, CLI, recovery checks) --------------------------------------------------

    @property
    def epoch(self) -> int:
        return int(self.words[oms_nb.O_EPOCH])

    @property
    def open_count(self) -> int:
        return int(self.slot_words[order_table_nb.S_OPEN])

    def counters(self) -> dict[str, int]:
        return {name: int(self.stats[i]) for i, name in enumerate(oms_nb.STAT_NAMES)}

    def slot_of(self, order_id: int) -> int:
        _o, _f, _r, _w, oid_a, oid_b, oid_v, _ca, _cb, _cv = self.book
        return int(order_table_nb.index_find(oid_a, oid_b, oid_v, np.int64(order_id), np.int64(0)))

    def order(self, order_id: int) -> np.void | None:
        """The table row of ``order_id`` (a copy), or None when the OMS does not hold it."""
        slot = self.slot_of(order_id)
        return None if slot < 0 else self.orders[slot].copy()

    def order_by_client_id(self, strategy_id: int, client_order_id: int) -> np.void | None:
        _o, _f, _r, _w, _a, _b, _v, cid_a, cid_b, cid_v = self.book
        slot = int(order_table_nb.index_find(cid_a, cid_b, cid_v, np.int64(strategy_id), np.int64(client_order_id)))
        return None if slot < 0 else self.orders[slot].copy()

    def open_orders(self) -> np.ndarray:
        """Rows of every order not in a terminal state."""
        used = self.orders["state"] != 0
        open_mask = used & ~np.isin(self.orders["state"], [int(s) for s in states.TERMINAL_STATES])
        return self.orders[open_mask].copy()

    def state_of(self, order_id: int) -> OrderState | None:
        row = self.order(order_id)
        return None if row is None else OrderState(int(row["state"]))
