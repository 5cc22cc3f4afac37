"""A strategy worker restarted within a run rebuilds its strategies' books from the OMS's record.

Each strategy's portfolio (position, average price, PnL, fees, fill count, open orders) lives in
this process's memory; a SIGKILL loses it, and a restarted worker that started flat would quote
against a position it does not know and never cancel its predecessor's orders. The OMS database is
the system of record for orders and fills, so the restarted worker rebuilds from it
(``hftshm.oms.record``) before its strategies see any data:

1. wait until the database holds every order event the OMS had published (one poll per duty cycle;
   the OMS's recovery waits for its writer the same way);
2. per strategy: the run's fills booked in the order they happened, the record's open orders with
   what of them can still fill, and the intents still unreleased in the ``order_intent`` ring (risk
   has not decided them yet; this worker is that ring's only writer, so they are intact); then
   ``Strategy.on_restart`` lets the strategy rebuild its own bookkeeping from its portfolio.

Reports then flow from the rings' released cursors through ``ReplayFilter``: a fill the record holds
(its order's cumulative quantity is at or below what the rebuild booked) and any report about an
order the record has seen finish are redelivered news, skipped; the ACK of an order the record does
not know (risk approved it, the OMS had not recorded it yet) adds it to the strategy's open orders.

Not kept: each strategy's own state beyond its portfolio unless its ``on_restart`` rebuilds it, the
counters the record cannot tell (intents, signals, rejects, acks), and strategies added at run time
(the worker starts those of its config).
"""

from __future__ import annotations

import math

import numpy as np

from hftshm.codes import Action, OrderState, ReportEvent
from hftshm.oms.record import CatchUp, RebuildFromRecord, RunRecord, catch_up_for
from hftshm.strategies import portfolio_nb as pnb

_EVENT_PENDING_MASK = 3  # hftshm.oms.emit_nb: the pending request of an order row's latest event
_PENDING_CANCEL = 2
_PENDING_REPLACE = 3
_FILL_EVENTS = (int(ReportEvent.PARTIAL), int(ReportEvent.FILL))
_CUM_REL_EPS = 1e-9
_OPEN_STATES = {int(OrderState.NEW), int(OrderState.ACKNOWLEDGED), int(OrderState.PARTIALLY_FILLED),
                int(OrderState.PENDING_CANCEL)}


def had_predecessor(ctx) -> bool:
    """Whether a worker of this name ran before in this run: one of its rings has moved."""
    return (any(r.consumer_position > 0 for r in ctx.inputs.values())
            or any(r.producer_position > 0 for r in ctx.outputs.values()))


class ReplayFilter:
    """Decides, per execution report after a rebuild, whether it is news (see the module doc)."""

    def __init__(self, fill_marks: dict[int, float], finished: set, known: set):
        self.fill_marks = dict(fill_marks)
        self.finished = finished
        self.known = known
        self.skipped = 0
        self.adopted = 0

    def __call__(self, slot, report) -> bool:
        """True: skip ``report`` (its effect is already in ``slot``'s portfolio)."""
        event = int(report["event"])
        if event in _FILL_EVENTS:
            order_id = int(report["order_id"])
            mark = self.fill_marks.get(order_id)
            if mark is None:
                return False
            if 0.0 < float(report["cum_qty"]) <= mark + _CUM_REL_EPS * max(1.0, mark):
                self.skipped += 1
                return True
            del self.fill_marks[order_id]  # reports of an order arrive in order: the rest are news
            return False
        key = (int(report["strategy_id"]), int(report["client_order_id"]))
        if key in self.finished:
            self.skipped += 1
            return True
        if event == ReportEvent.ACK and key not in self.known:
            portfolio = slot.strategy.portfolio
            if pnb.find_order(portfolio.orders, key[1]) < 0:
                leaves = float(report["leaves_qty"])
                if leaves > 0.0 and pnb.add_order(portfolio.pf, portfolio.orders, key[1], int(report["side"]),
                                                  float(report["price"]), leaves, slot.strategy.now_ns) >= 0:
                    self.adopted += 1
            self.known.add(key)
        return False


class StrategyRestart(RebuildFromRecord):
    """The rebuild of one restarted strategy worker; ``step`` once per duty cycle until it returns True."""

    def __init__(self, ctx, host, catch_up: CatchUp, intents_out):
        self.ctx = ctx
        self.host = host
        self.catch_up = catch_up
        self.intents_out = intents_out
        catch_up.begin()
        self.filter: ReplayFilter | None = None
        self.notes: dict = {}

    @classmethod
    def begin(cls, ctx, host, intents_out) -> "StrategyRestart | None":
        """A rebuild if this worker had a predecessor in this run and the OMS's record is at hand."""
        if not had_predecessor(ctx):
            return None
        catch_up = catch_up_for(ctx, ctx.log)
        if catch_up is None:
            ctx.log.warning("restarted without a platform config or control block: no OMS record to rebuild "
                            "from; the strategies start flat")
            return None
        return cls(ctx, host, catch_up, intents_out)

    # -- the rebuild -------------------------------------------------------------------------------

    def rebuild(self, record: RunRecord) -> None:
        host = self.host
        known = record.keys()
        in_flight = self._unreleased_intents()
        notes = {}
        for slot in host.slots.values():
            notes[slot.name] = rebuild_portfolio(slot.strategy, record, in_flight, known)
            try:
                slot.strategy.on_restart()
            except Exception as exc:  # noqa: BLE001 - a strategy's hook must not keep the others down
                host._fail(slot, exc)
        self.filter = ReplayFilter(record.fill_marks(), record.finished_keys(), known)
        host.report_filter = self.filter
        host.publish_status()
        self.notes = notes
        self.ctx.log.info("restart: strategies rebuilt from the OMS's record of this run: %s", notes)

    def _unreleased_intents(self) -> np.ndarray:
        ring = self.intents_out
        start, end = ring.consumer_position, ring.producer_position
        return ring.records[np.arange(start, end) & (ring.capacity - 1)].copy()


def rebuild_portfolio(strategy, record: RunRecord, in_flight: np.ndarray, known: set) -> dict:
    """Book ``record``'s fills and open orders of ``strategy`` (and its intents ``in_flight``) into its
    portfolio, which must be fresh; returns what was restored."""
    pf, orders = strategy.portfolio.pf, strategy.portfolio.orders
    sid = strategy.strategy_id
    fills = record.fills[record.fills["strategy_id"] == sid]
    for f in fills:
        fee = float(f["fee"])
        pnb.apply_fill(pf, int(f["side"]), float(f["price"]), float(f["qty"]), fee if math.isfinite(fee) else 0.0,
                       int(f["exch_ts_ns"]))
    top_coid = 0
    opened = 0
    for o in record.open_orders[record.open_orders["strategy_id"] == sid]:
        leaves = record.open_leaves(o)
        coid = int(o["client_order_id"])
        top_coid = max(top_coid, coid)
        if not leaves > pnb.QTY_EPS:
            continue
        i = pnb.add_order(pf, orders, coid, int(o["side"]), float(o["price"]), leaves, 0)
        if i < 0:
            strategy.log.error("restart: open-order table full; order %d not restored (raise [strategies] "
                               "order_table_size)", coid)
            continue
        opened += 1
        orders[i]["qty"] = float(o["qty"])
        state = int(o["state"])
        orders[i]["state"] = state if state in _OPEN_STATES else int(OrderState.ACKNOWLEDGED)
        if state == OrderState.NEW and int(o["flags"]) & 4:
            orders[i]["state"] = int(OrderState.ACKNOWLEDGED)
        request = int(o["flags"]) & _EVENT_PENDING_MASK
        if request in (_PENDING_CANCEL, _PENDING_REPLACE) and int(o["request_client_order_id"]):
            pnb.mark_amend(orders, i, int(o["request_client_order_id"]), request == _PENDING_CANCEL)
    pending = 0
    for it in in_flight[in_flight["strategy_id"] == sid]:
        coid = int(it["client_order_id"])
        top_coid = max(top_coid, coid)
        action = int(it["action"])
        if action == Action.NEW and (sid, coid) not in known and pnb.find_order(orders, coid) < 0:
            if pnb.add_order(pf, orders, coid, int(it["side"]), float(it["price"]), float(it["qty"]),
                             int(it["market_ts_ns"])) >= 0:
                pending += 1
        elif action in (Action.CANCEL, Action.REPLACE):
            i = pnb.find_order(orders, int(it["target_client_order_id"]))
            if i >= 0 and int(orders[i]["client_order_id"]) == int(it["target_client_order_id"]):
                pnb.mark_amend(orders, i, coid, action == Action.CANCEL)
    # client order ids must not repeat: past every id the record or the ring holds for this strategy
    for coid in record.orders["client_order_id"][record.orders["strategy_id"] == sid].tolist():
        top_coid = max(top_coid, int(coid))
    pf[pnb.PF_NEXT_COID] = max(float(pf[pnb.PF_NEXT_COID]), float(top_coid + 1))
    return {"fills": int(len(fills)), "position": float(pf[pnb.PF_POSITION]), "open_orders": opened,
            "pending_intents": pending}
