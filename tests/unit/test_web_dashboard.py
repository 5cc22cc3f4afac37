"""The dashboard's JSON (hftshm.web.dashboard): the feed's clock offset is on the page."""

from __future__ import annotations

from pathlib import Path

from hftshm.metrics.snapshot import WorkerSnapshot
from hftshm.web.dashboard import feed_clock

WEB = Path(__file__).resolve().parents[2] / "hftshm" / "web"


def test_live_feed_clock_offset_is_reported():
    live = WorkerSnapshot("feed", counters={"events_published": 10, "clock_offset_ms_gauge": 1270, "frames": 5})
    other = WorkerSnapshot("risk", counters={"approved": 3})
    assert feed_clock([other, live]) == {"clock_offset_ms": 1270, "live": True}


def test_replay_feed_offset_and_unknown_offset():
    replay = WorkerSnapshot("feed", counters={"events_published": 10, "clock_offset_ms_gauge": -3})
    assert feed_clock([replay]) == {"clock_offset_ms": -3, "live": False}
    starting = WorkerSnapshot("feed", counters={"events_published": 0, "clock_offset_ms_gauge": 0, "frames": 0})
    assert feed_clock([starting]) == {"clock_offset_ms": None, "live": True}  # no event yet: unknown
    assert feed_clock([WorkerSnapshot("risk")]) == {"clock_offset_ms": None, "live": False}


def test_page_has_the_offset_element_and_the_script_fills_it():
    assert 'id="clock-offset"' in (WEB / "templates" / "dashboard.html").read_text()
    script = (WEB / "static" / "dashboard.js").read_text()
    assert '"clock-offset"' in script and "clock_offset_ms" in script
