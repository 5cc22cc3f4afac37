"""A kernel compiled for its callers only has no Python entry (hftshm.runtime.link_only); a call
from Python then compiles it complete, in the process that compiled it and in one that finds the
callers-only copy in the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from hftshm.runtime import warm_types
    warm_types.install()
    from hftshm.runtime.link_only import has_python_entry
    from hftshm.exchange import market_view_nb as mv
    arrays = mv.allocate(1, 8)
    price, words = arrays["mv_price"], arrays["mv_i64"]
    words[0, mv.MV_FAR_N] = 3
    price[0, 0, :3] = [10, 20, 30]
    args = (price, words, 0, 0, 25)
    out = {}
    if sys.argv[1] == "caller":  # the callee compiles as part of its caller's typing
        mv._far_find(*args)
        (sig,) = mv._far_lower_bound.overloads
        out["callee_entry_after_caller"] = has_python_entry(mv._far_lower_bound.overloads[sig])
    out["callee_from_python"] = int(mv._far_lower_bound(*args))
    out["expected"] = int(mv._far_lower_bound.py_func(*args))
    out["callee_entry_after_call"] = has_python_entry(next(iter(mv._far_lower_bound.overloads.values())))
    out["caller"] = [int(v) for v in mv._far_find(*args)]
    out["caller_expected"] = [int(v) for v in mv._far_find.py_func(*args)]
    print(json.dumps(out))
""")


def _run(part: str, cache) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, part], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_callee_has_no_python_entry_until_python_calls_it(tmp_path):
    out = _run("caller", tmp_path)
    assert out["callee_entry_after_caller"] is False  # compiled for linking only: no CPython wrapper
    assert out["callee_from_python"] == out["expected"] == 2
    assert out["callee_entry_after_call"] is True
    assert out["caller"] == out["caller_expected"]


def test_a_callers_only_copy_in_the_cache_is_not_what_python_calls(tmp_path):
    """The first process caches the callee without its Python entry; a second process calling it
    from Python must compile it complete rather than call the missing wrapper."""
    first = tmp_path / "first"
    _run("caller", first)
    out = _run("python", first)
    assert out["callee_from_python"] == out["expected"] == 2
    assert out["callee_entry_after_call"] is True
    assert out["caller"] == out["caller_expected"]
