"""`Streams` (the loop-thread side of generator tasks) driven directly, no node."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.core.ids import generator_item_id
from runtime.core.messages import GeneratorYielded, ItemReady, StreamEnded
from runtime.core.task import ResultInfo
from runtime.real import protocol as p
from runtime.real import requests as rq
from runtime.real.addresses import OWNER_ADDR
from runtime.real.arena import Arena
from runtime.real.futures import READY, Future
from runtime.real.objects import ObjectTable
from runtime.real.pool import WorkerHandle
from runtime.real.spill import SpillFile
from runtime.real.streams import HostStream, Streams

TASK = 5 << 8


class StandInRaylet:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        self.events.append(msg)


class StandInPool:
    def __init__(self) -> None:
        self.task_allocs: dict[int, list[int]] = {}


class StandInNested:
    def __init__(self) -> None:
        self.request_ops: dict[str, Any] = {}


@pytest.fixture
def streams(tmp_path):
    arena = Arena(1 << 20, prefault_bytes=0)
    objects = ObjectTable(arena, SpillFile(str(tmp_path)))
    part = Streams(
        objects=objects,
        arena=arena,
        raylet=StandInRaylet(),
        out=[],
        pool=StandInPool(),
        nested=StandInNested(),
        components={},
    )
    try:
        yield part
    finally:
        objects.spill.close()
        arena.close()


def test_plug_registers_the_effects_the_message_and_the_requests(streams) -> None:
    effects: dict[type, Any] = {}
    handlers: dict[int, Any] = {}
    streams.plug(effects, handlers)
    assert set(effects) == {ItemReady, StreamEnded} and set(handlers) == {p.GENERATOR_ITEM}
    assert set(streams.nested.request_ops) == {rq.STREAM_NEXT, rq.STREAM_DROP}


def test_items_from_a_worker_reach_the_raylet_inline_or_in_the_arena(streams) -> None:
    w = WorkerHandle(1, 0, None)  # type: ignore[arg-type]  # never written to
    streams.on_generator_item(w, (p.GENERATOR_ITEM, TASK, 0, True, (p.VALUE_INLINE, b"ab")), 0.0)
    offset = streams.objects.allocate_now(100)
    streams.pool.task_allocs[TASK] = [offset]
    value = (p.VALUE_ARENA, offset, 100)
    streams.on_generator_item(w, (p.GENERATOR_ITEM, TASK, 1, True, value), 0.0)
    first, second = streams.raylet.events
    assert type(first) is GeneratorYielded and first.payload == b"ab" and not first.stored
    assert second.stored and second.size == 100
    assert streams.objects.arena_objects[generator_item_id(TASK, 1)] == (offset, 100)
    assert streams.pool.task_allocs[TASK] == []  # the item owns the range now


def test_the_owners_answers_fill_the_driver_stream_and_wake_its_readers(streams) -> None:
    streams.table[TASK] = stream = HostStream()
    fut = Future(1)
    stream.waiters.append(fut)
    oid = generator_item_id(TASK, 0)
    result = ResultInfo(oid, 2, False, b"ab")
    streams.item_ready(ItemReady(OWNER_ADDR, TASK, 0, oid, result, 0), 0.0)
    assert stream.count == 1 and fut.wait(0)
    assert streams.objects.entries[oid].state == READY
    streams.stream_ended(StreamEnded(OWNER_ADDR, TASK, 1), 0.0)
    assert stream.ended and stream.error_kind is None


def test_shutdown_ends_every_open_stream(streams) -> None:
    streams.table[TASK] = HostStream()
    fut = Future(1)
    streams.table[TASK].waiters.append(fut)
    streams.end_all("shutdown")
    assert streams.table[TASK].ended and streams.table[TASK].error_kind == "shutdown"
    assert fut.wait(0)


def test_the_program_thread_api_reads_the_stream_table(streams) -> None:
    from runtime.core.task import GEN_STREAMING, TaskSpec
    from runtime.generators import ObjectRefGenerator
    from runtime.object_ref import ObjectRef
    from runtime.real.streams import StreamApi

    class StandInNode:  # what the refs and the generator call back when collected
        def release_ref(self, oid: int) -> None:
            pass

        def drop_stream(self, gen: Any) -> None:
            pass

    node = StandInNode()
    ops: list[Any] = []

    def submit_spec(spec: TaskSpec, implicit: list[int]) -> ObjectRef:
        return ObjectRef(spec.task_id << 8 | 1, node)  # type: ignore[arg-type]

    api = StreamApi(
        node=node, ops=ops, check_open=lambda: None, closed=lambda: False, owner=None,
        objects=streams.objects, out=[], submit_spec=submit_spec,
        wait_future=lambda fut, timeout: fut.wait(timeout), entries=None, unregister=None,
        adopt_ref=lambda oid, owner: (oid, owner),
    )  # fmt: skip
    api.connect(streams)
    gen = api.submit_generator(TaskSpec(5, 0, 0, generator=GEN_STREAMING), [])
    assert isinstance(gen, ObjectRefGenerator) and gen._node is node
    assert not api.stream_ready(gen) and not api.stream_finished(gen)
    assert api.stream_next(gen, 0.0) is None  # nothing yet: timed out
    s = streams.table[5]
    s.count = 1
    item = api.stream_next(gen, None)
    assert item._oid == generator_item_id(5, 0) and item._node is node
    s.ended = True
    assert api.stream_finished(gen)
    with pytest.raises(StopIteration):
        api.stream_next(gen, None)
    api.drop_stream(gen)
    assert len(ops) == 1  # queued for the loop thread, no wakeup
    assert api.adopt_stream_items(5, 2) == [
        (generator_item_id(5, 0), OWNER_ADDR),
        (generator_item_id(5, 1), OWNER_ADDR),
    ]
