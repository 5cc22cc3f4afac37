"""The JetStream bridge on the real NATS server: export -> stream -> import, exactly once into the ring."""

import time

import numpy as np
import pytest

from hftshm.bridge import batch_header as bh
from hftshm.bridge.export import ExportWorker
from hftshm.bridge.importer import ImportWorker
from hftshm.bridge.nats_thread import BridgeError
from hftshm.transport import layout
from hftshm.transport.testing import temporary_rings
from tests.bridge_helpers import context, counters, drain_ring, fresh_namespace, market_events, publish_raw

MARKET = layout.load("market_event")


def _wait(predicate, timeout_s=20.0, step=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if step:
            step()
        if predicate():
            return True
        time.sleep(0.002)
    return False


def test_records_cross_in_order_and_the_end_marker_finishes_the_importer(tmp_path):
    with fresh_namespace(batch_records=500, publish_window=8) as config, \
            temporary_rings({"src": ("market_event", 4096), "dst": ("market_event", 1024)}) as rings:
        subject = config.subject("md")
        exporter = ExportWorker("src", subject)
        exporter.on_start(context("export", config, tmp_path / "a", inputs={"src": rings["src"]}))
        importer = ImportWorker("dst", subject)
        importer.on_start(context("import", config, tmp_path / "b", outputs={"dst": rings["dst"]}))
        total, sent, got = 20_000, 0, []
        try:
            def step():
                nonlocal sent
                if sent < total:
                    view = rings["src"].claim(min(700, total - sent))
                    view[:] = market_events(sent, len(view))
                    rings["src"].commit(len(view))
                    sent += len(view)
                exporter.do_work()
                importer.do_work()
                drain_ring(rings["dst"], got)  # the destination (1024) is smaller than the stream: back-pressure
            assert _wait(lambda: len(got) >= total, step=step)
            while exporter.on_drain():
                pass
            assert _wait(importer.is_done)
        finally:
            exporter.on_close()
            importer.on_close()
        assert got == list(range(total))
        assert counters(exporter)["records_exported"] == total
        seen = counters(importer)
        assert seen["records_imported"] == total and seen["duplicates_dropped"] == 0 and seen["gaps"] == 0


def test_redelivered_and_overlapping_batches_are_dropped_and_a_gap_is_reported(tmp_path):
    with fresh_namespace() as config, temporary_rings({"dst": ("market_event", 1024)}) as rings:
        subject = config.subject("md")
        batch = lambda first, n: bh.encode(MARKET.fingerprint, first, market_events(first, n), 64, epoch=5)
        publish_raw(config, subject, [batch(0, 100), batch(0, 100), batch(50, 100), batch(300, 100),
                                      bh.encode(MARKET.fingerprint, 400, b"", 64, epoch=5, flags=bh.FLAG_END)])
        importer = ImportWorker("dst", subject)
        importer.on_start(context("import", config, tmp_path, outputs={"dst": rings["dst"]}))
        got = []
        try:
            assert _wait(importer.is_done, step=importer.do_work)
            importer.do_work()
        finally:
            importer.on_close()
        drain_ring(rings["dst"], got)
        assert got == list(range(150)) + list(range(300, 400))
        seen = counters(importer)
        assert seen["duplicates_dropped"] == 150  # the whole second batch, half the third
        assert (seen["gaps"], seen["gap_records"]) == (1, 150)


def test_a_layout_mismatch_is_a_clear_error(tmp_path):
    with fresh_namespace() as config, temporary_rings({"dst": ("execution_report", 64)}) as rings:
        subject = config.subject("md")
        publish_raw(config, subject, [bh.encode(MARKET.fingerprint, 0, market_events(0, 4), 64, epoch=5)])
        importer = ImportWorker("dst", subject)
        importer.on_start(context("import", config, tmp_path, outputs={"dst": rings["dst"]}))
        try:
            with pytest.raises(BridgeError, match="layout fingerprint .* holds execution_report"):
                _wait(lambda: False, timeout_s=10, step=importer.do_work)
        finally:
            importer.on_close()
        assert rings["dst"].producer_position == 0


def test_a_restarted_importer_resumes_after_its_last_ack_without_duplicates(tmp_path):
    with fresh_namespace() as config, temporary_rings({"dst": ("market_event", 4096)}) as rings:
        subject = config.subject("md")
        batch = lambda first, n: bh.encode(MARKET.fingerprint, first, market_events(first, n), 64, epoch=9)
        publish_raw(config, subject, [batch(i * 100, 100) for i in range(10)])
        first = ImportWorker("dst", subject)
        first.on_start(context("import", config, tmp_path, outputs={"dst": rings["dst"]}))
        try:
            assert _wait(lambda: rings["dst"].producer_position == 1000, step=first.do_work)
        finally:
            first.on_close()
        # the same batches again (an exporter retrying after a NATS restart), then new ones
        publish_raw(config, subject, [batch(800, 200), batch(1000, 100)])
        second = ImportWorker("dst", subject)
        second.on_start(context("import", config, tmp_path, outputs={"dst": rings["dst"]}))
        try:
            assert _wait(lambda: rings["dst"].producer_position == 1100 and counters(second)["duplicates_dropped"]
                         == 200, step=second.do_work)
        finally:
            second.on_close()
        got = []
        drain_ring(rings["dst"], got)
        assert got == list(range(1100))
        assert counters(second)["records_imported"] == 100 and counters(second)["gaps"] == 0


def test_records_discarded_by_retention_are_reported_as_a_gap(tmp_path):
    with fresh_namespace(max_msgs=3) as config, temporary_rings({"dst": ("market_event", 4096)}) as rings:
        subject = config.subject("md")
        batch = lambda first, n: bh.encode(MARKET.fingerprint, first, market_events(first, n), 64, epoch=3)
        publish_raw(config, subject, [batch(0, 10)])
        first = ImportWorker("dst", subject)
        first.on_start(context("import", config, tmp_path, outputs={"dst": rings["dst"]}))
        try:
            assert _wait(lambda: rings["dst"].producer_position == 10, step=first.do_work)
        finally:
            first.on_close()
        # while the importer is down, 8 more batches arrive; the stream keeps only the newest 3
        publish_raw(config, subject, [batch(10 + i * 10, 10) for i in range(8)])
        second = ImportWorker("dst", subject)
        second.on_start(context("import", config, tmp_path, outputs={"dst": rings["dst"]}))
        try:
            assert _wait(lambda: rings["dst"].producer_position == 40, step=second.do_work)
            second.do_work()
        finally:
            second.on_close()
        got = []
        drain_ring(rings["dst"], got)
        assert got == list(range(10)) + list(range(60, 90))
        assert (counters(second)["gaps"], counters(second)["gap_records"]) == (1, 50)


def _order_events(first_id, n):
    events = layout.load("order_event").zeros(n)
    events["event_id"] = np.arange(first_id, first_id + n)
    events["order_id"] = 7
    events["kind"] = 1
    return events


def test_journal_reads_retained_order_events_between_ids(tmp_path):
    from hftshm.bridge.journal import Bound, read_journal

    order_event = layout.load("order_event")
    with fresh_namespace() as config:
        subject = config.subject("oms.events")
        batch = lambda first, n: bh.encode(order_event.fingerprint, first, _order_events(100 + first, n), 144, epoch=1)
        publish_raw(config, subject, [batch(0, 10), batch(10, 10),
                                      bh.encode(order_event.fingerprint, 20, b"", 144, epoch=1, flags=bh.FLAG_END)])
        everything = [b.records["event_id"].tolist() for b in read_journal(config, subject, order_event)]
        assert sum(everything, []) == list(range(100, 120))
        cut = read_journal(config, subject, order_event, Bound.parse("105", "--from"), Bound.parse("112", "--to"))
        assert sum((b.records["event_id"].tolist() for b in cut), []) == list(range(105, 113))
        with pytest.raises(BridgeError, match="fingerprint"):
            list(read_journal(config, subject, MARKET))
    with pytest.raises(ValueError, match="neither a record id"):
        Bound.parse("yesterday", "--from")


def test_an_importer_started_before_the_exporter_waits_for_its_stream(tmp_path):
    with fresh_namespace() as exporting, temporary_rings({"dst": ("market_event", 1024)}) as rings:
        subject = exporting.subject("md")
        importing = type(exporting)(url=exporting.url, namespace=exporting.namespace + "x")
        importer = ImportWorker("dst", subject)
        importer.on_start(context("import", importing, tmp_path, outputs={"dst": rings["dst"]}))
        try:
            time.sleep(0.5)  # nothing exists yet: the worker runs and waits
            importer.do_work()
            publish_raw(exporting, subject, [bh.encode(MARKET.fingerprint, 0, market_events(0, 50), 64, epoch=2)])
            assert _wait(lambda: rings["dst"].producer_position == 50, step=importer.do_work)
        finally:
            importer.on_close()


def test_journal_reads_from_a_time(tmp_path):
    import datetime as dt

    from hftshm.bridge.journal import Bound, read_journal

    with fresh_namespace() as config:
        subject = config.subject("md")
        publish_raw(config, subject, [bh.encode(MARKET.fingerprint, 0, market_events(0, 5), 64, epoch=1)])
        time.sleep(1.1)
        between = dt.datetime.now(dt.timezone.utc)
        time.sleep(0.1)
        publish_raw(config, subject, [bh.encode(MARKET.fingerprint, 5, market_events(5, 5), 64, epoch=1)])
        later = list(read_journal(config, subject, MARKET, Bound(time=between)))
        earlier = list(read_journal(config, subject, MARKET, None, Bound(time=between)))
    assert sum((b.records["seq"].tolist() for b in later), []) == [5, 6, 7, 8, 9]
    assert sum((b.records["seq"].tolist() for b in earlier), []) == [0, 1, 2, 3, 4]


def test_a_new_importing_run_begins_at_the_exporters_latest_run(tmp_path):
    def marker(epoch, flags):
        return bh.encode(MARKET.fingerprint, 0, b"", 64, epoch=epoch, flags=flags)

    with fresh_namespace() as config, temporary_rings({"old": ("market_event", 1024),
                                                       "new": ("market_event", 1024)}) as rings:
        subject = config.subject("md")
        batch = lambda epoch, first, n: bh.encode(MARKET.fingerprint, first, market_events(first, n), 64, epoch=epoch)
        publish_raw(config, subject + bh.START_SUFFIX, [marker(1, bh.FLAG_START)])
        publish_raw(config, subject, [batch(1, 0, 100)])
        first = ImportWorker("old", subject, durable="shared")
        first.on_start(context("import", config, tmp_path / "run1", outputs={"old": rings["old"]}))
        try:
            assert _wait(lambda: rings["old"].producer_position == 100, step=first.do_work)
        finally:
            first.on_close()
        # the rest of the exporter's first run (never imported), then its second run
        publish_raw(config, subject, [batch(1, 100, 100), marker(1, bh.FLAG_END)])
        publish_raw(config, subject + bh.START_SUFFIX, [marker(2, bh.FLAG_START)])
        publish_raw(config, subject, [batch(2, 0, 30), marker(2, bh.FLAG_END)])
        # a new importing run (its own run directory and manifest), same durable consumer name
        second = ImportWorker("new", subject, durable="shared")
        second.on_start(context("import", config, tmp_path / "run2", outputs={"new": rings["new"]}))
        try:
            assert _wait(second.is_done, step=second.do_work)
        finally:
            second.on_close()
        got = []
        drain_ring(rings["new"], got)
        assert got == list(range(30))


def test_a_slow_consumer_holding_a_fetched_batch_past_ack_wait_gets_no_redelivery(tmp_path):
    # 16 batches of 100 are fetched at once; the 64-slot ring drains 8 records every 20 ms, so
    # writing them takes ~4 s, many times ack_wait: without "in progress" JetStream would redeliver
    # the batch's later messages (and they would be dropped as duplicates)
    with fresh_namespace(ack_wait_s=0.5) as config, temporary_rings({"dst": ("market_event", 64)}) as rings:
        subject = config.subject("md")
        batch = lambda first, n: bh.encode(MARKET.fingerprint, first, market_events(first, n), 64, epoch=4)
        publish_raw(config, subject, [batch(i * 100, 100) for i in range(16)])
        importer = ImportWorker("dst", subject)
        importer.on_start(context("import", config, tmp_path, outputs={"dst": rings["dst"]}))
        got = []
        try:
            def step():
                importer.do_work()
                drain_ring(rings["dst"], got, max_n=8)
                time.sleep(0.02)
            assert _wait(lambda: len(got) >= 1600, timeout_s=60, step=step)
            time.sleep(1.0)  # a redelivery would arrive within ack_wait
            importer.do_work()
            drain_ring(rings["dst"], got)
        finally:
            importer.on_close()
        assert got == list(range(1600))
        seen = counters(importer)
        assert seen["duplicates_dropped"] == 0 and seen["ring_full_waits"] > 0, seen
