"""Spilling driven by the fake host: what the raylet spills, when it restores, and the off switch."""

from __future__ import annotations

from typing import Any

from runtime.core.config import CoreConfig
from runtime.core.messages import MakeRoom, Restored
from runtime.core.object_store import SPILLED, SPILLING, ObjectStore
from runtime.core.task import ERR_STORE_FULL
from tests.core.fake_host import FakeHost

MB = 1 << 20


def _put(host: FakeHost, size: int) -> int:
    out: list[Any] = []
    oid = host.owners[0].put(size, None, True, host.now, out)
    host._effect(out)
    host.run()
    return oid


def test_store_spill_candidates_are_lru_unpinned_primaries_and_leave_memory_accounting() -> None:
    store = ObjectStore(100)
    store.add(1, 30, primary=True)
    store.add(2, 30, primary=False)  # a secondary copy is evicted, never spilled
    store.add(3, 30, primary=True)
    store.pin(1)
    assert store.spill_candidates(10) == [3]
    assert store.objects[3].where == SPILLING and store.used == 90
    assert store.spill_candidates(10) == []  # 1 is pinned, 3 is already spilling
    assert store.mark_spilled(3)
    assert store.objects[3].where == SPILLED and 3 in store and not store.in_memory(3)
    assert store.used == 60 and store.spilled_bytes == 30
    assert store.mark_restored(3)
    assert store.in_memory(3) and store.used == 90 and store.spilled_bytes == 0
    store.spill_candidates(1)
    store.mark_spilled(3)
    assert store.remove(3) and store.used == 60 and store.spilled_bytes == 0


def test_make_room_spills_least_recently_used_primaries_until_the_bytes_fit() -> None:
    host = FakeHost(nodes=1, store_capacity=10 * MB)
    a, b, c = (_put(host, 3 * MB) for _ in range(3))
    raylet = host.raylets[0]
    assert raylet.store.used == 9 * MB
    host.inject(0, MakeRoom(4 * MB))  # 9 + 4 - 10 = 3 MB needed: the oldest one goes
    host.run()
    assert [s.oid for s in host.spilled] == [a]
    assert not raylet.store.in_memory(a) and raylet.store.in_memory(b)
    assert raylet.store.used == 6 * MB and raylet.store.spilled_bytes == 3 * MB
    assert host.disk == {(0, a)}
    host.inject(0, MakeRoom(1))  # fits already: still spills one (fragmentation)
    host.run()
    assert [s.oid for s in host.spilled] == [a, b]
    del c


def test_a_spilled_argument_is_restored_before_the_task_runs() -> None:
    host = FakeHost(nodes=1, store_capacity=10 * MB)
    a = _put(host, 3 * MB)
    host.inject(0, MakeRoom(10 * MB))
    host.run()
    assert host.disk == {(0, a)}
    (r,) = host.submit(name="uses-a", arg_refs=(a,), duration=1.0)
    host.run()
    assert [x.oid for x in host.restored] == [a]
    restore_at = host.commands.index(host.restored[0])
    dispatch_at = host.commands.index(host.dispatched[0])
    assert restore_at < dispatch_at
    assert host.ready[r].error_kind is None
    assert host.raylets[0].store.in_memory(a) and host.disk == set()


def test_a_pinned_argument_is_not_spilled_while_its_task_runs() -> None:
    host = FakeHost(nodes=1, store_capacity=10 * MB)
    a = _put(host, 3 * MB)
    b = _put(host, 3 * MB)
    host.submit(name="uses-a", arg_refs=(a,), duration=5.0)
    host.run(until=host.now + 1.0)
    host.inject(0, MakeRoom(8 * MB))
    host.run(until=host.now + 1.0)
    assert [s.oid for s in host.spilled] == [b]  # a is pinned by the running task


def test_spilled_objects_are_deleted_from_disk_when_freed() -> None:
    host = FakeHost(nodes=1, store_capacity=10 * MB)
    a = _put(host, 3 * MB)
    host.inject(0, MakeRoom(10 * MB))
    host.run()
    host.release(a)
    host.run()
    assert (0, a) in host.freed and host.disk == set()
    assert a not in host.raylets[0].store and host.raylets[0].store.spilled_bytes == 0


def test_spilling_off_makes_no_room() -> None:
    host = FakeHost(nodes=1, store_capacity=10 * MB, config=CoreConfig(object_spilling=False))
    _put(host, 3 * MB)
    host.inject(0, MakeRoom(10 * MB))
    host.run()
    assert host.spilled == []


def test_a_failed_restore_fails_the_waiting_task_with_store_full() -> None:
    host = FakeHost(nodes=1, store_capacity=10 * MB)
    a = _put(host, 3 * MB)
    host.inject(0, MakeRoom(10 * MB))
    host.run()
    (r,) = host.submit(name="uses-a", arg_refs=(a,), duration=1.0)
    host.run(until=host.now + 0.005)  # the Restore is in flight: answer it with a failure
    host.inject(0, Restored(a, "no room"))
    host.run()
    assert host.ready[r].error_kind == ERR_STORE_FULL
    assert "no room" in host.ready[r].error


def test_many_tasks_on_spilled_arguments_wait_for_room_instead_of_failing() -> None:
    # 8 spilled objects of 3 MB, a 10 MB store: at most 3 fit at once. Every task must
    # wait for room (restores start as running tasks end), none may fail store-full.
    host = FakeHost(nodes=1, cpus=2, store_capacity=10 * MB)
    objs = []
    for _ in range(8):
        objs.append(_put(host, 3 * MB))
        host.inject(0, MakeRoom(10 * MB))  # spill everything in memory
        host.run()
    assert host.disk == {(0, oid) for oid in objs}
    refs = [
        host.submit(name=f"uses-{i}", arg_refs=(oid,), duration=1.0)[0]
        for i, oid in enumerate(objs)
    ]
    host.run()
    assert [host.ready[r].error for r in refs] == [None] * 8
    assert sorted(r.oid for r in host.restored) == sorted(objs)
    assert max(host.peak_used.values()) <= 10 * MB
    raylet = host.raylets[0]
    assert not raylet.room_queue and not raylet.restoring and raylet.store.pinned == 0


def test_restores_for_tasks_with_several_spilled_arguments_cannot_deadlock() -> None:
    # two 3 MB arguments per task, a 10 MB store: partial restores of different tasks could
    # fill memory with tasks that each hold half of their inputs; FIFO restores cannot
    host = FakeHost(nodes=1, cpus=4, store_capacity=10 * MB)
    objs = []
    for _ in range(8):
        objs.append(_put(host, 3 * MB))
        host.inject(0, MakeRoom(10 * MB))
        host.run()
    refs = [
        host.submit(name=f"pair-{i}", arg_refs=(objs[2 * i], objs[2 * i + 1]), duration=1.0)[0]
        for i in range(4)
    ]
    host.run()
    assert [host.ready[r].error for r in refs] == [None] * 4
    assert max(host.peak_used.values()) <= 10 * MB


def test_a_task_whose_spilled_arguments_can_never_fit_fails_clearly() -> None:
    host = FakeHost(nodes=1, store_capacity=10 * MB)
    a = _put(host, 6 * MB)
    host.inject(0, MakeRoom(10 * MB))
    host.run()
    b = _put(host, 6 * MB)
    host.inject(0, MakeRoom(10 * MB))
    host.run()
    (r,) = host.submit(name="uses-both", arg_refs=(a, b), duration=1.0)
    host.run()
    assert host.ready[r].error_kind == ERR_STORE_FULL
    assert "can never fit" in host.ready[r].error
    assert host.restored == []
