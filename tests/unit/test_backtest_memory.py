"""A long backtest keeps its memory flat: the loop reads the mapped events in windows and drops
the pages behind it, so 20 days cost about what one day costs (hftbacktest loads everything)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hftshm.backtest.data import EVENT_DTYPE, load_events, release_passed
from hftshm.symbols import DEFAULT_SYMBOLS

DAY = Path(__file__).resolve().parents[2] / "data" / "btcusdt_20240808.csv.gz"

# a fresh process per run: ru_maxrss is the process's peak, numba's kernels come from the cache
_CHILD = r"""
import json, resource, sys
from hftshm.backtest.api import run_backtest
result = run_backtest(None, sys.argv[1], "market_maker", {}, seed=1, engine_name="compiled")
print(json.dumps({"peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "rows": result.rows,
                  "fills": result.trades}))
"""


def _copies(day: np.ndarray, copies: int, path: Path) -> Path:
    """``copies`` days back to back in one .npy (times, sequence numbers and update ids shifted so
    every copy follows the one before), written a copy at a time."""
    span_ns = int(day["exch_ts_ns"][-1] - day["exch_ts_ns"][0]) + 1_000_000_000
    uid_span = int(day["update_id"].max() - day["update_id"].min()) + 1
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(EVENT_DTYPE),
                                                      "fortran_order": False, "shape": (copies * len(day),)})
        for k in range(copies):
            part = np.array(day)
            for field in ("exch_ts_ns", "local_ts_ns", "publish_ts_ns"):
                part[field] += k * span_ns
            part["seq"] += k * len(day)
            part["update_id"] += k * uid_span
            handle.write(part.tobytes())
    return path


def _run(path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_twenty_days_peak_rss_stays_within_one_and_a_half_of_one_day(tmp_path):
    day = load_events(DAY, DEFAULT_SYMBOLS)[0]
    one = _copies(day, 1, tmp_path / "one.npy")
    twenty = _copies(day, 20, tmp_path / "twenty.npy")
    _run(one)  # compiles (or loads) the kernels, so the measured runs hold the same code
    single, long = _run(one), _run(twenty)
    assert long["rows"] == 20 * single["rows"]
    assert long["fills"] > 10 * single["fills"]  # the loop really traded through every copy
    ratio = long["peak_kb"] / single["peak_kb"]
    assert ratio <= 1.5, (f"peak RSS {long['peak_kb'] / 1024:.0f} MB over 20 days vs {single['peak_kb'] / 1024:.0f} MB "
                          f"over one ({ratio:.2f}x); the 20-day file is {twenty.stat().st_size / 2**20:.0f} MB")


def test_passed_pages_of_a_read_only_map_leave_the_process(tmp_path):
    """``release_passed`` drops what the loop has read (RSS falls back), and touches nothing that is
    not a read-only file map (an in-memory array keeps its data)."""
    psutil = pytest.importorskip("psutil")
    n = 1_000_000  # 64 MB of records
    path = tmp_path / "events.npy"
    np.save(path, np.zeros(n, EVENT_DTYPE))
    events = np.load(path, mmap_mode="r")
    process = psutil.Process()
    before = process.memory_info().rss
    assert int(events["flags"].sum()) == 0  # touches every page
    touched = process.memory_info().rss
    release_passed(np.ascontiguousarray(events), n)  # a view of the map, as the loop is given it
    released = process.memory_info().rss
    assert touched - before > 48 * 2**20
    assert released - before < 8 * 2**20
    in_memory = np.ones(1000, EVENT_DTYPE)
    release_passed(in_memory, len(in_memory))
    assert (in_memory["flags"] == 1).all()
