"""The generator mixin of the node: items from workers, the streams program threads and workers read.

A worker sends each item of a generator task as it is yielded (GENERATOR_ITEM); the host
hands it to the raylet as ``GeneratorYielded`` and the core routes it to the task's owner,
which answers with ``ItemReady`` (and ``StreamEnded`` after the last). For the driver's
owner, those fill a `HostStream` that `ObjectRefGenerator.__next__` reads on the program
thread; for a worker's owner, they answer that worker's ``stream_next`` requests.
"""

from __future__ import annotations

import time
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
from runtime.core.task import ACTOR_METHOD, ERR_APPLICATION, GEN_STREAMING, TASK, TaskSpec
from runtime.exceptions import RayError
from runtime.generators import ObjectRefGenerator
from runtime.object_ref import ObjectRef
from runtime.real import protocol as p
from runtime.real.addresses import OWNER_ADDR, WORKER_OWNER_BASE
from runtime.real.futures import FAILED, PENDING, READY, Future, ObjectEntry

__all__ = ["HostStream", "StreamMixin", "owner_addr_of_task"]


def owner_addr_of_task(task_id: int) -> int:
    """The address of the owner that submitted ``task_id`` on the single-node host."""
    index = owner_index_of(task_id)
    return OWNER_ADDR if index == 0 else WORKER_OWNER_BASE + index - 1


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


class StreamMixin:
    """Generator tasks on the single-node host (program threads, loop thread, worker requests)."""

    def _init_streams(self) -> None:
        """Create the stream tables and plug the handlers in (called once by the node)."""
        self.streams: dict[int, HostStream] = {}
        self._stream_waits: dict[tuple[int, int], list[StreamWait]] = {}
        self._effects[ItemReady] = self._effect_item_ready
        self._effects[StreamEnded] = self._effect_stream_ended
        self._worker_handlers[p.GENERATOR_ITEM] = self._on_generator_item
        self._request_ops["submit_generator"] = self._req_submit_generator
        self._request_ops["stream_next"] = self._req_stream_next
        self._request_ops["stream_drop"] = self._req_stream_drop

    # -- program threads -------------------------------------------------------------------

    def _submit_generator(self, spec: TaskSpec, implicit: list[int]) -> Any:
        """Submit a generator task: an `ObjectRefGenerator` (streaming) or return 1's ref."""
        if spec.generator != GEN_STREAMING:
            return self._submit_spec(spec, implicit)
        with self._lock:
            self.streams[spec.task_id] = HostStream()  # before any item can arrive
        return ObjectRefGenerator(self._submit_spec(spec, implicit), self)

    def stream_next(self, gen: ObjectRefGenerator, timeout: float | None) -> ObjectRef | None:
        """The next item of `gen` (waiting up to `timeout`; None when it passed)."""
        self._check_open()
        tid = gen._task_id()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            fut = None
            with self._lock:
                s = self.streams.get(tid)
                if s is None:
                    raise RayError(f"{gen!r} is not known to this session")
                index = gen._index
                if s.count > index:
                    gen._index = index + 1
                    return ObjectRef(generator_item_id(tid, index), self)
                if not s.ended:
                    fut = Future(1)
                    s.waiters.append(fut)
            if fut is None:
                if s.error_kind is not None and not gen._raised:
                    gen._raised = True
                    return gen._ref  # the task failed: its error is the last item, as in Ray
                raise StopIteration
            left = None if deadline is None else deadline - time.monotonic()
            if not self._wait_future(fut, left):
                with self._lock:
                    if fut in s.waiters:
                        s.waiters.remove(fut)
                if fut.needed > 0:
                    return None

    def stream_ready(self, gen: ObjectRefGenerator) -> bool:
        """Would ``next(gen)`` return (or stop) without waiting?"""
        s = self.streams.get(gen._task_id())
        return s is not None and (s.count > gen._index or s.ended)

    def stream_finished(self, gen: ObjectRefGenerator) -> bool:
        """Would ``next(gen)`` raise ``StopIteration``?"""
        s = self.streams.get(gen._task_id())
        if s is None or s.count > gen._index or not s.ended:
            return False
        return s.error_kind is None or gen._raised

    def drop_stream(self, gen: ObjectRefGenerator) -> None:
        """`gen` was garbage collected: the items it did not hand out go (queued, no wakeup)."""
        if not self.closed:
            self._ops.append((self._op_drop_stream, (gen._task_id(), gen._index)))

    def _op_drop_stream(self, item: tuple[int, int], now: float) -> None:
        tid, consumed = item
        with self._lock:
            s = self.streams.pop(tid, None)
            if s is not None:
                for index in range(consumed, s.count):
                    self.table.pop(generator_item_id(tid, index), None)
        self.owner.drop_stream(tid, consumed, now, self._out)

    def adopt_stream_items(self, task_id: int, count: int) -> list[ObjectRef]:
        """Refs to the items of dynamic generator `task_id` (its value was unpickled here)."""
        owner = owner_addr_of_task(task_id)
        return [self.adopt_ref(generator_item_id(task_id, i), owner) for i in range(count)]

    def wait_mixed(
        self, items: list[Any], num_returns: int, timeout: float | None
    ) -> tuple[list[Any], list[Any]]:
        """`wait` over ObjectRefs and ObjectRefGenerators (ready: ``next`` would not wait)."""
        self._check_open()
        if len({id(x) for x in items}) != len(items):
            raise ValueError("wait() got duplicate ObjectRefs or generators")
        gens = [x for x in items if isinstance(x, ObjectRefGenerator)]
        refs = [x for x in items if not isinstance(x, ObjectRefGenerator)]
        entries = dict(zip(map(id, refs), self._entries(refs)))
        for g in gens:
            if g._node is not self or g._task_id() not in self.streams:
                raise RayError(f"{g!r} is not known to this session")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
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
                    streams = [self.streams[g._task_id()] for g in gens]
                    for s in streams:
                        s.waiters.append(fut)
            if fut is None:
                ready: list[Any] = []
                rest: list[Any] = []
                for x, flag in zip(items, flags):
                    (ready if flag and len(ready) < num_returns else rest).append(x)
                return ready, rest
            self._wait_future(fut, left)
            with self._lock:
                self._unregister(fut, waiting)
                for s in streams:
                    while fut in s.waiters:
                        s.waiters.remove(fut)

    # -- loop thread: items from workers, the owner's answers ------------------------------

    def _on_generator_item(self, w: Any, msg: tuple, now: float) -> None:
        _, task_id, index, ok, value = msg
        if not ok:
            event = GeneratorYielded(task_id, index, error_kind=ERR_APPLICATION, error=value)
        elif value[0] == p.VALUE_INLINE:
            event = GeneratorYielded(task_id, index, len(value[1]), value[1], False)
        else:
            offset, size = value[1], value[2]
            allocs = self._task_allocs.get(task_id)
            if allocs and offset in allocs:
                allocs.remove(offset)  # the item owns the range now, not the running task
            oid = generator_item_id(task_id, index)
            with self._lock:
                if oid in self.arena_objects:  # a duplicate of a live item: keep the first
                    self.arena.free(offset)
                    return
                self.arena_objects[oid] = (offset, size)
            event = GeneratorYielded(task_id, index, size, None, True)
        self.raylet.handle(event, now, self._out)

    def _effect_item_ready(self, cmd: ItemReady, now: float) -> None:
        if cmd.owner != OWNER_ADDR:
            self._nested_stream_changed(cmd.owner, cmd.task_id, now)
            return
        if cmd.error_kind is None:
            entry = ObjectEntry(READY, cmd.result.payload, cmd.result.stored)
        else:
            entry = ObjectEntry(FAILED, error_kind=cmd.error_kind, error=cmd.error)
        with self._lock:
            s = self.streams.get(cmd.task_id)
            if s is None:
                return  # dropped meanwhile (its owner releases the item)
            self.table[cmd.oid] = entry
            s.count = cmd.index + 1
            waiters, s.waiters = s.waiters, []
            for fut in waiters:
                fut.hit()

    def _effect_stream_ended(self, cmd: StreamEnded, now: float) -> None:
        if cmd.owner != OWNER_ADDR:
            self._nested_stream_changed(cmd.owner, cmd.task_id, now)
            return
        with self._lock:
            s = self.streams.get(cmd.task_id)
            if s is None:
                return
            s.ended = True
            s.error_kind = cmd.error_kind
            waiters, s.waiters = s.waiters, []
            for fut in waiters:
                fut.hit()

    def _end_all_streams(self, kind: str) -> None:
        """Shutdown: end every open stream, waking the threads blocked in ``next()``."""
        with self._lock:
            for s in self.streams.values():
                if not s.ended:
                    s.ended, s.error_kind = True, kind
                waiters, s.waiters = s.waiters, []
                for fut in waiters:
                    fut.hit()

    # -- worker requests (generators consumed by code running in workers) ------------------

    def _req_submit_generator(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        mode, kind, actor_id, fn, args, refs, held, resources, n, retries, retry_exc, name = payload
        owner = self._owner_of(w)
        if kind == ACTOR_METHOD:
            owner.attach_actor(actor_id, self._out)
        self._submit_for(
            w,
            req_id,
            owner,
            now,
            function=fn,
            args=args,
            resources=resources,
            num_returns=n,
            max_retries=retries,
            retry_exceptions=retry_exc,
            name=name,
            arg_refs=refs,
            held_refs=held,
            kind=kind,
            actor_id=actor_id,
            generator=mode,
        )

    def _req_stream_next(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        task_id, index, block = payload
        answer = self._stream_answer(w.owner, task_id, index)
        if answer is not None or not block:
            self._reply(w, req_id, True, answer)
            return
        rec = StreamWait(w, req_id, task_id, index)
        self._stream_waits.setdefault((w.owner.addr, task_id), []).append(rec)
        spec = w.spec
        if spec is not None and spec.kind == TASK:  # its CPU is lent out while it waits
            rec.blocked = spec.task_id
            self.raylet.handle(WorkerBlocked(spec.task_id), now, self._out)
            if w.queue:
                self._revoke(w, [s.task_id for s in w.queue], "blocked")
            if not self._idle and not self._stopping:
                self._spawn_worker()

    def _req_stream_drop(self, w: Any, req_id: int, drops: list, now: float) -> None:
        owner = self._owner_of(w)
        for task_id, consumed in drops:
            owner.drop_stream(task_id, consumed, now, self._out)

    @staticmethod
    def _stream_answer(owner: Any, task_id: int, index: int) -> tuple | None:
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

    def _nested_stream_changed(self, owner_addr: int, task_id: int, now: float) -> None:
        key = (owner_addr, task_id)
        recs = self._stream_waits.get(key)
        if not recs:
            return
        owner = self.components.get(owner_addr)
        keep = []
        for rec in recs:
            answer = self._stream_answer(owner, task_id, rec.index)
            if answer is None:
                keep.append(rec)
                continue
            if rec.blocked:
                self.raylet.handle(WorkerUnblocked(rec.blocked), now, self._out)
            self._reply(rec.w, rec.req_id, True, answer)
        if keep:
            self._stream_waits[key] = keep
        else:
            del self._stream_waits[key]
