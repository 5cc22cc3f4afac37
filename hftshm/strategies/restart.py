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

The filter is Python, so while it is set the worker stays on its Python path (the compiled cycle
has no filter). It is dropped (``ReplayFilter.done``) once it has nothing left to decide:

* every report ring's consumer has passed the producer position seen right after the record was
  read. A report about anything the record holds was published before that read: the OMS publishes
  an event and its report in the same compiled call, and the record is read only after the
  write-behind writer has stored the event, milliseconds later;
* every order the record does not know but the strategy may have sent has had a report: the NEW
  intents risk had taken from the ring (still in the ring's memory behind its released cursor) that
  are neither in the record nor answered by a report the dead worker had already read.

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

    def __init__(self, fill_marks: dict[int, float], finished: set, known: set,
                 ring_marks: list | None = None, pending: set | None = None):
        self.fill_marks = dict(fill_marks)
        self.finished = finished
        self.known = known
        self.skipped = 0
        self.adopted = 0
        self.ring_marks = list(ring_marks or ())  # [(report ring, producer position after the read)]
        self.pending = set(pending or ())  # (strategy id, client order id) still waiting for a first report

    def done(self) -> bool:
        """Whether no report still to come can be one the record holds or an unknown order's first."""
        return not self.pending and all(ring.consumer_position >= mark for ring, mark in self.ring_marks)

    def __call__(self, slot, report) -> bool:
        """True: skip ``report`` (its effect is already in ``slot``'s portfolio)."""
        if self.pending:
            self.pending.discard((int(report["strategy_id"]), int(report["client_order_id"])))
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
        self.reports_in = [r for r in ctx.inputs.values() if r.layout.name == "execution_report"]
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
        warm_rebuild_kernels()
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
        marks = [(ring, ring.producer_position) for ring in self.reports_in]
        pending = {key for key in unanswered_intents(self._released_intents(), self._released_reports(), known)
                   if key[0] in host.slots}  # a strategy no longer hosted: its reports are orphans, never filtered
        self.filter = ReplayFilter(record.fill_marks(), record.finished_keys(), known, marks, pending)
        notes["waiting_for_first_reports"] = len(pending)
        host.report_filter = self.filter
        host.publish_status()
        self.notes = notes
        self.ctx.log.info("restart: strategies rebuilt from the OMS's record of this run: %s", notes)

    def _unreleased_intents(self) -> np.ndarray:
        ring = self.intents_out
        start, end = ring.consumer_position, ring.producer_position
        return ring.records[np.arange(start, end) & (ring.capacity - 1)].copy()

    def _released_intents(self) -> np.ndarray:
        return _behind_cursor(self.intents_out)

    def _released_reports(self) -> list[np.ndarray]:
        return [_behind_cursor(ring) for ring in self.reports_in]


def _behind_cursor(ring) -> np.ndarray:
    """The records a ring still holds behind its consumer's released cursor (read and released, not
    yet overwritten: the producer writes only ahead of its own position)."""
    start = max(0, ring.producer_position - ring.capacity)
    end = ring.consumer_position
    if end <= start:
        return ring.records[:0].copy()
    return ring.records[np.arange(start, end) & (ring.capacity - 1)].copy()


def unanswered_intents(released: np.ndarray, answered: list[np.ndarray], known: set) -> set:
    """(strategy id, client order id) of the NEW intents risk took that the record does not know and
    no report already read answered: risk approved them and the OMS had not recorded them when the
    record was read (their first report is still to come), or risk rejected them in a report the
    dead worker read (then it never comes; ``answered`` holds it)."""
    new = released[released["action"] == int(Action.NEW)]
    keys = {(int(s), int(c)) for s, c in zip(new["strategy_id"].tolist(), new["client_order_id"].tolist())}
    keys -= known
    for reports in answered:
        if keys and len(reports):
            keys -= {(int(s), int(c)) for s, c in zip(reports["strategy_id"].tolist(),
                                                      reports["client_order_id"].tolist())}
    return keys


def warm_rebuild_kernels() -> None:
    """Compile (or load) the portfolio kernels the rebuild and ``ReplayFilter`` call from Python, with
    the argument types they call them with, before the first step: the rebuild runs inside steps,
    and a restarted process must compile nothing there (``runtime.jit_watch``)."""
    pf, orders = pnb.new_state(), pnb.new_orders(2)
    pnb.apply_fill(pf, int(1), float(1.0), float(1.0), float(0.0), int(0))
    i = pnb.add_order(pf, orders, int(1), int(1), float(1.0), float(1.0), int(0))
    pnb.find_order(orders, int(1))
    pnb.mark_amend(orders, i, int(2), True)


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
