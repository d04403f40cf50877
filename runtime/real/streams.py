"""Generator tasks on the node: items from workers, the streams program threads and workers read.

A worker sends each item of a generator task as it is yielded (GENERATOR_ITEM); the host
hands it to the raylet as ``GeneratorYielded`` and the core routes it to the task's owner,
which answers with ``ItemReady`` (and ``StreamEnded`` after the last). For the driver's
owner, those fill a `HostStream` that `ObjectRefGenerator.__next__` reads on the program
thread; for a worker's owner, they answer that worker's ``stream_next`` requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.core.ids import generator_item_id, object_id, owner_index_of
from runtime.core.messages import (
    GeneratorYielded,
    ItemReady,
    StreamEnded,
    WorkerBlocked,
    WorkerUnblocked,
)
from runtime.core.owner import FAILED as OWNER_FAILED
from runtime.core.task import ERR_APPLICATION, GEN_STREAMING, TASK, TaskSpec
from runtime.exceptions import RayError
from runtime.generators import ObjectRefGenerator
from runtime.object_ref import ObjectRef
from runtime.real import protocol as p
from runtime.real import requests as rq
from runtime.real.addresses import OWNER_ADDR, owner_address
from runtime.real.futures import FAILED, PENDING, READY, Future, ObjectEntry
from runtime.real.objects import ObjectTable

__all__ = ["HostStream", "StreamApi", "Streams", "owner_addr_of_task"]


def owner_addr_of_task(task_id: int) -> int:
    """The address of the owner that submitted ``task_id`` (on whichever node)."""
    return owner_address(owner_index_of(task_id))


@dataclass(slots=True)
class HostStream:
    """What program threads see of one streaming task of the driver (guarded by ``_lock``)."""

    count: int = 0
    """Items that arrived (their table entries exist)."""
    ended: bool = False
    error_kind: str | None = None
    """Set when the task itself failed: its return 1 is then the last item."""
    waiters: list[Future] = field(default_factory=list)


@dataclass(slots=True)
class StreamWait:
    """A worker blocked in ``next()`` of a generator its owner holds."""

    w: Any
    req_id: int
    task_id: int
    index: int
    blocked: int = 0
    """The task whose CPU was lent out meanwhile (0: none)."""


class Streams:
    """The loop-thread side of generator tasks: items from workers, the owners' answers,
    workers blocked in ``next()``. Owns the driver's stream table (`table`, under the object
    table's lock), which the program-thread API (`StreamApi`) reads."""

    def __init__(
        self,
        *,
        objects: ObjectTable,
        arena: Any,
        raylet: Any,
        out: list[Any],
        pool: Any,
        nested: Any,
        components: dict[int, Any],
    ) -> None:
        self.table: dict[int, HostStream] = {}
        """The driver's streaming tasks by task id (guarded by ``objects.lock``)."""
        self.waits: dict[tuple[int, int], list[StreamWait]] = {}
        """(owner address, task id) -> the workers blocked in ``next()`` of that generator."""
        self.objects = objects
        self.arena = arena
        self.raylet = raylet
        self.out = out
        self.pool = pool
        self.nested = nested
        self.components = components
        """The node's address map (a worker's owner answers for its streams)."""

    def plug(self, effects: dict[type, Any], handlers: dict[int, Any]) -> None:
        """Register this part's command effects, worker message and worker requests."""
        effects[ItemReady] = self.item_ready
        effects[StreamEnded] = self.stream_ended
        handlers[p.GENERATOR_ITEM] = self.on_generator_item
        self.nested.request_ops[rq.STREAM_NEXT] = self._req_stream_next
        self.nested.request_ops[rq.STREAM_DROP] = self._req_stream_drop

    # -- loop thread: items from workers, the owner's answers ------------------------------

    def on_generator_item(self, w: Any, msg: tuple, now: float) -> None:
        """GENERATOR_ITEM from a worker: record a stored item's range, hand the item to the raylet."""
        _, task_id, index, ok, value = msg
        if not ok:
            event = GeneratorYielded(task_id, index, error_kind=ERR_APPLICATION, error=value)
        elif value[0] == p.VALUE_INLINE:
            event = GeneratorYielded(task_id, index, len(value[1]), value[1], False)
        else:
            offset, size = value[1], value[2]
            allocs = self.pool.task_allocs.get(task_id)
            if allocs and offset in allocs:
                allocs.remove(offset)  # the item owns the range now, not the running task
            oid = generator_item_id(task_id, index)
            with self.objects.lock:
                if oid in self.objects.arena_objects:  # a duplicate of a live item: keep the first
                    self.arena.free(offset)
                    return
                self.objects.arena_objects[oid] = (offset, size)
            event = GeneratorYielded(task_id, index, size, None, True)
        self.raylet.handle(event, now, self.out)

    def item_ready(self, cmd: ItemReady, now: float) -> None:
        """``ItemReady``: a driver stream gets its next item; a worker's blocked ``next()`` may go on."""
        if cmd.owner != OWNER_ADDR:
            self._nested_changed(cmd.owner, cmd.task_id, now)
            return
        if cmd.error_kind is None:
            entry = ObjectEntry(READY, cmd.result.payload, cmd.result.stored)
        else:
            entry = ObjectEntry(FAILED, error_kind=cmd.error_kind, error=cmd.error)
        with self.objects.lock:
            s = self.table.get(cmd.task_id)
            if s is None:
                return  # dropped meanwhile (its owner releases the item)
            self.objects.entries[cmd.oid] = entry
            s.count = cmd.index + 1
            waiters, s.waiters = s.waiters, []
            for fut in waiters:
                fut.hit()

    def stream_ended(self, cmd: StreamEnded, now: float) -> None:
        """``StreamEnded``: a driver stream ends (its waiters wake); a worker's may answer ``end``."""
        if cmd.owner != OWNER_ADDR:
            self._nested_changed(cmd.owner, cmd.task_id, now)
            return
        with self.objects.lock:
            s = self.table.get(cmd.task_id)
            if s is None:
                return
            s.ended = True
            s.error_kind = cmd.error_kind
            waiters, s.waiters = s.waiters, []
            for fut in waiters:
                fut.hit()

    def end_all(self, kind: str) -> None:
        """Shutdown: end every open stream, waking the threads blocked in ``next()``."""
        with self.objects.lock:
            for s in self.table.values():
                if not s.ended:
                    s.ended, s.error_kind = True, kind
                waiters, s.waiters = s.waiters, []
                for fut in waiters:
                    fut.hit()

    # -- worker requests (generators consumed by code running in workers) ------------------

    def _req_stream_next(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        task_id, index, block = payload
        answer = self._answer(w.owner, task_id, index)
        if answer is not None or not block:
            self.nested.reply(w, req_id, True, answer)
            return
        rec = StreamWait(w, req_id, task_id, index)
        self.waits.setdefault((w.owner.addr, task_id), []).append(rec)
        spec = w.spec
        if spec is not None and spec.kind == TASK:  # its CPU is lent out while it waits
            rec.blocked = spec.task_id
            self.raylet.handle(WorkerBlocked(spec.task_id), now, self.out)
            self.pool.block(w)

    def _req_stream_drop(self, w: Any, req_id: int, drops: list, now: float) -> None:
        owner = self.nested.owner_of(w)
        for task_id, consumed in drops:
            owner.drop_stream(task_id, consumed, now, self.out)

    @staticmethod
    def _answer(owner: Any, task_id: int, index: int) -> tuple | None:
        """``("item", oid)``, ``("end", failed)``, or None while item `index` is to come."""
        if owner is None:
            return ("end", False)
        stream = owner.stream_state(task_id)
        if stream is None:
            return ("end", False)
        if stream.count > index:
            return ("item", generator_item_id(task_id, index))
        if not stream.ended:
            return None
        done = owner.object_entry(object_id(task_id, 1))
        return ("end", done is not None and done.state == OWNER_FAILED)

    def _nested_changed(self, owner_addr: int, task_id: int, now: float) -> None:
        key = (owner_addr, task_id)
        recs = self.waits.get(key)
        if not recs:
            return
        owner = self.components.get(owner_addr)
        keep = []
        for rec in recs:
            answer = self._answer(owner, task_id, rec.index)
            if answer is None:
                keep.append(rec)
                continue
            if rec.blocked:
                self.raylet.handle(WorkerUnblocked(rec.blocked), now, self.out)
            self.nested.reply(rec.w, rec.req_id, True, answer)
        if keep:
            self.waits[key] = keep
        else:
            del self.waits[key]


class StreamApi:
    """The program-thread API of generator tasks (the loop-thread side: `Streams`).

    It reads the stream table `Streams` owns (under the object table's lock); the client's
    submission, waiting and table lookups, and the node the refs belong to, are passed in.
    """

    def __init__(
        self,
        *,
        node: Any,
        ops: Any,
        check_open: Callable[[], None],
        closed: Callable[[], bool],
        owner: Any,
        objects: ObjectTable,
        out: list[Any],
        submit_spec: Callable[[TaskSpec, list[int]], Any],
        wait_future: Callable[[Future, float | None], bool],
        entries: Callable[[list[ObjectRef]], list[ObjectEntry]],
        unregister: Callable[[Future, list[ObjectEntry]], None],
        adopt_ref: Callable[[int, int], ObjectRef],
    ) -> None:
        self.node = node
        """The node the refs and generators made here belong to."""
        self.ops = ops
        self.check_open = check_open
        self.closed = closed
        """True once the node is shut down (a dropped generator then queues nothing)."""
        self.owner = owner
        self.objects = objects
        self.streams: Any = None
        """The loop-thread side, whose stream table this reads (see `connect`)."""
        self.out = out
        self.submit_spec = submit_spec
        self.wait_future = wait_future
        self.entries = entries
        self.unregister = unregister
        self.adopt_ref = adopt_ref

    def connect(self, streams: Streams) -> None:
        """Read the stream table of `streams` (made after this part: it needs the pool)."""
        self.streams = streams

    # -- program threads -------------------------------------------------------------------

    def submit_generator(self, spec: TaskSpec, implicit: list[int]) -> Any:
        """Submit a generator task: an `ObjectRefGenerator` (streaming) or return 1's ref."""
        if spec.generator != GEN_STREAMING:
            return self.submit_spec(spec, implicit)
        with self.objects.lock:
            self.streams.table[spec.task_id] = HostStream()  # before any item can arrive
        return ObjectRefGenerator(self.submit_spec(spec, implicit), self.node)

    def stream_next(self, gen: ObjectRefGenerator, timeout: float | None) -> ObjectRef | None:
        """The next item of `gen` (waiting up to `timeout`; None when it passed)."""
        self.check_open()
        tid = gen._task_id()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            fut = None
            with self.objects.lock:
                s = self.streams.table.get(tid)
                if s is None:
                    raise RayError(f"{gen!r} is not known to this session")
                index = gen._index
                if s.count > index:
                    gen._index = index + 1
                    return ObjectRef(generator_item_id(tid, index), self.node)
                if not s.ended:
                    fut = Future(1)
                    s.waiters.append(fut)
            if fut is None:
                if s.error_kind is not None and not gen._raised:
                    gen._raised = True
                    return gen._ref  # the task failed: its error is the last item, as in Ray
                raise StopIteration
            left = None if deadline is None else deadline - time.monotonic()
            if not self.wait_future(fut, left):
                with self.objects.lock:
                    if fut in s.waiters:
                        s.waiters.remove(fut)
                if fut.needed > 0:
                    return None

    def stream_ready(self, gen: ObjectRefGenerator) -> bool:
        """Would ``next(gen)`` return (or stop) without waiting?"""
        s = self.streams.table.get(gen._task_id())
        return s is not None and (s.count > gen._index or s.ended)

    def stream_finished(self, gen: ObjectRefGenerator) -> bool:
        """Would ``next(gen)`` raise ``StopIteration``?"""
        s = self.streams.table.get(gen._task_id())
        if s is None or s.count > gen._index or not s.ended:
            return False
        return s.error_kind is None or gen._raised

    def drop_stream(self, gen: ObjectRefGenerator) -> None:
        """`gen` was garbage collected: the items it did not hand out go (queued, no wakeup)."""
        if not self.closed():
            self.ops.append((self._op_drop_stream, (gen._task_id(), gen._index)))

    def _op_drop_stream(self, item: tuple[int, int], now: float) -> None:
        """Loop thread: forget a dropped generator's stream and its unconsumed items."""
        tid, consumed = item
        with self.objects.lock:
            s = self.streams.table.pop(tid, None)
            if s is not None:
                for index in range(consumed, s.count):
                    self.objects.entries.pop(generator_item_id(tid, index), None)
        self.owner.drop_stream(tid, consumed, now, self.out)

    def adopt_stream_items(self, task_id: int, count: int) -> list[ObjectRef]:
        """Refs to the items of dynamic generator `task_id` (its value was unpickled here)."""
        owner = owner_addr_of_task(task_id)
        return [self.adopt_ref(generator_item_id(task_id, i), owner) for i in range(count)]

    def wait_mixed(
        self, items: list[Any], num_returns: int, timeout: float | None
    ) -> tuple[list[Any], list[Any]]:
        """`wait` over ObjectRefs and ObjectRefGenerators (ready: ``next`` would not wait)."""
        self.check_open()
        if len({id(x) for x in items}) != len(items):
            raise ValueError("wait() got duplicate ObjectRefs or generators")
        gens = [x for x in items if isinstance(x, ObjectRefGenerator)]
        refs = [x for x in items if not isinstance(x, ObjectRefGenerator)]
        entries = dict(zip(map(id, refs), self.entries(refs)))
        for g in gens:
            if g._node is not self.node or g._task_id() not in self.streams.table:
                raise RayError(f"{g!r} is not known to this session")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.objects.lock:
                flags = [
                    self.stream_ready(x)
                    if isinstance(x, ObjectRefGenerator)
                    else entries[id(x)].state != PENDING
                    for x in items
                ]
                left = None if deadline is None else deadline - time.monotonic()
                fut = None
                if sum(flags) < num_returns and (left is None or left > 0):
                    fut = Future(1)
                    waiting = [e for e in entries.values() if e.state == PENDING]
                    for e in waiting:
                        if e.waiters is None:
                            e.waiters = []
                        e.waiters.append(fut)
                    streams = [self.streams.table[g._task_id()] for g in gens]
                    for s in streams:
                        s.waiters.append(fut)
            if fut is None:
                ready: list[Any] = []
                rest: list[Any] = []
                for x, flag in zip(items, flags):
                    (ready if flag and len(ready) < num_returns else rest).append(x)
                return ready, rest
            self.wait_future(fut, left)
            with self.objects.lock:
                self.unregister(fut, waiting)
                for s in streams:
                    while fut in s.waiters:
                        s.waiters.remove(fut)
