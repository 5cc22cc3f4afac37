"""The kernel manifest: what a workload compiles, with which argument types, and what calls what.

Recorded once per kernel family ("backtest", "run") by running the workload with an empty cache
(``python -m hftshm.runtime.compile_cache record``, ``runtime.kernel_record``) into
``kernels.manifest`` next to this module: every hftshm kernel compiled, its signature (numba
types, pickled), its callees, and whether Python calls it (then it is compiled with its CPython
entry; a kernel only other kernels call is compiled for linking only, ``runtime.link_only``).
``runtime.compile_cache`` compiles a family from it in parallel processes.

A manifest older than the code only costs time: a signature nobody uses any more is compiled for
nothing, a kernel missing from it compiles in the run as before. Re-record after changing which
kernels the loop calls.
"""

from __future__ import annotations

import importlib
import pickle
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = Path(__file__).with_name("kernels.manifest")
PREFIX = "hftshm."
PARSE_MODULES = ("hftshm.feed.csv_nb",)  # kernels that only parse a tick CSV into the feed's event cache


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


def dispatcher_of(module: str, qualname: str):
    from numba.core.dispatcher import Dispatcher

    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, Dispatcher) else None


def is_cached(kernel: Kernel) -> bool:
    """The kernel's signature is in numba's cache index, for this source and this machine."""
    disp = dispatcher_of(kernel.module, kernel.qualname)
    if disp is None or disp._cache is None or not hasattr(disp._cache, "_cache_file"):
        return True  # nothing we could compile ahead
    try:
        key = disp._cache._index_key(tuple(kernel.signature), disp.targetctx.codegen())
        return key in disp._cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - numba internals moved: treat as cached, the run compiles what it needs
        return True


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


def write_manifest(families: dict[str, list[Kernel]], path: Path = MANIFEST) -> None:
    """``families`` replace those families in the manifest at ``path`` (the others stay)."""
    existing = load_manifest(path)
    existing.update(families)
    with open(path, "wb") as f:
        pickle.dump({family: [(k.module, k.qualname, k.signature, sorted(k.callees), k.entry) for k in kernels]
                     for family, kernels in existing.items()}, f)


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


def closure_size(kernels: list[Kernel], i: int) -> int:
    seen, stack = {i}, [i]
    while stack:
        for c in kernels[stack.pop()].callees:
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return len(seen)
