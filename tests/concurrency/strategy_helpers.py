"""A stand-in for risk in the strategy worker's process tests: it takes the intents, rejects every
tenth new order (so reports flow back), and drives the strategy worker's control ring on cue."""

from __future__ import annotations

from hftshm.codes import Action, ControlKind, Reason, ReportEvent
from hftshm.runtime.worker import Worker, WorkerContext


class IntentSink(Worker):
    COUNTER_NAMES = ("intents", "new_orders", "rejects_sent", "controls_sent", "strategy_ids_seen")

    def __init__(self, pause_after: int = 20, add_request: int = 0):
        self.pause_after = pause_after
        self.add_request = add_request

    def on_start(self, ctx: WorkerContext) -> None:
        super().on_start(ctx)
        self.intents = next(r for r in ctx.inputs.values() if r.layout.name == "order_intent")
        self.reports = next(r for r in ctx.outputs.values() if r.layout.name == "execution_report")
        self.control = next((r for r in ctx.outputs.values() if r.layout.name == "control_message"), None)
        self.c = ctx.counters
        self.sent = set()
        self.seen = set()

    def do_work(self) -> int:
        view = self.intents.poll(1024)
        n = len(view)
        if n == 0:
            return 0
        batch = view.copy()
        self.intents.release(n)
        self.c[0] += n
        new = batch[batch["action"] == Action.NEW]
        self.seen.update(int(s) for s in batch["strategy_id"])
        self.c[4] = sum(1 << s for s in self.seen)
        for intent in new[::10]:
            self.reports.write({"client_order_id": int(intent["client_order_id"]), "event": ReportEvent.REJECT,
                                "reason": Reason.THROTTLE, "strategy_id": int(intent["strategy_id"]),
                                "symbol_id": int(intent["symbol_id"]), "side": int(intent["side"]),
                                "exch_ts_ns": int(intent["market_ts_ns"])})
            self.c[2] += 1
        self.c[1] += len(new)
        if self.control is not None and self.c[1] >= self.pause_after and "pause" not in self.sent:
            self.sent.add("pause")
            self._control(ControlKind.STRATEGY_PAUSE, 1)
        if self.control is not None and self.add_request and self.c[1] >= self.pause_after and "add" not in self.sent:
            self.sent.add("add")
            self._control(ControlKind.STRATEGY_ADD, -1, self.add_request)
        return n

    def _control(self, kind: int, target: int, value: int = 0) -> None:
        assert self.control.write({"kind": int(kind), "target_id": target, "value_i": value}, timeout_s=1.0)
        self.c[3] += 1

