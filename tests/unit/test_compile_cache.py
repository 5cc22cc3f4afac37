"""Parallel cache warming (hftshm.runtime.compile_cache): kernels compile in pool processes, callees
before callers, into numba's cache, where the run then finds them; the progress line counts them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from hftshm.runtime.compile_cache import Kernel, _ProgressLine, levels, load_manifest, parse_only


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
    # the fill model's event pass: run_events, or run_events_and_book once the loop's books share it
    assert any(name.startswith("hftshm.exchange.fill_model_nb.run_events") for name in names)
    assert all(k.signature for k in kernels)


def test_the_shipped_manifest_names_the_run_kernels_of_every_process():
    """The run family is merged from every process of a recorded ``hftshm run``: the feed's, the
    trading process's stages and the ring API each process warms."""
    names = {k.name for k in load_manifest().get("run", [])}
    for kernel in ("hftshm.feed.replay_nb", "hftshm.oms.cycle_nb.cycle", "hftshm.risk.stage_nb",
                   "hftshm.exchange.stage_nb", "hftshm.transport.ring_nb"):
        assert any(name.startswith(kernel) for name in names), kernel


def test_parse_only_kernels_are_those_no_other_root_reaches():
    kernels = [Kernel("hftshm.feed.csv_nb", "parse_block", (), {2, 3}),
               Kernel("hftshm.backtest.simulate_nb", "run", (), {3, 4}),
               Kernel("hftshm.feed.csv_nb", "_gcd", ()), Kernel("m", "shared", ()), Kernel("m", "loop", ())]
    assert parse_only(kernels) == {0, 2}  # "shared" stays: the loop needs it too


def test_the_shipped_backtest_family_leaves_out_only_the_parse_kernels():
    kernels = load_manifest()["backtest"]
    left_out = {kernels[i].module for i in parse_only(kernels)}
    assert left_out == {"hftshm.feed.csv_nb"}
    assert any(k.name == "hftshm.backtest.simulate_nb.run" for i, k in enumerate(kernels)
               if i not in parse_only(kernels))


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


def test_the_shipped_manifest_holds_no_copy_of_a_kernel_per_constant():
    """Kernels called with constants compile once per argument type (runtime.warm_types): a literal
    in a recorded signature would be a kernel compiled again for one call site's value."""
    from numba import types

    literal = [k.name for kernels in load_manifest().values() for k in kernels
               if any(isinstance(t, types.Literal) for t in k.signature)]
    assert literal == []


def test_a_recorded_run_merges_what_every_process_compiled(tmp_path):
    """Two processes of one recorded run sharing a cache: the second loads the first's kernel and
    compiles its caller; the merged family holds both, with the edge, so the caller waits for it."""
    script = textwrap.dedent("""
        import sys
        from hftshm.runtime.compile_cache import record_process_if_asked
        record_process_if_asked()
        from hftshm.exchange import market_view_nb as mv
        arrays = mv.allocate(1, 8)
        if sys.argv[1] == "leaf":
            mv._far_lower_bound(arrays["mv_price"], arrays["mv_i64"], 0, 0, 5)
        else:
            mv._far_find(arrays["mv_price"], arrays["mv_i64"], 0, 0, 5)
    """)
    record_dir = tmp_path / "record"
    record_dir.mkdir()
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), HFTSHM_RECORD_KERNELS=str(record_dir))
    for part in ("leaf", "caller"):
        proc = subprocess.run([sys.executable, "-c", script, part], env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list(record_dir.glob("*.kernels"))) == 2
    from hftshm.runtime.compile_cache import _merge_processes

    kernels = _merge_processes(record_dir)
    names = [k.qualname for k in kernels]
    assert sorted(names) == ["_far_find", "_far_lower_bound"]
    caller = kernels[names.index("_far_find")]
    assert caller.callees == {names.index("_far_lower_bound")}
    assert [sorted(kernels[i].qualname for i in level) for level in levels(kernels)] == [["_far_lower_bound"],
                                                                                         ["_far_find"]]


def test_schedule_starts_a_kernel_only_after_its_callees_and_the_longest_chain_first():
    from hftshm.runtime.compile_cache import _schedule

    kernels = [Kernel("m", "top", (), {1}), Kernel("m", "mid", (), {2}), Kernel("m", "leaf", ()),
               Kernel("m", "alone", ()), Kernel("m", "cached_callee", ())]
    started, finished = [], []

    class InstantPool:  # finishes each compilation as soon as it is submitted
        def apply_async(self, fn, args, callback, error_callback):
            started.append(args[0][1])
            callback((args[0][1], 0.0, ""))

    for name, error in _schedule(kernels, {0, 1, 2, 3}).run(InstantPool(), processes=1):
        finished.append(name)
        assert error == ""
    assert started == ["leaf", "mid", "top", "alone"]  # leaf heads the longest chain of callers
    assert sorted(finished) == ["alone", "leaf", "mid", "top"]


def test_schedule_puts_the_loop_kernels_closure_before_a_longer_chain_of_small_kernels():
    """Priority is the work (closure size) along the chain of callers, not the number of kernels in
    it: the loop's six callees and the loop itself, the longest compilation, start before a
    three-kernel chain only a Python call needs, which then compiles beside the loop."""
    from hftshm.runtime.compile_cache import _schedule

    leaves = [Kernel("m", f"leaf{n}", ()) for n in range(6)]
    kernels = [Kernel("m", "loop", (), set(range(1, 7))), *leaves,
               Kernel("m", "x1", (), {8}), Kernel("m", "x2", (), {9}), Kernel("m", "x3", ())]
    started = []

    class InstantPool:
        def apply_async(self, fn, args, callback, error_callback):
            started.append(args[0][1])
            callback((args[0][1], 0.0, ""))

    list(_schedule(kernels, set(range(len(kernels)))).run(InstantPool(), processes=1))
    assert sorted(started[:6]) == [f"leaf{n}" for n in range(6)]
    assert started[6:] == ["loop", "x3", "x2", "x1"]
