"""What a cold start spends its CPU on: every kernel of a family compiled once, callees first, timed.

``python -m hftshm.runtime.compile_profile backtest`` runs in a fresh process with an EMPTY numba
cache (a temporary ``NUMBA_CACHE_DIR``), compiles the manifest's kernels (``runtime.compile_cache``)
one after another in dependency order in that one process, and prints the CPU seconds of each,
the slowest first, with totals per kernel (all its signatures) and per module. A kernel's figure is
its own typing and optimisation with its callees already compiled: what the compiling pool pays for
it, since the pool too compiles a kernel only once its callees are cached, and as the pool does, a
kernel only other kernels call without its Python entry (``runtime.link_only``). ``inline="always"``
callees are copied into every caller, so their cost shows in the callers' figures.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

from hftshm.runtime import compile_cache, link_only


def profile(family: str) -> list[tuple[str, str, float]]:
    """[(kernel name, LLVM wall s, CPU s)] in compile order; call with an empty cache."""
    kernels = compile_cache.load_manifest().get(family, [])
    order = [i for level in compile_cache.levels(kernels) for i in level]
    timings = []
    for i in order:
        k = kernels[i]
        disp = compile_cache._dispatcher(k.module, k.qualname)
        if disp is None:
            continue
        started = time.process_time()
        try:
            signature = tuple(pickle.loads(pickle.dumps(k.signature)))
            disp.compile(signature) if k.entry else link_only.compile_linked(disp, signature)
        except Exception as exc:  # noqa: BLE001 - a stale manifest entry: say so, go on
            print(f"{k.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        seconds = time.process_time() - started
        cres = disp.overloads.get(tuple(k.signature))
        llvm_s = (getattr(cres, "metadata", None) or {}).get("timers", {}).get("llvm_lock", float("nan"))
        timings.append((k.name, llvm_s, seconds))
    return timings


def report(family: str, timings: list[tuple[str, float, float]], top: int = 25) -> str:
    """The slowest kernels (all their signatures) and modules, CPU s, with LLVM's wall share."""
    by_kernel: dict[str, list[tuple[float, float]]] = defaultdict(list)
    by_module: dict[str, float] = defaultdict(float)
    for name, llvm_s, seconds in timings:
        by_kernel[name].append((llvm_s, seconds))
        by_module[name.rsplit(".", 1)[0]] += seconds
    total = sum(s for _, _, s in timings)
    llvm = sum(l for _, l, _ in timings if l == l)
    lines = [f"{family}: {len(timings)} signatures of {len(by_kernel)} kernels, {total:.1f} CPU-s serial "
             f"(LLVM {llvm:.1f} s wall of it)", "   CPU s   LLVM s  kernel (all signatures)"]
    for name, secs in sorted(by_kernel.items(), key=lambda kv: -sum(s for _, s in kv[1]))[:top]:
        lines.append(f"  {sum(s for _, s in secs):6.2f}  {sum(l for l, _ in secs):6.2f}   {name}"
                     + (f"  ({len(secs)} signatures)" if len(secs) > 1 else ""))
    lines.append("   CPU s  module")
    for module, secs in sorted(by_module.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {secs:6.2f}  {module}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    families = (argv if argv is not None else sys.argv[1:]) or ["backtest"]
    if not os.environ.get("HFTSHM_PROFILING"):
        for family in families:  # a fresh process, an empty cache per family
            with tempfile.TemporaryDirectory(prefix="hftshm-profile-") as tmp:
                env = dict(os.environ, NUMBA_CACHE_DIR=tmp, HFTSHM_PROFILING="1")
                code = subprocess.call([sys.executable, "-m", "hftshm.runtime.compile_profile", family], env=env)
            if code:
                return code
        return 0
    for family in families:
        print(report(family, profile(family)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
