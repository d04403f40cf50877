"""`ObjectTable` driven directly: arena ranges, pins, deferred frees, spilling, failing pending entries."""

from __future__ import annotations

import pytest

from runtime.exceptions import ObjectStoreFullError
from runtime.real.arena import Arena
from runtime.real.futures import FAILED, PENDING, Future, ObjectEntry
from runtime.real.objects import ObjectTable
from runtime.real.spill import SpillFile


@pytest.fixture
def objects(tmp_path):
    arena = Arena(1 << 20, prefault_bytes=0)
    table = ObjectTable(arena, SpillFile(str(tmp_path)))
    try:
        yield table
    finally:
        table.spill.close()
        arena.close()


def _store(objects: ObjectTable, oid: int, data: bytes) -> int:
    offset = objects.allocate_now(len(data))
    objects.arena.writable_view(offset, len(data))[:] = data
    objects.arena_objects[oid] = (offset, len(data))
    return offset


def test_a_free_releases_the_range_at_once_when_nothing_aliases_it(objects) -> None:
    _store(objects, 1, b"x" * 1000)
    used = objects.arena.allocator.used_bytes
    with objects.lock:
        objects.free_locked(1)
    assert 1 not in objects.arena_objects
    assert objects.arena.allocator.used_bytes < used


def test_a_pinned_range_is_freed_when_its_last_pin_goes(objects) -> None:
    offset = _store(objects, 1, b"y" * 1000)
    objects.pins[offset] = 2  # two values from get() alias it
    used = objects.arena.allocator.used_bytes
    with objects.lock:
        objects.free_locked(1)
    assert objects.doomed == {offset: (1, 1000)} and objects.arena.allocator.used_bytes == used
    objects.unpins.extend([offset])
    with objects.lock:
        objects.apply_unpins_locked()
    assert objects.pins == {offset: 1} and objects.arena.allocator.used_bytes == used
    objects.unpins.append(offset)
    with objects.lock:
        objects.apply_unpins_locked()
    assert not objects.pins and not objects.doomed
    assert objects.arena.allocator.used_bytes < used


def test_argument_pins_end_with_their_task(objects) -> None:
    offset = _store(objects, 1, b"z" * 100)
    objects.pins[offset] = 1
    objects.arg_pins[7] = [offset]
    objects.release_arg_pins(7)
    assert 7 not in objects.arg_pins and not objects.pins


def test_a_spilled_object_leaves_the_arena_and_reads_back_from_disk(objects) -> None:
    _store(objects, 1, b"spill me" * 100)
    assert objects.spill_object(1)
    assert 1 not in objects.arena_objects and 1 in objects.spilled
    with objects.lock:
        assert objects.spilled_bytes_locked(1) == b"spill me" * 100
        objects.free_locked(1)
    assert not objects.spilled and objects.spill.bytes == 0
    assert not objects.spill_object(1)  # gone: nothing to spill


def test_allocate_now_applies_pending_unpins_before_giving_up(objects) -> None:
    offset = _store(objects, 1, b"a" * (600 << 10))
    objects.pins[offset] = 1
    with objects.lock:
        objects.free_locked(1)  # doomed: still aliased
    with pytest.raises(ObjectStoreFullError):
        objects.allocate_now(600 << 10)
    objects.unpins.append(offset)  # the alias was dropped (no step ran yet)
    assert objects.allocate_now(600 << 10) >= 0


def test_fail_all_pending_wakes_the_waiters(objects) -> None:
    fut = Future(1)
    pending = ObjectEntry()
    pending.waiters = [fut]
    objects.entries[1] = pending
    objects.entries[2] = ObjectEntry(FAILED, error_kind="x", error="y")
    objects.fail_all_pending("shutdown", "the node was shut down")
    assert pending.state == FAILED and pending.error_kind == "shutdown"
    assert fut.wait(0) and objects.entries[2].error_kind == "x"
    assert pending.state != PENDING
