"""The recorder's files (hftshm.feed.live_record): lines as the import reads them, rotation by UTC
day and by size (each new file asks for its own snapshot), bare snapshots as the shipped files."""

from __future__ import annotations

import gzip

from hftshm.feed.live_client import Subscription, market_for
from hftshm.feed.live_record import NS_PER_DAY, Recorder
from hftshm.feed.testing import depth, snapshot

SUB = Subscription(market_for("usdm"), ("BTCUSDT",))


class _SnapshotRequests(list):
    """Stands in for the client: what the recorder asked it for."""

    def request_snapshot(self, market: str, symbol: str) -> None:
        self.append((market, symbol))


def _frame(line: str) -> bytes:
    return line.partition(" ")[2].encode()


def _lines(path):
    with gzip.open(path, "rt") as handle:
        return handle.read().splitlines()


def test_lines_and_a_day_rotation(tmp_path):
    rec = Recorder(tmp_path, [SUB])
    rec.client = requests = _SnapshotRequests()
    day = 19_800 * NS_PER_DAY
    rec.on_frame("usdm", day - 10, _frame(depth(1, 10, 19, pu=9, bids=[("1.0", "1.0")])))
    body = _frame(snapshot(2, 15, bids=[("1.0", "2.0")]))
    rec.on_snapshot("usdm", "BTCUSDT", day - 5, body)
    rec.on_frame("usdm", day + 1, _frame(depth(3, 20, 29, pu=19)))
    report = rec.close()
    first, second = report.files
    assert first.name == "binance_usdm_btcusdt_20240317.gz" and second.name == "binance_usdm_btcusdt_20240318.gz"
    lines = _lines(first)
    assert lines[0].startswith(f"{day - 10} {{\"stream\":\"btcusdt@depth@0ms\"")
    assert lines[1] == f"{day - 5} {body.decode()}"  # the REST body, bare, as the shipped recordings
    assert _lines(second) == [f"{day + 1} {_frame(depth(3, 20, 29, pu=19)).decode()}"]
    assert requests == [("usdm", "BTCUSDT")]  # the new day's file starts with a fresh snapshot
    assert report.frames == 2 and report.snapshots == 1 and not report.gaps


def test_size_rotation_never_overwrites_and_gaps_ask_for_snapshots(tmp_path):
    rec = Recorder(tmp_path, [SUB], rotate_bytes=1)
    rec.client = requests = _SnapshotRequests()
    t = 19_800 * NS_PER_DAY
    rec.on_frame("usdm", t, _frame(depth(1, 10, 19, pu=9)))
    rec.on_snapshot("usdm", "BTCUSDT", t + 1, _frame(snapshot(2, 15)))
    for k in range(3):
        rec.on_frame("usdm", t + 2 + k, _frame(depth(3 + k, 20 + 10 * k, 29 + 10 * k, pu=19 + 10 * k)))
    rec.on_frame("usdm", t + 9, _frame(depth(9, 100, 109, pu=99)))  # ids 60..99 never arrived
    report = rec.close()
    names = [p.name for p in report.files]
    assert len(names) == len(set(names)) > 1 and names[1] == "binance_usdm_btcusdt_20240318.1.gz"
    assert sum(len(_lines(p)) for p in report.files) == 6
    [gap] = report.gaps
    assert gap.expected_id == 49 and gap.got_id == 99
    assert ("usdm", "BTCUSDT") in requests
