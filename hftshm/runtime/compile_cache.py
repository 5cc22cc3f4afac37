"""Fill numba's kernel cache in parallel processes before a first run, with a progress line.

A cold first ``hftshm backtest`` compiles its kernels one after another in one process: the loop
kernel pulls in the venue, the fill model, the OMS, risk, the book and the strategy, each compiled
when the caller's type inference first meets it. Most of those kernels do not depend on each
other, so they can compile at the same time in other processes; numba then loads them from the
cache (``cache=True``) when the real run meets them, and only links and optimises its own caller.

What to compile, with which argument types, and what calls what, is in the kernel manifest
(``runtime.kernel_manifest``, recorded by ``python -m hftshm.runtime.compile_cache record``,
``runtime.kernel_record``). ``warm_cache`` compiles the kernels that are not cached yet in a process
pool, each as soon as its callees are cached (so that it loads them rather than compiling them
again), a kernel only other kernels call without its Python entry (``runtime.link_only``).
"""

from __future__ import annotations

import importlib
import os
import pickle
import sys
import time

from hftshm.runtime import link_only, warm_types
from hftshm.runtime.kernel_manifest import (MANIFEST, PARSE_MODULES, PREFIX, Kernel, closure_size,  # noqa: F401
                                            dispatcher_of, is_cached, levels, load_manifest, parse_only)
from hftshm.runtime.kernel_record import (RECORD_ENV, WORKLOADS, Recorder, _merge_processes,  # noqa: F401
                                          record, record_process_if_asked)

warm_types.install()  # the manifest's signatures are the non-literal ones this records and compiles
_dispatcher = dispatcher_of  # the name compile_profile and older callers use


def _compile(task: tuple[str, str, bytes, bool]) -> tuple[str, float, str]:
    """(name, seconds, error) of compiling one kernel (in a pool worker); the cache keeps it. A kernel
    only other kernels call is compiled without its Python entry (``runtime.link_only``)."""
    module, qualname, signature, entry = task
    started = time.perf_counter()
    try:
        disp = dispatcher_of(module, qualname)
        if disp is not None and entry:
            disp.compile(tuple(pickle.loads(signature)))
        elif disp is not None:
            link_only.compile_linked(disp, tuple(pickle.loads(signature)))
        return f"{module}.{qualname}", time.perf_counter() - started, ""
    except Exception as exc:  # noqa: BLE001 - the run compiles it itself; say why here
        return f"{module}.{qualname}", time.perf_counter() - started, f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------ warming


def cold_kernels(family: str, manifest: dict[str, list[Kernel]] | None = None) -> list[Kernel]:
    kernels = (load_manifest() if manifest is None else manifest).get(family, [])
    return [k for k in kernels if not is_cached(k)]


def warm_cache(family: str = "backtest", processes: int | None = None, progress=None,
               manifest: dict[str, list[Kernel]] | None = None, parse: bool = True) -> dict:
    """Compile the family's kernels that are not cached yet, in parallel; returns a summary
    {"compiled", "failed", "wall_s", "processes"}. ``progress(done, total)`` is called as kernels
    finish (default: a "compiling kernels (first run only) k/n" line on stderr). ``parse=False``
    leaves out the kernels only the CSV parse needs (the data is parsed already, or the caller
    parses it itself meanwhile)."""
    return start_warm(family, processes, progress, manifest, parse).wait()


def start_warm(family: str = "backtest", processes: int | None = None, progress=None,
               manifest: dict[str, list[Kernel]] | None = None, parse: bool = True) -> Warming:
    """``warm_cache`` in the background: returns at once; the caller loads its data (or compiles
    what the pool leaves out) while the pool compiles, then calls ``wait()`` before its run."""
    kernels = (load_manifest() if manifest is None else manifest).get(family, [])
    skip = set() if parse else parse_only(kernels)
    todo = {i for i, k in enumerate(kernels) if i not in skip and not is_cached(k)}
    return Warming(kernels, todo, processes, progress)


class Warming:
    """A compiling pool at work on ``todo`` (its scheduling loop in a thread of this process)."""

    def __init__(self, kernels: list[Kernel], todo: set[int], processes: int | None, progress):
        import threading

        self.summary = {"compiled": 0, "failed": [], "wall_s": 0.0, "processes": 0}
        self._thread = None
        self._parse = parse_only(kernels) & todo
        self._parse_ready = threading.Event()
        if not self._parse:
            self._parse_ready.set()
        if not todo:
            return
        import multiprocessing

        self.progress = _ProgressLine() if progress is None else progress
        n = processes or max(1, min(len(os.sched_getaffinity(0)), 8))
        self.summary["processes"] = n
        self.started = time.perf_counter()
        self.progress(0, len(todo))
        for module in sorted({kernels[i].module for i in todo}):
            importlib.import_module(module)
        _initialise_compiler()
        # fork: the workers inherit the imported modules and the initialised compiler (numba's
        # import alone is ~0.5 s a process, its first compilation ~0.2 s more)
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        self._pool = ctx.Pool(n)
        self._thread = threading.Thread(target=self._run, args=(kernels, todo, n), name="compile-pool", daemon=True)
        self._thread.start()

    def _run(self, kernels: list[Kernel], todo: set[int], n: int) -> None:
        done = 0
        schedule = _schedule(kernels, todo)
        try:
            for name, error in schedule.run(self._pool, n):
                done += 1
                if error:
                    self.summary["failed"].append((name, error))
                if self._parse <= schedule.finished:
                    self._parse_ready.set()
                self.progress(done, len(todo))
        finally:
            self._pool.terminate()  # every task has reported (or the loop failed): nothing left to wait for
            self.summary["compiled"] = done - len(self.summary["failed"])
            self._parse_ready.set()

    def wait_parse(self) -> None:
        """Block until the kernels of the CSV parse are compiled (the parse can then run here, beside
        the loop kernel's compilation, where the pool has a process to spare)."""
        self._parse_ready.wait()

    def wait(self) -> dict:
        """Block until every kernel is compiled (or failed); the summary."""
        if self._thread is not None:
            self._thread.join()
            self._pool.join()
            self.summary["wall_s"] = time.perf_counter() - self.started
            if hasattr(self.progress, "finish"):
                self.progress.finish(self.summary)
            self._thread = None
        return self.summary

    def cancel(self) -> None:
        """Stop compiling (the caller gave up on its run); kernels compiled so far stay cached."""
        if self._thread is not None:
            self._pool.terminate()
            self._pool.join()
            self._thread = None


def _initialise_compiler() -> None:
    """One small compilation in this process before the pool forks, so that no worker pays numba's
    first-compilation set-up (its typing and lowering registries, LLVM's target) again."""
    from numba import njit

    njit(lambda a, b: a + b)(1, 2.0)


class _Schedule:
    """Kernels start as soon as their callees are in the cache (not level by level: a level's
    slowest kernel would hold back every kernel of the next), those with the most work in the chain
    of callers above them first (``rank``), at most one per process in flight so that order holds:
    the loop kernel's callees before kernels only a Python call needs, which then compile beside
    the loop kernel, the longest compilation, rather than before it."""

    def __init__(self, kernels: list[Kernel], deps: dict[int, set], callers: dict[int, set], rank: dict[int, int]):
        self.kernels, self.deps, self.callers, self.rank = kernels, deps, callers, rank

    def run(self, pool, processes: int):
        import queue

        results: queue.Queue = queue.Queue()
        waiting = {i: len(d) for i, d in self.deps.items()}
        ready = [i for i, count in waiting.items() if count == 0]
        in_flight = 0
        self.finished = set()
        while ready or in_flight:
            ready.sort(key=lambda i: self.rank[i])
            while ready and in_flight < processes:
                i = ready.pop()
                k = self.kernels[i]
                pool.apply_async(_compile, ((k.module, k.qualname, pickle.dumps(k.signature), k.entry),),
                                 callback=lambda r, i=i: results.put((i, r)),
                                 error_callback=lambda e, i=i: results.put((i, (self.kernels[i].name, 0.0, repr(e)))))
                in_flight += 1
            i, (name, _seconds, error) = results.get()
            in_flight -= 1
            self.finished.add(i)
            for caller in self.callers[i]:
                waiting[caller] -= 1
                if waiting[caller] == 0:
                    ready.append(caller)
            yield name, error


def _schedule(kernels: list[Kernel], todo: set[int]) -> _Schedule:
    """Dependencies among the kernels to compile; edges that close a cycle are dropped (callees by
    ``levels``: only a lower level counts)."""
    level = {i: n for n, members in enumerate(levels(kernels)) for i in members}
    deps = {i: {c for c in kernels[i].callees if c in todo and level[c] < level[i]} for i in todo}
    callers: dict[int, set] = {i: set() for i in todo}
    for i, callees in deps.items():
        for c in callees:
            callers[c].add(i)
    # a kernel's compile time grows with what is linked into it (LLVM optimises and emits its whole
    # closure again): its closure's size stands for it; rank = that along the heaviest chain of callers
    rank: dict[int, int] = {}
    for i in sorted(todo, key=lambda i: -level[i]):  # callers before their callees
        rank[i] = closure_size(kernels, i) + max((rank[p] for p in callers[i]), default=0)
    return _Schedule(kernels, deps, callers, rank)


class _ProgressLine:
    """One line on stderr: rewritten in place on a terminal, printed at start and end otherwise."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if self.tty:
            self.stream.write(f"\rcompiling kernels (first run only) {done}/{total}")
            self.stream.flush()
        elif done == 0:
            self.stream.write(f"compiling kernels (first run only) 0/{total}\n")
            self.stream.flush()

    def finish(self, summary: dict) -> None:
        elapsed = time.perf_counter() - self.started
        end = "\r" if self.tty else ""
        self.stream.write(f"{end}compiling kernels (first run only) {summary['compiled']}/"
                          f"{summary['compiled'] + len(summary['failed'])} done in {elapsed:.1f} s "
                          f"({summary['processes']} processes); cached for the next runs\n")
        self.stream.flush()


def ensure_warm(family: str = "backtest", quiet: bool = False, parse: bool = True) -> dict | None:
    """For the CLI: warm the family's kernels if any is cold (a progress line unless ``quiet``);
    never fails a run (a kernel it could not compile compiles in the run itself)."""
    warming = begin_warm(family, quiet, parse)
    return None if warming is None else warming.wait()


def begin_warm(family: str = "backtest", quiet: bool = False, parse: bool = True) -> Warming | None:
    """``ensure_warm`` in the background (None: nothing to compile); ``wait()`` on it before the run.
    ``parse=False``: the caller loads its data meanwhile (a CSV's parse kernels compile there)."""
    if os.environ.get("HFTSHM_NO_PARALLEL_COMPILE") or os.environ.get(RECORD_ENV):
        return None  # asked not to, or recording: every kernel must compile where the run needs it
    try:
        manifest = load_manifest()
        if not cold_kernels(family, manifest):
            return None
        return start_warm(family, manifest=manifest, progress=(lambda done, total: None) if quiet else None,
                          parse=parse)
    except Exception as exc:  # noqa: BLE001 - warming is an optimisation, never a reason to fail
        print(f"compiling kernels ahead failed ({type(exc).__name__}: {exc}); compiling in the run", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m hftshm.runtime.compile_cache",
                                     description="record the kernel manifest, or warm the cache from it")
    parser.add_argument("action", choices=("record", "warm", "status"))
    parser.add_argument("families", nargs="*", default=sorted(WORKLOADS))
    opts = parser.parse_args(argv)
    if opts.action == "record" and not os.environ.get("HFTSHM_RECORDING"):
        # a fresh process with an empty cache per family, so that every kernel compiles and shows
        # its callees (a kernel another family compiled first would only be loaded)
        import subprocess

        for family in opts.families:
            with tempfile.TemporaryDirectory(prefix="hftshm-record-") as tmp:
                env = dict(os.environ, NUMBA_CACHE_DIR=tmp, HFTSHM_RECORDING="1")
                code = subprocess.call([sys.executable, "-m", "hftshm.runtime.compile_cache", "record", family],
                                       env=env)
            if code:
                return code
        return 0
    if opts.action == "record":
        for family, kernels in record(opts.families).items():
            print(f"{family}: {len(kernels)} kernels in {len(levels(kernels))} levels -> {MANIFEST}")
        return 0
    manifest = load_manifest()
    for family in opts.families:
        if opts.action == "status":
            kernels = manifest.get(family, [])
            print(f"{family}: {len(kernels)} kernels, {len(cold_kernels(family, manifest))} not cached")
        else:
            print(f"{family}: {warm_cache(family, manifest=manifest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
