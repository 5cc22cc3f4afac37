"""The replay fill model on the real recorded day (data/btcusdt_20240808.csv.gz): a scripted quoting
strategy's orders, one exchange message at a time. Deterministic for a seed; never fills more than
was traded or shown; queue positions never negative (and, risk-averse, never moving back)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from hftshm.codes import Action, EventFlag, EventKind, OrderType, ReportEvent, Side, TimeInForce
from hftshm.exchange import fill_model_nb as fm
from hftshm.exchange.config import ExchangeConfig
from hftshm.exchange.simulator import ORDER_DTYPE, ExchangeSimulator
from hftshm.feed.cache import load_events
from hftshm.symbols import DEFAULT_SYMBOLS

DATA = Path(__file__).resolve().parents[2] / "data" / "btcusdt_20240808.csv.gz"
LOT = 1000  # BTCUSDT lots per unit


@pytest.fixture(scope="module")
def day():
    if not DATA.exists():
        pytest.skip(f"{DATA} not present")
    events = np.asarray(load_events(DATA, DEFAULT_SYMBOLS))
    ends = np.flatnonzero(events["flags"] & EventFlag.LAST_IN_MESSAGE) + 1
    return events, np.concatenate([[0], ends[ends < len(events)], [len(events)]])


def lots(x) -> int:
    return int(round(float(x) * LOT))


class Quoter:
    """Every 400 messages: cancel what is open, quote both sides at the best; now and then take."""

    def __init__(self):
        self.next_id = 1
        self.open: set[int] = set()

    def orders(self, sim: ExchangeSimulator, message: int, ts_ns: int) -> np.ndarray | None:
        if message % 400 or message == 0:
            return None
        bids, asks = sim.book_top(1, 1)
        if not len(bids) or not len(asks):
            return None
        rows = [(Action.CANCEL, oid, 0, 0, 0, np.nan, np.nan) for oid in sorted(self.open)]
        size = 0.005 * (1 + (message // 400) % 5)
        rows.append((Action.NEW, None, Side.BUY, OrderType.LIMIT, TimeInForce.GTC, bids["price"][0], size))
        rows.append((Action.NEW, None, Side.SELL, OrderType.LIMIT, TimeInForce.GTC, asks["price"][0], size))
        if message % 2000 == 0:
            rows.append((Action.NEW, None, Side.BUY, OrderType.LIMIT, TimeInForce.IOC,
                         round(asks["price"][0] + 0.2, 1), 0.8))
            rows.append((Action.NEW, None, Side.SELL, OrderType.MARKET, TimeInForce.IOC, np.nan, 0.3))
        out = np.zeros(len(rows), dtype=ORDER_DTYPE)
        for k, (action, target, side, order_type, tif, price, qty) in enumerate(rows):
            if action == Action.NEW:
                out[k]["order_id"] = self.next_id
                self.next_id += 1
            else:
                out[k]["order_id"] = out[k]["target_order_id"] = target
            out[k]["action"], out[k]["side"], out[k]["order_type"], out[k]["tif"] = action, side, order_type, tif
            out[k]["price"], out[k]["qty"], out[k]["symbol_id"], out[k]["market_ts_ns"] = price, qty, 1, ts_ns
        # everything open was just cancelled; the new quotes are what is open now
        self.open = {int(o["order_id"]) for o in out if o["action"] == Action.NEW and o["tif"] == TimeInForce.GTC}
        return out


def run_day(events, bounds, config, checks: bool, messages: int | None = None):
    sim = ExchangeSimulator(config, DEFAULT_SYMBOLS)
    quoter = Quoter()
    out = []
    queue_seen: dict[int, tuple[float, float]] = {}
    last = len(bounds) - 1 if messages is None else min(messages, len(bounds) - 1)
    for m in range(last):
        batch = events[bounds[m]:bounds[m + 1]]
        before = None
        if checks and sim.pending and sim.next_arrival_ns() <= max(int(batch["exch_ts_ns"].max()), sim.clock_ns):
            before = sim.book_top(1, 4096)  # what is shown when the due orders arrive
        reports = sim.on_market(batch).copy()
        if checks and len(reports):
            check_fill_bounds(reports, batch, before, sim)
        out.append(reports)
        orders = quoter.orders(sim, m, int(sim.clock_ns))
        if orders is not None:
            out.append(sim.on_orders(orders).copy())
        if checks:
            for oid in quoter.open:
                state = sim.open_order(oid)
                if state is None:
                    continue
                assert state["queue_ahead_qty"] >= 0, f"order {oid}: negative queue position"
                if config.fill_model == "risk_averse" and oid in queue_seen and queue_seen[oid][0] == state["price"]:
                    assert state["queue_ahead_qty"] <= queue_seen[oid][1] + 1e-12, "queue moved back"
                queue_seen[oid] = (state["price"], state["queue_ahead_qty"])
    out.append(sim.flush().copy())
    return np.concatenate(out), sim


def check_fill_bounds(reports, batch, before, sim):
    fills = reports[np.isin(reports["event"], [ReportEvent.PARTIAL, ReportEvent.FILL])]
    if not len(fills):
        return
    trades = batch[batch["kind"] == EventKind.TRADE]
    by_trade = fills[np.isin(fills["flags"], [fm.LIQ_QUEUE, fm.LIQ_TRADE_THROUGH])]
    if len(by_trade):
        assert len(trades) == 1, "trade fills come from a trade message"
        assert sum(lots(q) for q in by_trade["qty"]) <= lots(trades[0]["qty"]), "filled more than was traded"
    taken = fills[fills["flags"] == fm.LIQ_TAKER]
    if len(taken):
        bids, asks = before
        shown = {}
        for side, levels in ((Side.SELL, asks), (Side.BUY, bids)):
            for level in levels:
                shown[(side, round(float(level["price"]), 1))] = lots(level["qty"])
        taken_at = defaultdict(int)
        for f in taken:  # a buyer takes the asks
            key = (Side.SELL if f["side"] == Side.BUY else Side.BUY, round(float(f["price"]), 1))
            taken_at[key] += lots(f["qty"])
        for key, amount in taken_at.items():
            assert amount <= shown.get(key, 0), f"took {amount} lots at {key}, {shown.get(key, 0)} shown"
    crossed = fills[fills["flags"] == fm.LIQ_BOOK_CROSS]
    if len(crossed):
        bids, asks = sim.book_top(1, 4096)
        for f in crossed:
            other = asks if f["side"] == Side.BUY else bids
            reach = other["price"] <= f["price"] if f["side"] == Side.BUY else other["price"] >= f["price"]
            assert lots(f["qty"]) <= sum(lots(q) for q in other["qty"][reach]), "filled more than was shown"


def conservation(reports):
    """Per order: acked qty == filled + cancelled + still open (open = leaves of the last report)."""
    acked, done, last_leaves = defaultdict(int), defaultdict(int), {}
    for r in reports:
        oid, event = int(r["order_id"]), int(r["event"])
        if event == ReportEvent.ACK:
            acked[oid] += lots(r["qty"])
        elif event in (ReportEvent.PARTIAL, ReportEvent.FILL, ReportEvent.CANCEL):
            done[oid] += lots(r["qty"])
        if event != ReportEvent.REJECT:
            last_leaves[oid] = lots(r["leaves_qty"])
    for oid, qty in acked.items():
        assert qty == done[oid] + last_leaves[oid], \
            f"order {oid}: {qty} acked, {done[oid]} done, {last_leaves[oid]} open"


@pytest.mark.slow
@pytest.mark.parametrize("model", ["risk_averse", "probabilistic"])
def test_real_day_fills_are_bounded_conserved_and_queue_positions_sane(day, model):
    events, bounds = day
    reports, sim = run_day(events, bounds, ExchangeConfig(fill_model=model, seed=11), checks=True)
    kinds = {flag: int((reports["flags"] == flag).sum()) for flag in
             (fm.LIQ_TAKER, fm.LIQ_QUEUE, fm.LIQ_TRADE_THROUGH, fm.LIQ_BOOK_CROSS)}
    assert all(count > 0 for count in kinds.values()), kinds  # every way of filling happened on the day
    assert sim.stats["late_orders"] == 0 and sim.stats["events"] == len(events)
    conservation(reports)


@pytest.mark.slow
def test_real_day_is_deterministic_for_a_seed(day):
    events, bounds = day
    first, _ = run_day(events, bounds, ExchangeConfig(seed=5), checks=False, messages=40_000)
    again, _ = run_day(events, bounds, ExchangeConfig(seed=5), checks=False, messages=40_000)
    other, _ = run_day(events, bounds, ExchangeConfig(seed=6), checks=False, messages=40_000)
    assert np.isin(first["event"], [ReportEvent.PARTIAL, ReportEvent.FILL]).sum() > 10
    assert first.tobytes() == again.tobytes()  # bit for bit (NaN prices of market orders included)
    assert first.tobytes() != other.tobytes()  # the seed drives the latencies
