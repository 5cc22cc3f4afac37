"""numba's cache, made stale by any hftshm kernel source, not only the kernel's own file.

numba stamps a cached kernel with a hash of the one source file that defines it. A kernel's cached
machine code also holds every kernel it calls (numba links callees into the caller and optimises
them together, ``inline="always"`` ones most of all), so after an edit of a callee in another file
(``exchange/common_nb.fill_fee``, say) the caller's cache entry still loads and runs the old callee:
a ``git pull`` could leave a run charging last version's fees, with nothing said.

``install`` (run by numba's extension hook before its first compilation, see ``runtime.warm_types``)
adds to the stamp of every kernel defined in the package a hash of the package's kernel
sources (every ``*_nb.py`` and the few other files that define kernels or intrinsics), read once per
process. Any change to them makes every hftshm cache entry stale: it is recompiled once (the
compiling pool, ``runtime.compile_cache``, does that in parallel before a run) and correct.
Kernels outside the package (a user's strategy) keep numba's own stamp.

::

    cached entry = (numba's stamp: hash of its own file, kernel_sources_stamp())
                                                        └── every hftshm/**/*_nb.py, atomics, ...
"""

from __future__ import annotations

import hashlib
import os
import sys
from functools import lru_cache
from pathlib import Path

from numba.core import caching
from numba.core.dispatcher import Dispatcher

PACKAGE = Path(__file__).resolve().parents[1]
# files outside the *_nb.py convention that define kernels, overloads or intrinsics
OTHER_KERNEL_FILES = ("runtime/warm_types.py", "runtime/link_only.py", "strategies/compiled.py", "transport/atomics.py")
_INSTALLED = "_hftshm_kernel_sources_stamp"


@lru_cache(maxsize=1)
def kernel_sources_stamp() -> str:
    """sha256 over the package's kernel sources: names and contents, in a fixed order."""
    digest = hashlib.sha256()
    files = sorted(PACKAGE.rglob("*_nb.py")) + [PACKAGE / name for name in OTHER_KERNEL_FILES]
    for path in files:
        digest.update(str(path.relative_to(PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def install() -> None:
    """Extend numba's source stamp for the package's kernels (idempotent, once per process)."""
    mixin = caching._SourceFileBackedLocatorMixin
    if getattr(mixin, _INSTALLED, False):
        return
    own_stamp = mixin.get_source_stamp

    def get_source_stamp(self):
        stamp = own_stamp(self)
        if str(self._py_file).startswith(str(PACKAGE) + os.sep):
            return stamp, kernel_sources_stamp()
        return stamp

    mixin.get_source_stamp = get_source_stamp
    setattr(mixin, _INSTALLED, True)
    restamp_loaded_kernels()


def restamp_loaded_kernels() -> None:
    """Kernels decorated before ``install`` (numba runs its extension hooks at the first compilation,
    after the modules defining kernels were imported) took numba's own stamp when their cache was
    set up: give them the package's."""
    for name, module in list(sys.modules.items()):
        if not name.startswith("hftshm.") or module is None:
            continue
        for kernel in list(vars(module).values()):
            if not isinstance(kernel, Dispatcher):  # never touch other objects (Flask's request proxy raises)
                continue
            cache = getattr(kernel, "_cache", None)
            cache_file = getattr(cache, "_cache_file", None)
            locator = getattr(getattr(cache, "_impl", None), "locator", None)
            if cache_file is not None and isinstance(locator, caching._SourceFileBackedLocatorMixin):
                cache_file._source_stamp = locator.get_source_stamp()
