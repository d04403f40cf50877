"""Object serialization: pickle protocol 5 with out-of-band buffers, laid out for zero-copy reads.

A value becomes a `SerializedObject`: the pickle stream (`meta`) plus the raw out-of-band
buffers (numpy arrays, bytes-like objects). Small objects travel inline as `bytes`; large
ones are written into the node's `Arena` in the *layout* below and read back with
`pickle.loads(meta, buffers=[read-only views into the arena])`, so arrays are not copied.

Layout (all integers little-endian, every buffer 64-byte aligned from the object start)::

    b"TRL1" | nbuf: u32 | meta_len: u64 | nbuf x (offset: u64, length: u64) | meta | buffers

Inline payloads are either a plain pickle (starts with the pickle PROTO opcode 0x80) when
there are no out-of-band buffers, or the same layout in a `bytes` object.
"""

from __future__ import annotations

import pickle
import struct
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cloudpickle

from runtime.exceptions import UnserializableArgumentError
from runtime.real.arena import ALIGNMENT, Arena

__all__ = [
    "INLINE_THRESHOLD",
    "SerializedObject",
    "deserialize",
    "deserialize_from_arena",
    "deserialize_pinned",
    "dumps",
    "dumps_function",
    "loads",
    "loads_function",
    "serialize",
    "write_to_arena",
]

INLINE_THRESHOLD = 100 * 1024
_MAGIC = b"TRL1"
_MAIN = b"__main__"
_HEAD = struct.Struct("<4sIQ")
_ENTRY = struct.Struct("<QQ")


def _pad(n: int) -> int:
    """Round `n` up to a multiple of the arena alignment."""
    return (n + ALIGNMENT - 1) & ~(ALIGNMENT - 1)


@dataclass(slots=True)
class SerializedObject:
    """A pickled value: `meta` stream, raw out-of-band `buffers`, and `total_size` of its layout."""

    meta: bytes
    buffers: list[memoryview]
    total_size: int

    def is_inline(self, threshold: int = INLINE_THRESHOLD) -> bool:
        """Return True if the object is small enough to travel inline in a message."""
        return self.total_size < threshold

    def to_bytes(self) -> bytes:
        """Return the inline form: the plain pickle, or the layout when there are buffers."""
        if not self.buffers:
            return self.meta
        out = bytearray(self.total_size)
        self.write_into(memoryview(out))
        return bytes(out)

    def write_into(self, dest: memoryview) -> None:
        """Write the layout into `dest` (a writable byte view of at least `total_size`)."""
        nbuf = len(self.buffers)
        pos = _HEAD.size + nbuf * _ENTRY.size
        _HEAD.pack_into(dest, 0, _MAGIC, nbuf, len(self.meta))
        dest[pos : pos + len(self.meta)] = self.meta
        pos = _pad(pos + len(self.meta))
        for i, buf in enumerate(self.buffers):
            n = buf.nbytes
            _ENTRY.pack_into(dest, _HEAD.size + i * _ENTRY.size, pos, n)
            dest[pos : pos + n] = buf
            pos = _pad(pos + n)


def serialize(value: Any, what: str = "value") -> SerializedObject:
    """Pickle `value` (protocol 5, out-of-band buffers; cloudpickle for lambdas/closures
    and for anything defined in `__main__`, which workers, fresh interpreters, lack).

    Raises `UnserializableArgumentError` naming `what` if the value cannot be pickled.
    """
    buffers: list[pickle.PickleBuffer] = []
    try:
        meta = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        if _MAIN in meta:
            # names a class or function of this process's __main__ by reference: the other
            # side is another interpreter whose __main__ lacks it, so send it by value
            raise pickle.PicklingError("refers to __main__")
    except Exception:
        buffers.clear()
        try:
            meta = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        except Exception as exc:
            raise UnserializableArgumentError(
                f"cannot serialize {what} of type {type(value).__name__}: "
                f"{type(exc).__name__}: {exc}",
                argument=what,
            ) from exc
    if not buffers:
        return SerializedObject(meta, [], _HEAD.size + len(meta))
    raws = [b.raw() for b in buffers]
    size = _pad(_HEAD.size + len(raws) * _ENTRY.size + len(meta))
    for raw in raws:
        size = _pad(size + raw.nbytes)
    return SerializedObject(meta, raws, size)


def dumps(value: Any, what: str = "value") -> bytes:
    """Serialize `value` to self-contained inline bytes (see `loads`)."""
    return serialize(value, what).to_bytes()


def loads(data: bytes | memoryview) -> Any:
    """Rebuild a value from inline bytes produced by `dumps`/`SerializedObject.to_bytes`."""
    if data[:1] == b"\x80":
        return pickle.loads(data)
    return deserialize(memoryview(data).toreadonly())


def deserialize(view: memoryview) -> Any:
    """Rebuild a value from a layout in `view`; arrays alias `view` (zero-copy)."""
    if view[:1] == b"\x80":  # a plain pickle (`dumps` of a value without buffers)
        return pickle.loads(view)
    magic, nbuf, meta_len = _HEAD.unpack_from(view, 0)
    if magic != _MAGIC:
        raise ValueError("not a serialized object (bad magic)")
    pos = _HEAD.size + nbuf * _ENTRY.size
    meta = view[pos : pos + meta_len]
    bufs = []
    for i in range(nbuf):
        off, n = _ENTRY.unpack_from(view, _HEAD.size + i * _ENTRY.size)
        bufs.append(view[off : off + n])
    return pickle.loads(meta, buffers=bufs)


def deserialize_pinned(view: memoryview, on_release: Callable[[], None]) -> Any:
    """Like `deserialize`, but call `on_release()` once nothing aliases `view` any more.

    Out-of-band buffers are handed to pickle as slices of one numpy array over `view`;
    a `weakref.finalize` on that array fires when the value and every array derived from
    it are gone, so the caller can keep the arena range pinned exactly that long. Values
    without out-of-band buffers are copied out, and `on_release` runs before returning.
    """
    import numpy as np

    if view[:1] == b"\x80":  # a plain pickle (`dumps` of a value without buffers: a
        try:  # worker's or connected driver's `put` stores those bytes as they are)
            return pickle.loads(view)
        finally:
            on_release()
    magic, nbuf, meta_len = _HEAD.unpack_from(view, 0)
    if magic != _MAGIC:
        raise ValueError("not a serialized object (bad magic)")
    pos = _HEAD.size + nbuf * _ENTRY.size
    if nbuf == 0:
        try:
            return pickle.loads(view[pos : pos + meta_len])
        finally:
            on_release()
    base = np.frombuffer(view, dtype=np.uint8)
    weakref.finalize(base, on_release)
    bufs = []
    for i in range(nbuf):
        off, n = _ENTRY.unpack_from(view, _HEAD.size + i * _ENTRY.size)
        bufs.append(base[off : off + n])
    return pickle.loads(view[pos : pos + meta_len], buffers=bufs)


def write_to_arena(arena: Arena, offset: int, obj: SerializedObject) -> None:
    """Write `obj`'s layout (`obj.total_size` bytes) into the arena range at `offset`."""
    dest = arena.writable_view(offset, obj.total_size)
    try:
        obj.write_into(dest)
    finally:
        dest.release()


def deserialize_from_arena(arena: Arena, offset: int, size: int) -> Any:
    """Rebuild the value stored at `[offset, offset + size)`; arrays are read-only views."""
    return deserialize(arena.view(offset, size))


def dumps_function(fn: Callable[..., Any]) -> bytes:
    """Pickle a function by value with cloudpickle (sent once; workers cache it by id).

    cloudpickle blanks `co_filename`; the real file name travels alongside so that remote
    tracebacks name the user's file and show its source lines.
    """
    try:
        data = cloudpickle.dumps(fn, protocol=5)
    except Exception as exc:
        name = getattr(fn, "__qualname__", repr(fn))
        raise UnserializableArgumentError(
            f"cannot serialize function {name}: {type(exc).__name__}: {exc}", argument=name
        ) from exc
    code = getattr(fn, "__code__", None)
    return pickle.dumps((code.co_filename if code is not None else None, data), protocol=5)


def loads_function(data: bytes) -> Callable[..., Any]:
    """Rebuild a function pickled by `dumps_function` (with its original file name)."""
    filename, payload = pickle.loads(data)
    fn = pickle.loads(payload)
    code = getattr(fn, "__code__", None)
    if filename and code is not None and code.co_filename != filename:
        try:
            fn.__code__ = code.replace(co_filename=filename)
        except (AttributeError, TypeError, ValueError):
            pass
    return fn
