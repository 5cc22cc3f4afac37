"""Prometheus families for the durable controls and the audit, exported by the web app:

    hftshm_persisted_kill_switch          1 while the persisted kill switch is on (what the next start
                                          applies; with no platform running, the only copy there is)
    hftshm_persisted_trading_state{state} 1 for the persisted trading state
    hftshm_audit_pending_rows             audit rows in the journal not yet in the database (grows
                                          while the database is down; 0 once delivered)
"""

from __future__ import annotations

from typing import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hftshm.codes import TradingState


class ControlsCollector(Collector):
    def __init__(self, controls, audit=None):
        self.controls = controls
        self.audit = audit

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        persisted = self.controls.store.load()
        kill = GaugeMetricFamily("hftshm_persisted_kill_switch", "1 while the persisted kill switch is on")
        kill.add_metric([], 1.0 if persisted["kill_switch"] else 0.0)
        state = GaugeMetricFamily("hftshm_persisted_trading_state", "1 for the persisted trading state",
                                  labels=["state"])
        for member in TradingState:
            name = member.name.lower()
            state.add_metric([name], 1.0 if persisted["trading_state"] == name else 0.0)
        yield kill
        yield state
        if self.audit is not None:
            pending = GaugeMetricFamily("hftshm_audit_pending_rows",
                                        "audit rows waiting in the journal for the database")
            pending.add_metric([], float(len(self.audit.pending())))
            yield pending
