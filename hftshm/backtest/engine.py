"""The Python-path backtest loop: any strategy, driven by ``StrategyHost`` exactly as on the platform.

Replays market events one exchange message at a time (the book is consistent at message ends), in
market time:

1. the venue (risk -> OMS -> exchange, or a test venue) takes the message: orders that reached the
   exchange before it are matched first, then the message moves the market and may fill them;
2. execution reports due by then go to the strategies (their portfolios first);
3. the strategies get the message (``on_tick``) and the resulting book (``on_book``);
4. their intents go to the venue, stamped with the message's market time (latency starts there);
5. equity is sampled on a fixed market-time grid.

Strategies with a compiled kernel take the faster path in ``compiled.py``; this loop is for every
other strategy and is the reference the compiled one is checked against.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from hftshm.codes import Action, EventFlag, EventKind, Reason, ReportEvent, Side
from hftshm.backtest.report import FILL_DTYPE
from hftshm.strategies import portfolio_nb as pnb
from hftshm.strategies.runtime import StrategyHost
from hftshm.transport.layout import load as load_layout

SNAPSHOT_LAYOUT = load_layout("book_snapshot")


class Venue(Protocol):
    fill_model: str
    latency_model: dict

    def on_market(self, events: np.ndarray) -> None: ...

    def on_intents(self, intents: np.ndarray) -> None: ...

    def advance(self, now_ns: int) -> None: ...

    def take_reports(self, now_ns: int) -> np.ndarray: ...


class BookSource(Protocol):
    def apply(self, events: np.ndarray) -> np.ndarray | None:
        """Apply a message; the book snapshot after it (a 1-record array) if the book changed."""


class L2BookSource:
    """The platform's L2 book (``hftshm.book``) rebuilt from the replayed depth, as the feed builds it:
    a ``book_snapshot`` at the end of every book-changing message."""

    RESERVE_EVERY = 4096  # events between checks that the book's far-level arrays have room

    def __init__(self, symbols, levels: int = 10):
        from hftshm.book import l2_apply_nb
        from hftshm.book.book import BookSet

        self._nb = l2_apply_nb
        self.books = BookSet(symbols)
        self.levels = levels
        width = SNAPSHOT_LAYOUT.dtype["bid_px"].shape[0]
        self._scratch_px = np.zeros((1, 2, width), np.int64)
        self._scratch_qty = np.zeros((1, 2, width), np.int64)
        self._out = SNAPSHOT_LAYOUT.zeros(16)
        self._since_reserve = self.RESERVE_EVERY

    def apply(self, events: np.ndarray) -> np.ndarray | None:
        n = len(events)
        self._since_reserve += n
        if self._since_reserve >= self.RESERVE_EVERY or n > self.RESERVE_EVERY:
            self.books.reserve(max(n, 2 * self.RESERVE_EVERY))
            self._since_reserve = 0
        if n > len(self._out):
            self._out = SNAPSHOT_LAYOUT.zeros(n)
        _, rows = self._nb.apply_events_snapshots(self.books.arrays, events, 0, n, self.levels, self._out,
                                                  self._scratch_px, self._scratch_qty)
        if rows == 0:
            return None
        snaps = self._out[:rows]
        snaps["publish_ts_ns"] = events[-1]["publish_ts_ns"]
        return snaps


@dataclass
class LoopOutput:
    rows: int = 0
    start_ns: int = 0
    end_ns: int = 0
    orders_sent: int = 0
    submitted_qty: float = 0.0
    fills: list = field(default_factory=list)
    reject_reasons: Counter = field(default_factory=Counter)
    equity_ts: list = field(default_factory=list)
    equity: list = field(default_factory=list)
    #: settlement currency -> equity samples (beside ``equity_ts``), when the strategies settle in more
    #: than one currency: ``equity`` then adds different currencies and is not reported
    equity_by_currency: dict = field(default_factory=dict)


def message_ends(events: np.ndarray) -> np.ndarray:
    """Index one past the last record of each exchange message."""
    ends = np.flatnonzero(events["flags"] & EventFlag.LAST_IN_MESSAGE) + 1
    if len(ends) == 0 or ends[-1] != len(events):
        ends = np.append(ends, len(events))
    return ends


def equity_of(host: StrategyHost) -> float:
    total = 0.0
    for slot in host.slots.values():
        pf = slot.strategy.portfolio.pf
        total += pf[pnb.PF_REALIZED] - pf[pnb.PF_FEES] + pnb.unrealized(pf, pf[pnb.PF_MID])
    return total


def currencies_of(strategies) -> dict[str, list]:
    """Settlement currency -> the strategies settling in it (``hftshm.units.currency_of``)."""
    from hftshm.units import currency_of

    out: dict[str, list] = {}
    for strategy in strategies:
        out.setdefault(currency_of(strategy.symbol), []).append(strategy)
    return out


def sample_by_currency(groups: dict[str, list], out: dict[str, list], times: int = 1) -> None:
    """Append each currency's equity (its strategies' realized - fees + position at mid) ``times`` times."""
    for currency, strategies in groups.items():
        total = 0.0
        for strategy in strategies:
            pf = strategy.portfolio.pf
            total += pf[pnb.PF_REALIZED] - pf[pnb.PF_FEES] + pnb.unrealized(pf, pf[pnb.PF_MID])
        out.setdefault(currency, []).extend([float(total)] * times)


def run_loop(events: np.ndarray, host: StrategyHost, venue: Venue, book: BookSource,
             equity_interval_ns: int) -> LoopOutput:
    out = LoopOutput(rows=len(events))
    if len(events) == 0:
        return out
    out.start_ns = int(events[0]["exch_ts_ns"])
    next_sample = out.start_ns
    groups = currencies_of(slot.strategy for slot in host.slots.values())
    if len(groups) < 2:
        groups = {}  # one currency: ``equity`` is its curve
    start = 0
    for end in message_ends(events):
        message = events[start:end]
        start = end
        now = int(message[-1]["exch_ts_ns"])
        venue.on_market(message)
        host.set_time(now)  # reports arrive at the message's time, not the previous one's
        _deliver(host, venue.take_reports(now), out)
        host.on_events(message)
        snapshot = book.apply(message)
        if snapshot is not None:
            on_books = getattr(venue, "on_books", None)
            if on_books is not None:
                on_books(snapshot)  # risk marks to the same book (its price band needs a mid)
            host.on_books(snapshot)
        _send(host, venue, out)
        while now >= next_sample:
            out.equity_ts.append(next_sample)
            out.equity.append(equity_of(host))
            sample_by_currency(groups, out.equity_by_currency)
            next_sample += equity_interval_ns
    # let in-flight orders and reports land (no new market data: the book is frozen at the end)
    out.end_ns = now
    drain_until = now + 10 * 1_000_000_000
    venue.advance(drain_until)
    _deliver(host, venue.take_reports(drain_until), out)
    out.equity_ts.append(now)
    out.equity.append(equity_of(host))
    sample_by_currency(groups, out.equity_by_currency)
    return out


def _deliver(host: StrategyHost, reports: np.ndarray, out: LoopOutput) -> None:
    if len(reports) == 0:
        return
    for report in reports:
        event = int(report["event"])
        if event == ReportEvent.PARTIAL or event == ReportEvent.FILL:
            out.fills.append((int(report["exch_ts_ns"]), int(report["client_order_id"]), int(report["side"]),
                              float(report["price"]), float(report["qty"]), float(report["fee"])))
        elif event == ReportEvent.REJECT:
            out.reject_reasons[_reason_name(int(report["reason"]))] += 1
    host.on_reports(reports)


def _send(host: StrategyHost, venue: Venue, out: LoopOutput) -> None:
    if host.outbox_count == 0:
        return
    intents = host.take_outbox()
    new = intents["action"] == Action.NEW
    out.orders_sent += int(new.sum())
    out.submitted_qty += float(intents["qty"][new].sum())
    venue.on_intents(intents)


def _reason_name(code: int) -> str:
    try:
        return Reason(code).name.lower()
    except ValueError:
        return str(code)


def fills_array(fills: list) -> np.ndarray:
    arr = np.zeros(len(fills), dtype=FILL_DTYPE)
    for k, f in enumerate(fills):
        arr[k] = f
    return arr

