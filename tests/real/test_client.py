"""`Client` driven directly over a real `Loop`, object table and control plane, no workers."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from runtime.core.cluster import NodeCapacity, build_control_plane
from runtime.core.config import CoreConfig
from runtime.core.task import TaskSpec
from runtime.exceptions import GetTimeoutError, ObjectLostError
from runtime.object_ref import ObjectRef
from runtime.real.arena import Arena
from runtime.real.client import Client
from runtime.real.futures import PENDING, READY
from runtime.real.loop import Loop
from runtime.real.objects import ObjectTable
from runtime.real.spill import SpillFile


class StandInPool:
    idle: list[Any] = []
    dirty = False


class World:
    """A client whose `kick` runs steps on the calling thread (no loop thread, no workers)."""

    def __init__(self) -> None:
        self.arena = Arena(1 << 22, prefault_bytes=0)
        self.objects = ObjectTable(self.arena, SpillFile(None))
        self.plane = build_control_plane(
            CoreConfig(), random.Random(0), [NodeCapacity({"CPU": 1.0}, 1 << 22)], 1
        )
        self.out: list[Any] = []
        self.commands: list[Any] = []
        self.loop = Loop(
            objects=self.objects, components=self.plane.components(), out=self.out,
            execute=self.execute,
        )  # fmt: skip
        self.loop.connect(StandInPool())
        self.loop.prepare()
        self.client = Client(
            node=self, loop=self.loop, ids_lock=threading.Lock(), owner=self.plane.owners[0],
            objects=self.objects, arena=self.arena, inline_threshold=100,
            object_spilling=False, out=self.out,
        )  # fmt: skip
        self.client.connect(self.client.submit_spec, lambda item, now: None, {}, {})

    def execute(self, now: float) -> None:
        self.commands.extend(self.out)
        self.out.clear()

    def release_ref(self, oid: int) -> None:  # the refs made here call back their node
        self.client.release_ref(oid)

    def close(self) -> None:
        self.loop.closed = True
        self.loop._remove_sigint_shield()
        self.loop._outer.close()
        self.loop._drv_r.close()
        self.loop._drv_w.close()
        self.loop.sel.close()
        self.loop.wake_r.close()
        self.loop.wake_w.close()
        self.objects.spill.close()
        self.arena.close()


@pytest.fixture
def world():
    w = World()
    yield w
    w.close()


def test_put_then_get_inline_and_in_the_arena(world: World) -> None:
    small = world.client.put("tiny")
    big = world.client.put(b"x" * 10_000)
    assert world.objects.entries[small._oid].stored is False
    assert big._oid in world.objects.arena_objects
    assert world.client.get([small, big], None) == ["tiny", b"x" * 10_000]
    world.client.kick()  # the puts reach the owner
    assert world.plane.owners[0].object_entry(small._oid) is not None


def test_a_submitted_spec_gets_pending_entries_and_reaches_the_owner(world: World) -> None:
    owner = world.plane.owners[0]
    spec = TaskSpec(owner.new_task_id(), 0, 0, function=1, args=((), {}), num_returns=2)
    refs = world.client.submit_spec(spec, [])
    assert [world.objects.entries[r._oid].state for r in refs] == [PENDING, PENDING]
    assert spec.task_id in owner.pending  # kicked: run on this thread at once
    with pytest.raises(GetTimeoutError, match="2 of 2 object"):
        world.client.get(refs, 0.01)
    ready, rest = world.client.wait(refs, 1, 0)
    assert ready == [] and rest == refs


def test_refs_of_another_session_and_non_refs_are_refused(world: World) -> None:
    with pytest.raises(ObjectLostError, match="not known to this session"):
        world.client.get([ObjectRef(123 << 8 | 1, None)], None)
    with pytest.raises(TypeError, match="expected an ObjectRef"):
        world.client.get(["nope"], None)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="put\\(\\) of an ObjectRef"):
        world.client.put(world.client.put(1))


def test_releasing_the_last_ref_drops_the_entry(world: World) -> None:
    ref = world.client.put(5)
    oid = ref._oid
    del ref
    world.client.kick()
    assert oid not in world.objects.entries


def test_future_of_a_ready_ref(world: World) -> None:
    ref = world.client.put([1, 2])
    assert world.client.future_of(ref).result(5) == [1, 2]
    assert world.objects.entries[ref._oid].state == READY
