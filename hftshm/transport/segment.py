"""Named POSIX shared-memory segments, with one owner who unlinks.

``multiprocessing.shared_memory`` on Python 3.11 registers every attach with the resource tracker,
which then unlinks the segment when the ATTACHING process exits (and warns about a "leak"), pulling
the ring from under the supervisor. Here only the creator registers (so a creator that crashes still
gets its segments removed by its tracker); attaching processes map the segment without registering.
The creator (the supervisor) owns ``unlink``.
"""

from __future__ import annotations

import mmap
import os
from multiprocessing import resource_tracker

import _posixshmem


# names this process registered with its resource tracker: whoever unlinks one here must also
# unregister it, or the tracker warns at exit about a "leaked" segment that no longer exists
_REGISTERED: set[str] = set()


class SegmentNotFound(FileNotFoundError):
    pass


class Segment:
    """A mapped shared-memory segment. ``buf`` is a writable memoryview of the whole segment."""

    def __init__(self, name: str, mapping: mmap.mmap, owner: bool):
        self.name = name
        self._mmap = mapping
        self.buf = memoryview(mapping)
        self.size = len(mapping)
        self.owner = owner

    @classmethod
    def create(cls, name: str, size: int) -> "Segment":
        """Create a new segment (FileExistsError if the name is taken), zero-filled."""
        path = _posix_name(name)
        fd = _posixshmem.shm_open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
        try:
            os.ftruncate(fd, size)
            mapping = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            _posixshmem.shm_unlink(path)
            raise
        os.close(fd)
        resource_tracker.register(path, "shared_memory")
        _REGISTERED.add(path)
        return cls(name, mapping, owner=True)

    @classmethod
    def private(cls, name: str, size: int) -> "Segment":
        """Anonymous memory of this process only, laid out like a segment (warm-ups, scratch rings):
        nothing in /dev/shm, nothing to unlink."""
        return cls(name, mmap.mmap(-1, size), owner=False)

    @classmethod
    def attach(cls, name: str) -> "Segment":
        try:
            fd = _posixshmem.shm_open(_posix_name(name), os.O_RDWR, mode=0o600)
        except FileNotFoundError:
            raise SegmentNotFound(name) from None
        try:
            size = os.fstat(fd).st_size
            mapping = mmap.mmap(fd, size) if size else None
        finally:
            os.close(fd)
        if mapping is None:
            raise SegmentNotFound(name)
        return cls(name, mapping, owner=False)

    @classmethod
    def adopt(cls, name: str) -> "Segment":
        """Attach a segment a dead predecessor created, as its new owner: registered here like a
        created one, so this process's ``unlink`` also unregisters it. The supervisor's processes
        share one resource tracker, which still holds the predecessor's registration: without this,
        the successor's unlink left it there and the tracker warned at exit about a "leaked" segment
        that was already gone. (Registering is idempotent: the tracker keeps a set of names.)"""
        segment = cls.attach(name)
        path = _posix_name(name)
        resource_tracker.register(path, "shared_memory")
        _REGISTERED.add(path)
        segment.owner = True
        return segment

    def close(self) -> bool:
        """Unmap. Returns False if numpy views of it are still alive (the map goes with the last one)."""
        try:
            self.buf.release()
            self._mmap.close()
        except BufferError:
            return False
        return True

    def unlink(self) -> None:
        """Remove the name (mappings stay valid until closed). Only the owner should call this."""
        path = _posix_name(self.name)
        try:
            _posixshmem.shm_unlink(path)
        except FileNotFoundError:
            pass
        if path in _REGISTERED:
            _REGISTERED.discard(path)
            resource_tracker.unregister(path, "shared_memory")
        self.owner = False


def exists(name: str) -> bool:
    return os.path.exists(f"/dev/shm/{name.lstrip('/')}")


def _posix_name(name: str) -> str:
    if not name or "/" in name.lstrip("/"):
        raise ValueError(f"shared memory name {name!r} must be non-empty and contain no '/'")
    return "/" + name.lstrip("/")
