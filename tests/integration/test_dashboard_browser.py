"""The dashboard in a real headless Chromium, while the data behind it changes: numbers, tables and
SVG charts show live values (not placeholders), they move between two loads, and a screenshot is
kept in artifacts/dashboard.png."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.integration.monitoring_server import live_stack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
PLACEHOLDER = "—"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (apt-get install chromium)")]


class ById(HTMLParser):
    """Text content and attributes of every element with an id, and counts of SVG paths by parent id."""

    def __init__(self):
        super().__init__()
        self.text: dict[str, str] = {}
        self.attrs: dict[str, dict] = {}
        self.stack: list[str | None] = []
        self.paths: dict[str, int] = {}
        self.rows: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        element_id = attributes.get("id")
        if element_id:
            self.attrs[element_id] = attributes
            self.text.setdefault(element_id, "")
        self.stack.append(element_id)
        open_ids = [i for i in self.stack if i]
        if tag == "path":
            for i in open_ids:
                self.paths[i] = self.paths.get(i, 0) + 1
        if tag == "tr" and "empty" not in (attributes.get("class") or ""):
            for i in open_ids:
                self.rows[i] = self.rows.get(i, 0) + 1
        if tag in ("path", "circle", "stop", "rect", "line", "input", "link", "meta", "br"):
            self.stack.pop()  # void or self-closed in the serialised DOM

    def handle_endtag(self, tag):
        if tag in ("path", "circle", "stop", "rect", "line", "input", "link", "meta", "br"):
            return
        if self.stack:
            self.stack.pop()

    def handle_data(self, data):
        for element_id in [i for i in self.stack if i]:
            self.text[element_id] += data


def chromium(url: str, profile: Path, *extra: str) -> str:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--window-size=1600,1500", "--hide-scrollbars",
               "--virtual-time-budget=4000", *extra, url]
    result = subprocess.run(command, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return result.stdout.decode()


def load(url: str, profile: Path) -> ById:
    parser = ById()
    dom = chromium(url, profile, "--dump-dom")
    parser.feed(dom)
    chart = dom[dom.index('id="pnl-chart"'):]
    chart = chart[:chart.index("</svg>")]
    # the PnL chart's time-axis labels (the value labels have no colon)
    parser.time_labels = [t for t in re.findall(r'class="axis-label"[^>]*>([^<]*)<', chart) if ":" in t]
    return parser


def number(text: str) -> float:
    match = re.search(r"[−-]?[\d,]+(\.\d+)?", text)
    assert match, f"no number in {text!r}"
    return float(match.group(0).replace(",", "").replace("−", "-"))


def test_dashboard_shows_live_data_in_chromium(tmp_path):
    with live_stack(step_interval_s=0.15) as (url, rig, _):
        # the server samples its charts' history on each poll: give it a few seconds of it
        for _ in range(6):
            urllib.request.urlopen(url + "/dashboard/data", timeout=10).read()
            time.sleep(0.55)
        first = load(url + "/dashboard", tmp_path / "profile1")
        time.sleep(1.0)
        second = load(url + "/dashboard", tmp_path / "profile2")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        shot.unlink(missing_ok=True)
        chromium(url + "/dashboard", tmp_path / "profile3", f"--screenshot={shot}")

    page = first
    assert page.text["status-pill"].strip() == "LIVE"
    for element_id in ("kpi-ticks", "kpi-orders", "kpi-fills", "kpi-pnl", "kpi-t2o", "risk-checked"):
        assert PLACEHOLDER not in page.text[element_id] and page.text[element_id].strip(), element_id
    assert number(page.text["kpi-ticks"]) > 0 and number(page.text["kpi-orders"]) > 0
    assert re.search(r"(ns|µs|ms)$", page.text["kpi-t2o"].strip())
    # charts: a PnL curve with several points, sparklines drawn
    assert int(page.attrs["pnl-chart"]["data-points"]) >= 3
    assert page.paths.get("pnl-chart", 0) >= 4 and page.paths.get("spark-ticks", 0) >= 2
    # a few seconds of history: the time axis still reads as distinct times (once every label was
    # the same second)
    labels = page.time_labels
    assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
    # tables filled from the stack: one latency row per histogram, workers, rings, positions, orders, trades
    assert page.rows["latency-table"] == 1 + 6
    assert page.rows["workers-table"] == 1 + 5
    assert page.rows["positions-table"] == 1 + 2
    assert page.rows["orders-table"] > 1 and page.rows["trades-table"] > 1
    assert "md.strategies" in page.text["rings"]
    assert page.text["workers-summary"].strip() == "5/5 up"
    assert page.text["kill-badge"].strip() == "KILL SWITCH OFF"
    assert "µs" in page.text["latency-table"] or "ns" in page.text["latency-table"]
    # live: the second load, a second later, shows more ticks than the first
    assert number(second.text["kpi-ticks-total"]) > number(first.text["kpi-ticks-total"])
    assert shot.exists() and shot.stat().st_size > 50_000


def test_pnl_time_axis_reads_distinct_times_on_a_short_window(tmp_path):
    """About two seconds of history (samples every 0.5 s): labels in tenths, never one second twice."""
    with live_stack(step_interval_s=0.05) as (url, rig, _):
        for _ in range(4):
            urllib.request.urlopen(url + "/dashboard/data", timeout=10).read()
            time.sleep(0.55)
        page = load(url + "/dashboard", tmp_path / "profile")
    labels = page.time_labels
    assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
