"""Fill numba's kernel cache in parallel processes before a first run, with a progress line.

A cold first ``hftshm backtest`` compiles its kernels one after another in one process: the loop
kernel pulls in the venue, the fill model, the OMS, risk, the book and the strategy, each compiled
when the caller's type inference first meets it. Most of those kernels do not depend on each
other, so they can compile at the same time in other processes; numba then loads them from the
cache (``cache=True``) when the real run meets them, and only links and optimises its own caller.

What to compile, with which argument types, and what calls what, is recorded once, by running the
workload with an empty cache (``python -m hftshm.runtime.compile_cache record``), into
``kernels.manifest`` next to this module: per kernel family ("backtest", ...), every hftshm
kernel compiled, its signature (numba types, pickled) and its callees. ``warm_cache`` compiles
the kernels that are not cached yet in a process pool, each as soon as its callees are cached (so
that it loads them rather than compiling them again).

A manifest older than the code only costs time: a signature nobody uses any more is compiled for
nothing, a kernel missing from it compiles in the run as before. Re-record after changing which
kernels the loop calls.
"""

from __future__ import annotations

import importlib
import os
import pickle
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from hftshm.runtime import link_only, warm_types

warm_types.install()  # the manifest's signatures are the non-literal ones this records and compiles
MANIFEST = Path(__file__).with_name("kernels.manifest")
PREFIX = "hftshm."


@dataclass
class Kernel:
    module: str
    qualname: str
    signature: tuple  # numba types of the arguments
    callees: set = field(default_factory=set)  # indices into the family's kernel list
    entry: bool = True  # called from Python: compiled with its Python entry (else for linking only)

    @property
    def name(self) -> str:
        return f"{self.module}.{self.qualname}"


# ------------------------------------------------------------------ looking kernels up


def _dispatcher(module: str, qualname: str):
    from numba.core.dispatcher import Dispatcher

    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, Dispatcher) else None


def is_cached(kernel: Kernel) -> bool:
    """The kernel's signature is in numba's cache index, for this source and this machine."""
    disp = _dispatcher(kernel.module, kernel.qualname)
    if disp is None or disp._cache is None or not hasattr(disp._cache, "_cache_file"):
        return True  # nothing we could compile ahead
    try:
        key = disp._cache._index_key(tuple(kernel.signature), disp.targetctx.codegen())
        return key in disp._cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - numba internals moved: treat as cached, the run compiles what it needs
        return True


def _compile(task: tuple[str, str, bytes, bool]) -> tuple[str, float, str]:
    """(name, seconds, error) of compiling one kernel (in a pool worker); the cache keeps it. A kernel
    only other kernels call is compiled without its Python entry (``runtime.link_only``)."""
    module, qualname, signature, entry = task
    started = time.perf_counter()
    try:
        disp = _dispatcher(module, qualname)
        if disp is not None and entry:
            disp.compile(tuple(pickle.loads(signature)))
        elif disp is not None:
            link_only.compile_linked(disp, tuple(pickle.loads(signature)))
        return f"{module}.{qualname}", time.perf_counter() - started, ""
    except Exception as exc:  # noqa: BLE001 - the run compiles it itself; say why here
        return f"{module}.{qualname}", time.perf_counter() - started, f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------ the manifest


def load_manifest(path: Path = MANIFEST) -> dict[str, list[Kernel]]:
    """{family: [Kernel, ...]}; empty if there is none or it cannot be read by this numba."""
    try:
        with open(path, "rb") as f:
            raw = pickle.load(f)
    except Exception:  # noqa: BLE001 - a manifest from another numba version: warm nothing
        return {}
    # (module, qualname, signature, callees[, entry]): a manifest without the entry flag compiles
    # every kernel with its Python entry, as it was recorded for
    return {family: [Kernel(m, q, sig, set(c), *entry) for m, q, sig, c, *entry in kernels]
            for family, kernels in raw.items()}


def levels(kernels: list[Kernel]) -> list[list[int]]:
    """Kernel indices by level: level 0 calls no other recorded kernel, level k only lower ones."""
    level: dict[int, int] = {}

    def depth(i: int, seen: frozenset = frozenset()) -> int:
        if i in level:
            return level[i]
        callees = [c for c in kernels[i].callees if c not in seen and c != i]
        level[i] = 1 + max((depth(c, seen | {i}) for c in callees), default=-1)
        return level[i]

    by_level: dict[int, list[int]] = defaultdict(list)
    for i in range(len(kernels)):
        by_level[depth(i)].append(i)
    return [by_level[k] for k in sorted(by_level)]


# ------------------------------------------------------------------ warming


def cold_kernels(family: str, manifest: dict[str, list[Kernel]] | None = None) -> list[Kernel]:
    kernels = (load_manifest() if manifest is None else manifest).get(family, [])
    return [k for k in kernels if not is_cached(k)]


PARSE_MODULES = ("hftshm.feed.csv_nb",)  # kernels that only parse a tick CSV into the feed's event cache


def parse_only(kernels: list[Kernel]) -> set[int]:
    """Indices of the kernels only the CSV parse needs (reached from a parse kernel that no other
    kernel calls, and from no other root): a run whose data is parsed already never calls them."""
    called = {c for k in kernels for c in k.callees}
    roots = [i for i in range(len(kernels)) if i not in called]

    def closure(starts: list[int]) -> set[int]:
        seen, stack = set(starts), list(starts)
        while stack:
            for c in kernels[stack.pop()].callees:
                if c not in seen:
                    seen.add(c)
                    stack.append(c)
        return seen

    parse_roots = [i for i in roots if kernels[i].module in PARSE_MODULES]
    return closure(parse_roots) - closure([i for i in roots if i not in parse_roots])


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
        self.summary = {"compiled": 0, "failed": [], "wall_s": 0.0, "processes": 0}
        self._thread = None
        if not todo:
            return
        import multiprocessing
        import threading

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
        try:
            for name, error in _schedule(kernels, todo).run(self._pool, n):
                done += 1
                if error:
                    self.summary["failed"].append((name, error))
                self.progress(done, len(todo))
        finally:
            self._pool.terminate()  # every task has reported (or the loop failed): nothing left to wait for
            self.summary["compiled"] = done - len(self.summary["failed"])

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
        rank[i] = _closure_size(kernels, i) + max((rank[p] for p in callers[i]), default=0)
    return _Schedule(kernels, deps, callers, rank)


def _closure_size(kernels: list[Kernel], i: int) -> int:
    seen, stack = {i}, [i]
    while stack:
        for c in kernels[stack.pop()].callees:
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return len(seen)


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


# ------------------------------------------------------------------ recording the manifest

RECORD_ENV = "HFTSHM_RECORD_KERNELS"  # a directory: every process of a recorded run writes its kernels there


class Recorder:
    """Every hftshm kernel compiled in this process while listening: signature and callees (from the
    nesting of numba's compile events, completed by what each kernel links)."""

    def __init__(self):
        self.kernels: list[Kernel] = []
        self.index: dict[tuple, int] = {}
        self.stack: list[int | None] = []
        self.on_top_level_end = None  # called after each outermost compilation
        recorder = self

        from numba.core import event

        class Listener(event.Listener):
            def on_start(self, ev):
                recorder._start(ev.data["dispatcher"], tuple(ev.data["args"]))

            def on_end(self, ev):
                recorder.stack.pop()
                if not recorder.stack and recorder.on_top_level_end is not None:
                    recorder.on_top_level_end()

        self.listener = Listener()

    def _start(self, disp, args: tuple) -> None:
        func = disp.py_func
        cacheable = hasattr(getattr(disp, "_cache", None), "_cache_file")  # cache=True: worth compiling ahead
        if not func.__module__.startswith(PREFIX) or "<locals>" in func.__qualname__ or not cacheable:
            self.stack.append(None)
            return
        key = (func.__module__, func.__qualname__, args)
        if key not in self.index:
            self.index[key] = len(self.kernels)
            self.kernels.append(Kernel(*key, entry=False))
        if not self.stack:  # compiled for a call from Python (a callee's compile is nested in its caller's)
            self.kernels[self.index[key]].entry = True
        caller = next((c for c in reversed(self.stack) if c is not None), None)
        if caller is not None:
            self.kernels[caller].callees.add(self.index[key])
        self.stack.append(self.index[key])

    def start(self) -> Recorder:
        from numba.core import event

        event.register("numba:compile", self.listener)
        return self

    def stop(self) -> list[Kernel]:
        from numba.core import event

        event.unregister("numba:compile", self.listener)
        return self.finish()

    def finish(self) -> list[Kernel]:
        kernels = [Kernel(k.module, k.qualname, k.signature, set(k.callees), k.entry) for k in self.kernels]
        _link_edges(kernels)
        return kernels


def record_process_if_asked() -> None:
    """In a process of a recorded run (``HFTSHM_RECORD_KERNELS`` set): write this process's kernels
    to ``<dir>/<pid>.kernels`` after every outermost compilation (a worker process may be stopped
    by a signal, so nothing waits for its exit)."""
    directory = os.environ.get(RECORD_ENV)
    if not directory or getattr(record_process_if_asked, "recorder", None) is not None:
        return
    recorder = Recorder()
    path = Path(directory) / f"{os.getpid()}.kernels"

    def dump() -> None:
        try:
            _write_kernels(path, recorder.finish())
        except Exception as exc:  # noqa: BLE001 - recording must never fail the compilation it watches
            print(f"recording kernels: {type(exc).__name__}: {exc}", file=sys.stderr)

    recorder.on_top_level_end = dump
    record_process_if_asked.recorder = recorder.start()


def _write_kernels(path: Path, kernels: list[Kernel]) -> None:
    """One process's kernels for ``_merge_processes``: callees by key, not index (atomically replaced)."""
    keys = [(k.module, k.qualname, k.signature) for k in kernels]
    with open(path.with_suffix(".tmp"), "wb") as f:
        pickle.dump([(*key, [keys[c] for c in sorted(k.callees)], k.entry) for key, k in zip(keys, kernels)], f)
    os.replace(path.with_suffix(".tmp"), path)


def _merge_processes(directory: Path) -> list[Kernel]:
    """One kernel list from the per-process files of a recorded run (a kernel several processes
    compiled appears once, with the callees any of them saw)."""
    kernels: list[Kernel] = []
    index: dict[tuple, int] = {}
    edges: list[tuple[tuple, list]] = []
    for path in sorted(directory.glob("*.kernels")):
        with open(path, "rb") as f:
            for module, qualname, signature, callees, entry in pickle.load(f):
                key = (module, qualname, signature)
                if key not in index:
                    index[key] = len(kernels)
                    kernels.append(Kernel(*key, entry=False))
                kernels[index[key]].entry |= entry  # a Python call in any process
                edges.append((key, callees))
    for key, callees in edges:
        kernels[index[key]].callees.update(index[c] for c in callees if c in index and c != key)
    return kernels


SHIPPED_DAY = Path(__file__).resolve().parents[2] / "data" / "btcusdt_20240808.csv.gz"


def _parse_shipped_day() -> None:
    """Parse the shipped day into a scratch event cache: a fresh clone parses it once, before its
    first backtest or run, and the data's own cache file may already exist here."""
    import tempfile

    from hftshm.backtest.api import platform_raw, symbol_table_for
    from hftshm.feed import cache

    symbols, _ = symbol_table_for(platform_raw(None), SHIPPED_DAY)
    with tempfile.TemporaryDirectory(prefix="hftshm-record-parse-") as tmp:
        cache.build(SHIPPED_DAY, symbols, Path(tmp) / "day.events.bin")


def _record_backtest() -> list[Kernel]:
    """The compiled backtest of the built-in market maker over the shipped day, as ``hftshm backtest``
    runs it (events as ``load_events`` gives them: the argument types are part of what is cached),
    the CSV's parse included."""
    from hftshm.backtest.api import run_backtest

    recorder = Recorder().start()
    try:
        _parse_shipped_day()
        run_backtest(None, SHIPPED_DAY, "market_maker", {}, seed=1, engine_name="compiled")
    finally:
        kernels = recorder.stop()
    return kernels


def _record_run() -> list[Kernel]:
    """``hftshm run`` of the shipped config (paced, so the compiled trading cycle's kernels are in
    it), every process recording what it compiles: the kernels its workers warm before the first
    tick, and any compiled in a step."""
    import re
    import subprocess
    import tempfile

    parse = Recorder().start()  # the feed parses the CSV on a fresh clone: its kernels belong to the run
    try:
        _parse_shipped_day()
    finally:
        parse_kernels = parse.stop()
    root = Path(__file__).resolve().parents[2]
    # the shipped config, with time for a cold start on a busy machine (paths stay relative to root)
    config = root / "config" / f".record-run-{os.getpid()}.toml"
    shipped = (root / "config" / "platform.toml").read_text()
    config.write_text(re.sub(r"(?m)^start_timeout_s\s*=.*$", "start_timeout_s = 3600.0", shipped))
    try:
        with tempfile.TemporaryDirectory(prefix="hftshm-record-run-") as tmp:
            env = dict(os.environ, **{RECORD_ENV: tmp})
            subprocess.run([sys.executable, "-m", "hftshm.cli", "run", "-c", str(config), "--no-web", "--quiet",
                            "--duration", "20"], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
            _write_kernels(Path(tmp) / "parse.kernels", parse_kernels)
            return _merge_processes(Path(tmp))
    finally:
        config.unlink(missing_ok=True)


WORKLOADS = {"backtest": _record_backtest, "run": _record_run}


def _link_edges(kernels: list[Kernel]) -> None:
    """Callees from what each compiled kernel links (the nesting of compile events shows a callee
    only under the first caller that compiled it; a second caller must wait for it too, or it
    compiles the callee again, racing the process that owns it for the cache index). A callee this
    process loaded from the cache (another process of a recorded run compiled it) is added as a
    kernel too, so the edge survives the merge."""
    from numba.core.dispatcher import Dispatcher

    key_of_library: dict[int, tuple] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(PREFIX):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher):
                func = value.py_func
                for sig, cres in list(value.overloads.items()):
                    key_of_library[id(cres.library)] = (func.__module__, func.__qualname__, tuple(sig))
    index = {(k.module, k.qualname, tuple(k.signature)): i for i, k in enumerate(kernels)}
    for i in range(len(kernels)):
        k = kernels[i]
        disp = _dispatcher(k.module, k.qualname)
        cres = disp.overloads.get(tuple(k.signature)) if disp is not None else None
        for linked in getattr(getattr(cres, "library", None), "_linking_libraries", ()):
            key = key_of_library.get(id(linked))
            if key is None or not key[0].startswith(PREFIX):
                continue
            if key not in index:
                index[key] = len(kernels)
                kernels.append(Kernel(*key, entry=False))
            if index[key] != i:
                k.callees.add(index[key])


def record(families: list[str], path: Path = MANIFEST) -> dict[str, list[Kernel]]:
    """Run each family's workload with an EMPTY cache (call in a fresh process with NUMBA_CACHE_DIR
    pointing at an empty directory) and write what compiled, and what called what, to ``path``."""
    recorded = {family: WORKLOADS[family]() for family in families}
    existing = load_manifest(path)
    existing.update(recorded)
    with open(path, "wb") as f:
        pickle.dump({family: [(k.module, k.qualname, k.signature, sorted(k.callees), k.entry) for k in kernels]
                     for family, kernels in existing.items()}, f)
    return recorded


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
