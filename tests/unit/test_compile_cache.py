"""Parallel cache warming (hftshm.runtime.compile_cache): kernels compile in pool processes, callees
before callers, into numba's cache, where the run then finds them; the progress line counts them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from hftshm.runtime.compile_cache import Kernel, _ProgressLine, levels, load_manifest


def test_levels_put_every_kernel_after_its_callees():
    kernels = [Kernel("m", "top", (), {1, 2}), Kernel("m", "mid", (), {3}), Kernel("m", "leaf_a", ()),
               Kernel("m", "leaf_b", ()), Kernel("m", "alone", ())]
    by_level = levels(kernels)
    where = {i: n for n, level in enumerate(by_level) for i in level}
    assert sorted(i for level in by_level for i in level) == list(range(5))
    for i, k in enumerate(kernels):
        assert all(where[c] < where[i] for c in k.callees), (k.qualname, by_level)
    assert where[2] == where[3] == where[4] == 0  # independent leaves compile side by side


def test_levels_survive_a_cycle():
    kernels = [Kernel("m", "a", (), {1}), Kernel("m", "b", (), {0})]
    assert sorted(i for level in levels(kernels) for i in level) == [0, 1]


def test_the_shipped_manifest_names_the_backtest_kernels():
    kernels = load_manifest().get("backtest", [])
    names = {k.name for k in kernels}
    assert len(kernels) > 50
    assert "hftshm.exchange.fill_model_nb.run_events" in names
    assert all(k.signature for k in kernels)


def test_progress_line_says_what_it_does(capsys):
    line = _ProgressLine(sys.stderr)
    line(0, 3)
    line.finish({"compiled": 3, "failed": [], "processes": 2})
    err = capsys.readouterr().err
    assert "compiling kernels (first run only) 0/3" in err and "3/3 done" in err


def test_warm_cache_compiles_in_pool_processes_into_the_cache(tmp_path):
    # a fresh interpreter: numba reads NUMBA_CACHE_DIR when it is imported
    script = textwrap.dedent("""
        import json, sys
        from numba import types
        from hftshm.runtime.compile_cache import Kernel, is_cached, warm_cache
        arr = types.Array(types.int64, 1, "C")
        family = [Kernel("hftshm.exchange.latency_nb", "draw", (arr, arr)),
                  Kernel("hftshm.exchange.market_view_nb", "event_units",
                         (types.Array(types.float64, 2, "C"), types.int64, types.float64, types.float64))]
        before = [is_cached(k) for k in family]
        seen = []
        summary = warm_cache("tiny", processes=2, manifest={"tiny": family},
                             progress=lambda done, total: seen.append((done, total)))
        print(json.dumps({"before": before, "after": [is_cached(k) for k in family], "seen": seen,
                          "compiled": summary["compiled"], "failed": summary["failed"],
                          "again": warm_cache("tiny", manifest={"tiny": family})["compiled"]}))
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["before"] == [False, False]
    assert out["after"] == [True, True] and out["compiled"] == 2 and out["failed"] == []
    assert out["seen"][0] == [0, 2] and out["seen"][-1] == [2, 2]
    assert out["again"] == 0  # a warm cache compiles nothing
    assert any(name.endswith(".nbi") for _, _, files in os.walk(tmp_path) for name in files)
