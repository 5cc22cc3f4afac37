"""``runtime.cache_stamp``: a cached hftshm kernel goes stale when any kernel source changes."""

from __future__ import annotations

from numba.core import caching

from hftshm.runtime import cache_stamp


class _Locator(caching._SourceFileBackedLocatorMixin):
    def __init__(self, py_file):
        self._py_file = str(py_file)


def test_a_package_kernel_is_stamped_with_every_kernel_source(tmp_path, monkeypatch):
    cache_stamp.install()
    package = tmp_path / "hftshm"
    (package / "exchange").mkdir(parents=True)
    for name in cache_stamp.OTHER_KERNEL_FILES:
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text("# kernels\n")
    caller = package / "exchange" / "matching_nb.py"
    callee = package / "exchange" / "common_nb.py"
    caller.write_text("def fill(): return fee()\n")
    callee.write_text("def fee(): return 1\n")
    outside = tmp_path / "mystrats.py"
    outside.write_text("def on_book(): pass\n")
    monkeypatch.setattr(cache_stamp, "PACKAGE", package)
    cache_stamp.kernel_sources_stamp.cache_clear()
    before, user_before = _Locator(caller).get_source_stamp(), _Locator(outside).get_source_stamp()
    callee.write_text("def fee(): return 2\n")  # only the callee's file changes
    cache_stamp.kernel_sources_stamp.cache_clear()
    after, user_after = _Locator(caller).get_source_stamp(), _Locator(outside).get_source_stamp()
    assert before != after  # the caller's cache entry is stale: it would run the old fee
    assert before[0] == after[0]  # numba's own stamp of the caller's file did not move
    assert user_before == user_after and not isinstance(user_after, tuple)  # a user's file: numba's stamp


def test_the_hook_is_installed_and_stamps_the_shipped_kernels():
    from hftshm.runtime import warm_types
    from hftshm.exchange import common_nb

    warm_types.install()
    stamp = _Locator(common_nb.__file__).get_source_stamp()
    assert isinstance(stamp, tuple) and stamp[1] == cache_stamp.kernel_sources_stamp()


def test_kernels_decorated_before_the_hook_get_the_package_stamp():
    # numba runs its extension hooks at the first compilation, after kernel modules were imported
    from hftshm.exchange import common_nb
    from hftshm.runtime import warm_types

    warm_types.install()
    cache_stamp.restamp_loaded_kernels()
    assert common_nb.fill_fee._cache._cache_file._source_stamp[1] == cache_stamp.kernel_sources_stamp()
