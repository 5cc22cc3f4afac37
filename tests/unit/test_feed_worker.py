"""FeedWorker: routes by ring layout, counts, finishes, and resumes after a restart."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from hftshm.config import ConfigError, Section
from hftshm.feed.config import FeedConfig
from hftshm.feed.testing import write_tick_csv
from hftshm.feed.worker import FeedWorker
from hftshm.metrics.histogram import new_histogram, summarize
from hftshm.runtime.worker import WorkerContext
from hftshm.transport.ring import Ring
from hftshm.transport.testing import unique_name

T = 1_723_161_256_000_000_000


def _csv(path, n=300):
    rows = [(T, T - 1_270_000_000, "BTCUSDT", "snapshot", "buy", "100.0", "1.000", 1),
            (T, T - 1_270_000_000, "BTCUSDT", "snapshot", "sell", "100.5", "1.000", 1)]
    for i in range(1, n):
        rows.append((T + i * 1000, T + i * 1000 - 1_270_000_000 + i % 7, "BTCUSDT", "depth", "buy",
                     f"{99 + (i % 10) / 10:.1f}", f"{i % 4}.000", 1 + i))
    return write_tick_csv(path, rows)


def _ctx(outputs, counters=None):
    return WorkerContext(name="feed", params={}, inputs={}, outputs=outputs, config=None,
                         counters=np.zeros(32, np.int64) if counters is None else counters,
                         histograms={"exch_to_recv": new_histogram(), "recv_to_publish": new_histogram()},
                         run_dir=Path("."), log=logging.getLogger("test.feed"))


@pytest.fixture
def rings():
    made = {"md": Ring.create(unique_name("md"), "market_event", 1 << 10),
            "book": Ring.create(unique_name("bk"), "book_snapshot", 1 << 10)}
    yield made
    for ring in made.values():
        ring.close()
        ring.unlink()


def _run(worker, rings, limit=None):
    got = {name: [] for name in rings}
    steps = 0
    while not worker.is_done() and (limit is None or steps < limit):
        worker.do_work()
        steps += 1
        for name, ring in rings.items():
            view = ring.poll(1 << 10)
            got[name].append(view.copy())
            ring.release()
    return {name: np.concatenate(v) for name, v in got.items()}


def test_worker_publishes_everything_and_counts(tmp_path, rings):
    worker = FeedWorker(data=[str(_csv(tmp_path / "d.csv"))], speed=0, batch_events=64)
    ctx = _ctx(rings)
    worker.on_start(ctx)
    got = _run(worker, rings)
    worker.on_close()
    names = FeedWorker.COUNTER_NAMES
    c = dict(zip(names, ctx.counters))
    assert names[0] == "events_published" and names[1] == "events_total"
    assert c["events_published"] == c["events_total"] == len(got["md"]) == 302  # clear + 2 snapshot levels + 299
    assert c["snapshots_published"] == len(got["book"]) == 300
    assert c["clock_offset_ms_gauge"] == -1270 and c["gaps"] == 0 and c["book_rejects"] == 0
    assert summarize(ctx.histograms["exch_to_recv"]).count == 299  # depth events
    assert summarize(ctx.histograms["recv_to_publish"]).count == 302
    assert worker.on_drain() == 0


def test_restarted_worker_resumes_after_what_it_published(tmp_path, rings):
    data = str(_csv(tmp_path / "d.csv"))
    first = FeedWorker(data=[data], speed=0, batch_events=50)
    ctx = _ctx(rings)
    first.on_start(ctx)
    partial = _run(first, rings, limit=3)
    published = int(ctx.counters[0])
    assert 0 < published < 302 and len(partial["md"]) == published
    # the process dies; the status row keeps the counters; a new worker takes over the rings
    second = FeedWorker(data=[data], speed=0, batch_events=50)
    second.on_start(_ctx(rings, counters=ctx.counters))
    rest = _run(second, rings)
    events = np.concatenate([partial["md"], rest["md"]])
    assert len(events) == 302
    assert list(events["update_id"][3:]) == list(range(2, 301))
    snaps = np.concatenate([partial["book"], rest["book"]])
    assert snaps[-1]["bid_px"][0] == second.replayer.books["BTCUSDT"].best_bid


def test_missing_data_file_is_a_config_error(tmp_path, rings):
    worker = FeedWorker(data=[str(tmp_path / "none.csv.gz")])
    with pytest.raises(ConfigError, match="feed.data: .*none.csv.gz does not exist"):
        worker.on_start(_ctx(rings))


def test_config_defaults_and_errors():
    config = FeedConfig.from_section(Section("feed", {}))
    assert config.data == ("data/btcusdt_20240808.csv.gz",) and config.speed == 1.0 and config.book_levels == 10
    assert config.data_paths()[0].exists()  # the shipped day is found from any working directory
    assert FeedConfig.from_section(Section("feed", {"data": "x.csv", "speed": 0})).data == ("x.csv",)
    for raw, text in (({"speed": -1}, "feed.speed"), ({"book_levels": 11}, "feed.book_levels"),
                      ({"data": []}, "feed.data"), ({"data": [3]}, "feed.data"), ({"sped": 1}, "unknown key"),
                      ({"strict": "yes"}, "feed.strict"), ({"batch_events": 0}, "feed.batch_events")):
        with pytest.raises(ConfigError, match=text):
            FeedConfig.from_section(Section("feed", raw))


def test_paced_feed_sleeps_through_gaps_instead_of_spinning(tmp_path, rings):
    import time

    from hftshm.feed.worker import PACE_LEAD_NS

    # messages 1 us apart at speed 5e-5: 20 ms of wall time between them
    worker = FeedWorker(data=[str(_csv(tmp_path / "d.csv"))], speed=0.00005, batch_events=64)
    ctx = _ctx(rings)
    worker.on_start(ctx)
    wall0, cpu0 = time.monotonic(), time.process_time()
    published = 0
    while published < 9:
        worker.do_work()
        published = int(ctx.counters[0])
        for ring in rings.values():
            ring.poll(1 << 10)
            ring.release()
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    worker.on_close()
    sleeps = ctx.counters[FeedWorker.COUNTER_NAMES.index("pace_sleeps")]
    assert sleeps >= 2  # it slept through the gaps (a busy machine may make a few due at once)
    assert wall > 0.05 and cpu < 0.5 * wall  # and did not burn the wall time spinning
    assert PACE_LEAD_NS < 20_000_000


def test_paced_feed_prefetches_its_books_and_code_in_the_last_stretch_before_an_event(tmp_path, rings,
                                                                                      monkeypatch):
    import time

    from hftshm.feed.worker import PACE_LEAD_NS
    from hftshm.runtime import keep_warm_nb

    worker = FeedWorker(data=[str(_csv(tmp_path / "d.csv"))], speed=0.00005, batch_events=64)
    ctx = _ctx(rings)
    for ring in rings.values():
        ring.register_producer()  # as the feed's process does when it attaches, before the worker starts
    worker.on_start(ctx)
    regions, out_rings = worker._warm_table  # built at start, not at the first gap
    books = worker.replayer.books.arrays
    assert any(r[0] == books[0].ctypes.data for r in regions if r[2] == keep_warm_nb.READ) == (books[0].nbytes <= 16384)
    assert not any(r[2] == keep_warm_nb.CODE for r in regions)  # its spin runs the replay's code anyway
    assert len(out_rings) == len(rings)  # every output ring's next slots
    assert worker._warm_last_ns > 0  # one pull at start: its kernel compiled or loaded then, not in a step
    worker.do_work()  # the first message goes out; the next is 20 ms away
    # far from the next event it sleeps; in the last stretch before it (under PACE_LEAD_NS plus the
    # shortest sleep) it prefetches, once per period
    due = time.perf_counter_ns() + PACE_LEAD_NS + 10_000
    monkeypatch.setattr(worker.replayer, "next_due_ns", lambda: due)
    worker._sleep_until_due()
    first = worker._warm_last_ns
    assert first > 0
    worker._prefetch(first + 1)
    assert worker._warm_last_ns == first  # within the period: not again
    worker._prefetch(first + worker._warm_period_ns)
    assert worker._warm_last_ns == first + worker._warm_period_ns
    worker.on_close()

    monkeypatch.setenv("HFTSHM_KEEP_WARM_US", "0")
    cold = FeedWorker(data=[str(_csv(tmp_path / "d.csv"))], speed=0.00005, batch_events=64)
    cold.on_start(_ctx(rings))
    cold._prefetch(10 ** 12)
    assert cold._warm_table is None and cold._warm_last_ns == 0
    cold.on_close()
