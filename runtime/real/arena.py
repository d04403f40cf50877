"""Per-node shared-memory arena: one anonymous memfd mapping plus a driver-side free-list allocator.

The arena is an `os.memfd_create` file mapped `MAP_SHARED`. It has no name in /dev/shm, so
it cannot leak even if the driver is SIGKILLed; the zygote maps the inherited descriptor
(`Arena.attach`) and the workers it forks inherit the mapping. Only
the driver allocates (`Allocator` state lives in one process); workers read and write the
ranges the driver hands them.
"""

from __future__ import annotations

import bisect
import ctypes
import mmap
import os
import threading
from collections.abc import Iterable
from typing import Any

from runtime.exceptions import ObjectStoreFullError

__all__ = ["ALIGNMENT", "Allocator", "Arena"]

ALIGNMENT = 64
_MADV_POPULATE_WRITE = 23  # Linux >= 5.14
_PREFAULT_CHUNK = 16 << 20


def _align(n: int) -> int:
    """Round `n` up to a multiple of `ALIGNMENT` (at least one unit)."""
    return max(ALIGNMENT, (n + ALIGNMENT - 1) & ~(ALIGNMENT - 1))


class Allocator:
    """First-fit offset allocator over `[0, capacity)` with coalescing of freed neighbours.

    Free ranges are kept sorted by offset (`_starts`) with their sizes in `_free`; freeing
    finds neighbours by bisection and merges them. Every range is 64-byte aligned.
    """

    __slots__ = ("capacity", "_starts", "_free", "_used", "used_bytes")

    def __init__(self, capacity: int) -> None:
        capacity -= capacity % ALIGNMENT
        if capacity <= 0:
            raise ValueError(f"arena capacity must be at least {ALIGNMENT} bytes")
        self.capacity = capacity
        self._starts: list[int] = [0]
        self._free: dict[int, int] = {0: capacity}
        self._used: dict[int, int] = {}
        self.used_bytes = 0

    def allocate(self, nbytes: int) -> int:
        """Reserve `nbytes` (rounded up to 64) and return the offset; raise if no range fits."""
        size = _align(nbytes)
        free = self._free
        for i, start in enumerate(self._starts):
            avail = free[start]
            if avail >= size:
                del free[start]
                if avail == size:
                    del self._starts[i]
                else:
                    new_start = start + size
                    self._starts[i] = new_start
                    free[new_start] = avail - size
                self._used[start] = size
                self.used_bytes += size
                return start
        raise ObjectStoreFullError(
            f"object store full: cannot allocate {nbytes} bytes "
            f"({self.used_bytes} of {self.capacity} bytes in use, "
            f"largest free range {self.largest_free()} bytes)"
        )

    def free(self, offset: int) -> None:
        """Return the range starting at `offset` to the free list, merging with neighbours."""
        size = self._used.pop(offset)
        self.used_bytes -= size
        starts, free = self._starts, self._free
        i = bisect.bisect_left(starts, offset)
        if i < len(starts) and offset + size == starts[i]:  # merge with the next range
            size += free.pop(starts[i])
            del starts[i]
        if i > 0 and starts[i - 1] + free[starts[i - 1]] == offset:  # merge with previous
            free[starts[i - 1]] += size
            return
        starts.insert(i, offset)
        free[offset] = size

    def size_of(self, offset: int) -> int:
        """Return the (aligned) size of the allocated range at `offset`."""
        return self._used[offset]

    def largest_free(self) -> int:
        """Return the size of the largest free range (0 when full)."""
        return max(self._free.values(), default=0)

    def free_ranges(self) -> list[tuple[int, int]]:
        """Return the free ranges as sorted `(offset, size)` pairs (for tests and stats)."""
        return [(s, self._free[s]) for s in self._starts]


class Arena:
    """A memfd-backed shared mapping of `capacity` bytes with an `Allocator` over it.

    `prefault_bytes` are faulted in at construction; call `prefault_in_background()` after
    starting the workers to fault in the rest on a thread (madvise releases the GIL).
    """

    def __init__(self, capacity: int, prefault_bytes: int = 32 << 20, *, fd: int = -1) -> None:
        self.allocator = Allocator(capacity)
        self.capacity = self.allocator.capacity
        if fd < 0:
            self.fd = os.memfd_create("twinray-arena", os.MFD_CLOEXEC)
        else:
            self.fd = fd  # `attach`: another process's arena, inherited as a descriptor
        try:
            if fd < 0:
                os.ftruncate(self.fd, self.capacity)
            self._mmap = mmap.mmap(
                self.fd, self.capacity, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE
            )
        except BaseException:
            os.close(self.fd)
            raise
        self._mv = memoryview(self._mmap)
        self._ro = self._mv.toreadonly()
        anchor = ctypes.c_char.from_buffer(self._mmap)
        self._address = ctypes.addressof(anchor)
        del anchor  # release the buffer export so close() can unmap
        self.claims: Any = None
        """The `Claims` on prefetched tasks (set by the node before the zygote starts)."""
        self.control = -1
        """Offset of the cancel-target slots (`CANCEL_SLOTS` int64s, one per worker id
        modulo): the driver writes a task id there before signalling the worker."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.closed = False
        self.prefault(0, min(prefault_bytes, self.capacity))

    @classmethod
    def attach(cls, fd: int, capacity: int, control: int = -1) -> Arena:
        """Map the arena whose memfd `fd` another process created (its `capacity` bytes).

        For a process started from a fresh interpreter (the zygote): it maps the same
        pages; its allocator is unused (only the creating process allocates). `control`
        is the creator's `Arena.control` offset.
        """
        arena = cls(capacity, prefault_bytes=0, fd=fd)
        if arena.capacity != capacity:
            arena.close()
            raise ValueError(f"arena capacity {capacity} is not a multiple of {ALIGNMENT}")
        arena.control = control
        return arena

    # -- allocation (driver only) ------------------------------------------------------
    def allocate(self, nbytes: int) -> int:
        """Reserve `nbytes` and return the offset (raises `ObjectStoreFullError`)."""
        return self.allocator.allocate(nbytes)

    def free(self, offset: int) -> None:
        """Release the range at `offset`."""
        self.allocator.free(offset)

    # -- data access (any process) -----------------------------------------------------
    def write(self, offset: int, buffers: Iterable[bytes | bytearray | memoryview]) -> int:
        """Copy `buffers` contiguously starting at `offset`; return the number of bytes written."""
        mv = self._mv
        pos = offset
        for buf in buffers:
            src = buf if isinstance(buf, memoryview) else memoryview(buf)
            if src.format != "B" or src.ndim != 1:
                src = src.cast("B")
            end = pos + src.nbytes
            if end > self.capacity:
                raise ValueError("write past the end of the arena")
            mv[pos:end] = src
            pos = end
        return pos - offset

    def view(self, offset: int, size: int) -> memoryview:
        """Return a read-only zero-copy view of `[offset, offset + size)`."""
        if offset < 0 or offset + size > self.capacity:
            raise ValueError("view outside the arena")
        return self._ro[offset : offset + size]

    def writable_view(self, offset: int, size: int) -> memoryview:
        """Return a writable view of `[offset, offset + size)` (for serializers)."""
        if offset < 0 or offset + size > self.capacity:
            raise ValueError("view outside the arena")
        return self._mv[offset : offset + size]

    # -- pre-faulting ------------------------------------------------------------------
    def prefault(self, offset: int, size: int) -> bool:
        """Fault in pages of `[offset, offset + size)`; return False if unsupported."""
        if size <= 0:
            return True
        start = offset - offset % mmap.PAGESIZE
        return _madvise(self._address + start, size + offset - start, _MADV_POPULATE_WRITE)

    def prefault_in_background(self) -> None:
        """Fault in the whole arena on a daemon thread, chunk by chunk (stoppable by close)."""
        if self._thread is not None or self.closed:
            return
        self._thread = threading.Thread(
            target=self._prefault_all, name="arena-prefault", daemon=True
        )
        self._thread.start()

    def _prefault_all(self) -> None:
        for start in range(0, self.capacity, _PREFAULT_CHUNK):
            if self._stop.is_set():
                return
            if not self.prefault(start, min(_PREFAULT_CHUNK, self.capacity - start)):
                return

    # -- teardown ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop pre-faulting, unmap and close the memfd. Views still alive keep their pages."""
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._ro.release()
        self._mv.release()
        try:
            self._mmap.close()
        except BufferError:
            pass  # user-held views (e.g. numpy arrays) keep the mapping until they die
        os.close(self.fd)

    def __enter__(self) -> Arena:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_libc = ctypes.CDLL(None, use_errno=True)
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.madvise.restype = ctypes.c_int
_populate_supported = True


def _madvise(address: int, length: int, advice: int) -> bool:
    """Call madvise(2) through ctypes (releases the GIL); False if the kernel refuses."""
    global _populate_supported
    if not _populate_supported:
        return False
    if _libc.madvise(address, length, advice) != 0:
        _populate_supported = False
        return False
    return True
