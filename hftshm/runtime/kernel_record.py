"""Recording the kernel manifest (``runtime.kernel_manifest``): what a workload compiles, and what calls what.

``python -m hftshm.runtime.compile_cache record [family]`` runs each family's workload in a fresh
process with an empty cache, listening to numba's compile events: every hftshm kernel compiled,
its signature, its callees (from the nesting of the events, completed by what each kernel links)
and whether it was compiled for a call from Python (an outermost compilation). ``hftshm run``
records every process it starts (``HFTSHM_RECORD_KERNELS``) and merges them.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

from hftshm.runtime import warm_types
from hftshm.runtime.kernel_manifest import MANIFEST, PREFIX, Kernel, dispatcher_of, write_manifest

warm_types.install()  # the signatures recorded are the non-literal ones the pool compiles


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
        disp = dispatcher_of(k.module, k.qualname)
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
    write_manifest(recorded, path)
    return recorded
