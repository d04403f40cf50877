"""Spill storage of a node: one nameless file on disk holding the objects spilled from the arena.

The file is opened with ``O_TMPFILE`` in the spill directory (the system temp dir by
default): it never has a name, so nothing can survive the node's shutdown or a killed
driver; its blocks are released when the descriptor closes. Where ``O_TMPFILE`` is not
supported the file is created and unlinked at once (same guarantee after that instant).
Objects are laid out by the arena's first-fit `Allocator` over a large sparse range; a
freed range is given back to the file system by punching a hole (best effort).

Only the node's loop thread writes; any thread may read (``os.pread`` takes no lock).
"""

from __future__ import annotations

import ctypes
import os
import tempfile

from runtime.real.arena import Allocator

__all__ = ["SpillFile"]

_SPAN = 1 << 42
"""The file's virtual size: objects are placed anywhere below it (the file is sparse)."""
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
_libc.fallocate.restype = ctypes.c_int


def _open_nameless(directory: str) -> int:
    """A read-write descriptor on a file with no name in `directory`."""
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except (OSError, AttributeError):
        fd, path = tempfile.mkstemp(prefix="twinray-spill-", dir=directory)
        os.unlink(path)
        return fd


class SpillFile:
    """Objects written out of the arena: ``write`` returns an offset; ``read``/``free`` by it."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory or tempfile.gettempdir()
        self._fd = -1
        self._alloc = Allocator(_SPAN)
        self.bytes = 0
        """Bytes currently held (the sum of the live objects' sizes)."""

    @property
    def fd(self) -> int:
        """The file's descriptor (-1 until the first spill)."""
        return self._fd

    def write(self, data: memoryview) -> int:
        """Append-or-reuse a range for `data`, write it, and return its offset."""
        if self._fd < 0:
            self._fd = _open_nameless(self.directory)
        size = data.nbytes
        offset = self._alloc.allocate(size)
        done = 0
        try:
            while done < size:
                done += os.pwrite(self._fd, data[done:], offset + done)
        except BaseException:
            self._alloc.free(offset)
            raise
        self.bytes += size
        return offset

    def read(self, offset: int, size: int) -> bytes:
        """Return the `size` bytes stored at `offset`."""
        parts: list[bytes] = []
        done = 0
        while done < size:
            chunk = os.pread(self._fd, size - done, offset + done)
            if not chunk:
                raise OSError(f"spill file truncated at {offset + done}")
            parts.append(chunk)
            done += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_into(self, offset: int, dest: memoryview) -> None:
        """Fill `dest` with the bytes stored at `offset`."""
        done, size = 0, dest.nbytes
        while done < size:
            n = os.preadv(self._fd, [dest[done:]], offset + done)
            if n <= 0:
                raise OSError(f"spill file truncated at {offset + done}")
            done += n

    def free(self, offset: int, size: int) -> None:
        """Release the range at `offset` (and its disk blocks, where the file system can)."""
        length = self._alloc.size_of(offset)
        self._alloc.free(offset)
        self.bytes -= size
        mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
        _libc.fallocate(self._fd, mode, offset, length)

    def close(self) -> None:
        """Close the file: the kernel drops every block it held. Idempotent."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
