"""The metrics shared-memory segment: create, attach from elsewhere, record, validate names."""

from __future__ import annotations

import multiprocessing as mp
import os
import uuid

import numpy as np
import pytest

from hftshm.metrics import histogram as h
from hftshm.metrics.histogram_nb import COUNT, MAX_NS
from hftshm.metrics.segment import MetricsSegment, MetricsSegmentError

NAMES = ["feed.exch_to_recv", "strategies.tick_to_intent", "risk.check", "oms.hop", "exchange.hop",
         "pipeline.tick_to_order"]


@pytest.fixture
def seg_name():
    name = f"hftshm_{os.getpid()}_{uuid.uuid4().hex[:10]}_test_metrics"
    yield name
    assert not os.path.exists(f"/dev/shm/{name}"), "segment left behind"


def _record_in_child(name: str, hist: str, values: list[int]) -> None:
    seg = MetricsSegment.attach(name)
    view = seg.histogram(hist)
    h.record_many(view, np.array(values, dtype=np.int64))
    del view
    seg.close()


def test_create_attach_and_record_across_processes(seg_name):
    with MetricsSegment.create(seg_name, NAMES) as seg:
        proc = mp.get_context("spawn").Process(target=_record_in_child, args=(seg_name, "risk.check", [100, 200, 300]))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        snap = seg.snapshot()
        assert snap["risk.check"][COUNT] == 3 and snap["risk.check"][MAX_NS] == 300
        assert snap["oms.hop"][COUNT] == 0
        reader = MetricsSegment.attach(seg_name)
        assert reader.names == tuple(NAMES)
        assert reader.created_unix_ns == seg.created_unix_ns > 0
        assert h.summarize(reader.histogram("risk.check")).p50_ns == 200
        reader.close()


def test_histograms_are_independent_views(seg_name):
    with MetricsSegment.create(seg_name, NAMES) as seg:
        views = seg.histograms(["oms.hop", "exchange.hop"])
        h.record(views["oms.hop"], 42)
        assert seg.histogram("oms.hop")[COUNT] == 1
        assert seg.histogram("exchange.hop")[COUNT] == 0
        with pytest.raises(KeyError, match="no histogram 'nope'"):
            seg.histogram("nope")
        del views


@pytest.mark.parametrize("names, message", [
    (["a", "a"], "given twice"),
    ([""], "non-empty"),
    (["x" * 64], "longer than"),
])
def test_bad_names_are_refused(seg_name, names, message):
    with pytest.raises(MetricsSegmentError, match=message):
        MetricsSegment.create(seg_name, names)


def test_attach_missing_or_duplicate_create_is_a_clear_error(seg_name):
    with pytest.raises(MetricsSegmentError, match="no metrics segment"):
        MetricsSegment.attach(seg_name)
    with MetricsSegment.create(seg_name, ["a.b"]):
        with pytest.raises(MetricsSegmentError, match="already exists"):
            MetricsSegment.create(seg_name, ["a.b"])
