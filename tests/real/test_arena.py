"""Tests of the shared-memory arena and its free-list allocator."""

from __future__ import annotations

import os

import numpy as np
import pytest

from runtime.exceptions import ObjectStoreFullError
from runtime.real.arena import ALIGNMENT, Allocator, Arena


def test_allocations_are_aligned_and_disjoint() -> None:
    alloc = Allocator(1 << 16)
    offsets = [alloc.allocate(n) for n in (1, 100, 64, 65, 0)]
    assert all(o % ALIGNMENT == 0 for o in offsets)
    ranges = sorted((o, o + alloc.size_of(o)) for o in offsets)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(ranges, ranges[1:]))
    assert alloc.used_bytes == 64 + 128 + 64 + 128 + 64


def test_free_coalesces_neighbours_in_any_order() -> None:
    alloc = Allocator(64 * 10)
    a, b, c = alloc.allocate(64), alloc.allocate(64), alloc.allocate(64)
    alloc.free(a)
    alloc.free(c)
    assert alloc.free_ranges() == [(0, 64), (128, 64 * 8)]
    alloc.free(b)
    assert alloc.free_ranges() == [(0, 64 * 10)]
    assert alloc.used_bytes == 0


def test_full_store_raises_clear_error_and_recovers() -> None:
    alloc = Allocator(64 * 4)
    first = alloc.allocate(64 * 3)
    with pytest.raises(ObjectStoreFullError, match="cannot allocate 200 bytes"):
        alloc.allocate(200)
    alloc.free(first)
    assert alloc.allocate(200) == 0


def test_first_fit_reuses_freed_hole() -> None:
    alloc = Allocator(64 * 8)
    a = alloc.allocate(128)
    alloc.allocate(64)
    alloc.free(a)
    assert alloc.allocate(64) == a
    assert alloc.allocate(64) == a + 64


def test_write_and_read_only_view() -> None:
    with Arena(1 << 20, prefault_bytes=1 << 16) as arena:
        off = arena.allocate(11)
        assert arena.write(off, [b"hello ", bytearray(b"world")]) == 11
        view = arena.view(off, 11)
        assert bytes(view) == b"hello world"
        assert view.readonly
        with pytest.raises(TypeError):
            view[0] = 0
        arr = np.frombuffer(view, dtype=np.uint8)
        assert not arr.flags.writeable
        view.release()


def test_arena_is_anonymous_memfd_and_close_releases() -> None:
    before = set(os.listdir("/dev/shm"))
    arena = Arena(4 << 20)
    assert os.readlink(f"/proc/self/fd/{arena.fd}").startswith("/memfd:twinray-arena")
    arena.prefault_in_background()
    fd = arena.fd
    arena.close()
    arena.close()  # idempotent
    with pytest.raises(OSError):
        os.fstat(fd)
    assert set(os.listdir("/dev/shm")) == before


def test_views_outlive_close() -> None:
    arena = Arena(1 << 20)
    off = arena.allocate(8)
    arena.write(off, [b"12345678"])
    arr = np.frombuffer(arena.view(off, 8), dtype=np.uint8)
    arena.close()
    assert arr.tobytes() == b"12345678"
