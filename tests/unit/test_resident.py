"""runtime.resident: a worker's tables are mapped before the hot path writes them, contents unchanged."""

import resource

import numpy as np
import pytest

from hftshm.exchange.simulator import ExchangeSimulator
from hftshm.runtime.resident import PAGE_BYTES, touch_pages


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def test_touch_pages_keeps_the_contents_and_maps_every_page():
    table = np.zeros(64 * PAGE_BYTES // 8, dtype=np.int64)
    table[::97] = np.arange(len(table[::97]))
    before = table.copy()
    assert touch_pages(table) == table.nbytes
    np.testing.assert_array_equal(table, before)
    # 40 MiB: above glibc's largest mmap threshold (32 MiB), so a fresh mapping whose pages are not
    # mapped yet even late in a test session that freed memory before
    fresh = np.zeros(40 * 1024 * 1024 // 8, dtype=np.int64)
    slots = np.random.default_rng(1).integers(0, len(fresh), 500)  # random slots, as hash indexes
    touch_pages(fresh)
    faults = _minor_faults()
    fresh[slots] = 1
    assert _minor_faults() - faults < 5  # without touch_pages: 20-50 here (the kernel maps a few pages per fault)


def test_touch_pages_leaves_read_only_arrays_and_refuses_a_copy():
    frozen = np.zeros(10)
    frozen.flags.writeable = False
    assert touch_pages(frozen) == 0
    with pytest.raises(ValueError, match="contiguous"):
        touch_pages(np.zeros((64, 64))[:, ::2])


def test_the_exchange_simulator_makes_its_fill_model_tables_resident():
    sim = ExchangeSimulator()
    assert sim.make_resident() >= sum(a.nbytes for a in sim._S if isinstance(a, np.ndarray))


def test_a_process_attaching_a_ring_maps_its_pages_while_another_process_writes_them():
    """A worker process's ring (``process.Attachments.ring``) is mapped at attach: its first lap reads
    the records another process writes with no page fault here, and nothing was written by mapping."""
    import os
    import uuid
    from types import SimpleNamespace

    from hftshm.runtime.process import Attachments
    from hftshm.transport.ring import Ring

    name = f"hftshm_{os.getpid()}_{uuid.uuid4().hex[:6]}_resident"
    feed = Ring.create(name, "book_snapshot", 4096)  # 448-byte records: ~9 per page
    feed.records["seq"][::5] = 7  # the producer has written some pages already
    attachments = Attachments(SimpleNamespace(transport="shm"))
    try:
        reader = attachments.ring(SimpleNamespace(segment=name, layout="book_snapshot"), "consumer")
        faults = _minor_faults()
        total = int(reader.records["seq"].sum())  # every page of the ring, as its first lap reads them
        assert _minor_faults() - faults < 5  # without the mapping at attach: ~30 (a read fault maps 16 pages)
        assert total == 7 * len(reader.records["seq"][::5])  # mapped, not written
    finally:
        attachments.close()
        feed.unlink()
        feed.close()
