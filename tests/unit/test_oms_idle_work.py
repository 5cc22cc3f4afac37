"""What the OMS does while idle: the hints for the next orders' lines (``next_lines_nb``) and the
rehearsal of its order path on a private twin (``rehearsal_nb``, ``rehearsal``)."""

from __future__ import annotations

import numpy as np
import pytest

from hftshm.metrics.histogram import new_histogram
from hftshm.oms import cycle_nb
from hftshm.codes import Action
from hftshm.oms.emit_nb import O_CLIENTS, O_RECENT, O_RECENT_NEXT
from hftshm.oms.engine import OmsEngine, ack_timeouts_ns
from hftshm.oms.next_lines_nb import prefetch_next
from hftshm.oms.rehearsal import twin_of
from hftshm.runtime.rehearsal import rehearse_ns
from hftshm.oms.rehearsal_nb import rehearse_when_due
from hftshm.oms.stage_nb import OmsStage
from hftshm.oms.testing import fill_for, new_orders, reports
from hftshm.transport.ring import Ring


def engine(max_orders: int = 64) -> OmsEngine:
    return OmsEngine(max_orders=max_orders, timeouts_ns=ack_timeouts_ns(1000.0, 3, 2.0, 5000.0), epoch=3)


def test_new_orders_and_amends_leave_hints_of_the_next_client_ids_and_recent_slots():
    e = engine()
    e.on_orders(new_orders({"strategy_id": 7, "client_order_id": 100}, {"strategy_id": 7, "client_order_id": 101}))
    words = e.words
    assert list(words[O_CLIENTS + 2 * 7:O_CLIENTS + 2 * 7 + 2]) == [7, 101]
    assert words[O_RECENT_NEXT] == 2 and list(words[O_RECENT:O_RECENT + 2]) == [1, 2]  # slots 0 and 1, + 1
    first = e.staged().orders[0].copy()
    e.clear()
    e.on_orders(new_orders({"strategy_id": 7, "action": Action.CANCEL, "client_order_id": 102,
                            "target_order_id": int(first["order_id"])}))
    assert list(words[O_CLIENTS + 2 * 7:O_CLIENTS + 2 * 7 + 2]) == [7, 102]
    assert words[O_RECENT + 2] == 1  # the cancelled order's slot again


def test_an_order_that_ends_drops_its_index_entries_from_the_prefetch():
    e = engine()
    e.on_orders(new_orders({}, {"side": 2}))
    sent = e.staged().orders.copy()
    e.clear()
    open_lines = int(prefetch_next(e.book, e.ctl))
    e.on_reports(reports(fill_for(sent[0], 0.1, 0.1), fill_for(sent[1], 0.1, 0.1)))
    assert e.open_count == 0
    # the same hints, minus the two filled orders' order-id and client-id entries (3 lines each)
    assert int(prefetch_next(e.book, e.ctl)) == open_lines - 12


def test_with_the_free_stack_empty_the_prefetch_follows_the_slots_to_be_reused():
    e = engine(max_orders=2)
    e.on_orders(new_orders({}, {"side": 2}))
    sent = e.staged().orders.copy()
    e.clear()
    e.on_reports(reports(fill_for(sent[0], 0.1, 0.1), fill_for(sent[1], 0.1, 0.1)))
    assert int(prefetch_next(e.book, e.ctl)) >= 2 * (2 + 6)  # each retired row and the entries it leaves
    e.clear()
    e.on_orders(new_orders({"client_order_id": 3}, {"client_order_id": 4}))  # the hints were only hints
    assert e.counters()["orders_created"] == 4 and e.open_count == 2


def live_stage(e: OmsEngine, report_rings: int = 2) -> tuple[OmsStage, list[Ring]]:
    """An OMS stage on private rings (standing in for the shared ones), and the rings (keep them)."""
    rings = [Ring.private(layout, 64) for layout in ("order", "execution_report", "order", "order_event")]
    outs = [Ring.private("execution_report", 64) for _ in range(report_rings)]
    own = cycle_nb.OmsRings(*(array for ring in rings for array in (ring.ctrl, ring.records)))
    stage = OmsStage(e.book, e.ctl, e.out, own, tuple(r.ctrl for r in outs), tuple(r.records for r in outs),
                     e.words, new_histogram(), new_histogram(), np.zeros(32, np.int64), 16, None)
    return stage, rings + outs


def test_a_rehearsal_runs_the_quote_on_the_twin_only_and_only_when_due():
    e = engine()
    live, _rings = live_stage(e)
    twin = twin_of(live, every_ns=50_000)
    assert twin.matched
    r = twin.bundle
    before = [a.copy() for a in (*e.book, *e.ctl[:3], live.counters, live.rings.orders_ctrl, live.rings.exchange_ctrl)]
    assert rehearse_when_due(r, 10_000, 10**12, 1) == 0  # idle 10 us: not yet
    assert rehearse_when_due(r, 60_000, 10**12, 1) == 1
    # its end is stamped in the caller's clock (the one ``due`` compares), whatever the machine's uptime
    assert 10**12 <= r.clock[0] < 10**12 + 10**9
    assert rehearse_when_due(r, 60_000, 10**12 + 10_000, 1) == 0  # 10 us after the last one
    assert twin.rehearsals == 1
    # the twin published the quote to its own exchange ring and events to its own event ring
    exchange, events = twin.rings[2], twin.rings[3]
    assert exchange.producer_position == 2 and events.producer_position >= 2
    assert twin.engine.counters()["orders_created"] == 2
    after = [*e.book, *e.ctl[:3], live.counters, live.rings.orders_ctrl, live.rings.exchange_ctrl]
    assert all(old.tobytes() == new.tobytes() for old, new in zip(before, after))
    # reset before each: a second rehearsal starts from the same empty twin
    assert rehearse_when_due(r, 10**9, 10**13, 1) == 1
    assert twin.engine.counters()["orders_created"] == 2 and exchange.producer_position == 2


def test_a_twin_that_cannot_be_typed_as_the_live_oms_never_rehearses():
    e = engine()
    live, _rings = live_stage(e)
    # a strided view of a ring's records: typed apart from the twin's contiguous ones
    live = live._replace(rings=live.rings._replace(orders=live.rings.orders[::2]))
    twin = twin_of(live, every_ns=50_000)
    assert not twin.matched and twin.bundle.every_ns == 0
    assert rehearse_when_due(twin.bundle, 10**9, 10**12, 1) == 0


def test_the_rehearsal_period_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("HFTSHM_REHEARSE_US", "0")
    assert rehearse_ns() == 0
    monkeypatch.setenv("HFTSHM_REHEARSE_US", "25")
    assert rehearse_ns() == 25_000
    monkeypatch.setenv("HFTSHM_REHEARSE_US", "often")
    with pytest.raises(ValueError, match="HFTSHM_REHEARSE_US"):
        rehearse_ns()
