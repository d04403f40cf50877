"""Single-node host: GCS, global scheduler, raylet and owner on one event-loop thread, over forked workers.

The control plane (`runtime.core`) decides; this module only turns its commands into
effects and feeds results back as events:

* ``Send`` between in-process components is a direct ``handle`` call on the loop thread;
* ``Dispatch`` sends EXECUTE_TASK to an idle worker (a host backlog holds the rest);
* ``ObjectReady`` resolves the futures user threads wait on; ``Free`` releases arena
  ranges (deferred while a value returned by ``get`` still aliases them);
* ``SetTimer`` goes into a heap that bounds the ``select`` timeout.

User threads never touch core objects: they queue operations on a deque and make one
coalesced wakeup write; the loop drains the deque in FIFO order (so a reference drop is
never seen before the submission that created it). Results are read on the user thread
straight from the object table (guarded by one lock) and the shared-memory arena.
"""

from __future__ import annotations

import _thread
import heapq
import itertools
import os
import random
import selectors
import signal
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from runtime.core.config import CoreConfig
from runtime.core.gcs import Gcs
from runtime.core.global_scheduler import GlobalScheduler
from runtime.core.ids import object_id
from runtime.core.messages import (
    Dispatch,
    Free,
    ObjectReady,
    Send,
    SetTimer,
    TaskFinished,
    TimerFired,
    Trace,
    Transfer,
)
from runtime.core.owner import Owner
from runtime.core.raylet import Raylet
from runtime.core.task import (
    ERR_APPLICATION,
    ERR_CANCELLED,
    ERR_NODE_DIED,
    ERR_STORE_FULL,
    ERR_UNSCHEDULABLE,
    ERR_WORKER_DIED,
    TaskSpec,
)
from runtime.exceptions import (
    GetTimeoutError,
    ObjectLostError,
    ObjectStoreFullError,
    RayError,
    TaskCancelledError,
    TaskUnschedulableError,
    WorkerCrashedError,
)
from runtime.object_ref import ObjectRef
from runtime.real import protocol as p
from runtime.real.arena import Arena
from runtime.real.serialization import (
    INLINE_THRESHOLD,
    SerializedObject,
    deserialize_pinned,
    loads,
    serialize,
    write_to_arena,
)
from runtime.real.transport import Connection
from runtime.real.worker import ZYGOTE_REPLY, ZYGOTE_REQUEST, fork_worker, start_zygote

__all__ = ["Future", "Node"]

GCS_ADDR, GS_ADDR, RAYLET_ADDR, OWNER_ADDR = 0, 1, 2, 3
NODE_ID = 0
PENDING, READY, FAILED = 0, 1, 2
ERR_NO_WORKERS = "no_workers"
ERR_SHUTDOWN = "shutdown"

_sessions = itertools.count(1)

_ERROR_TYPES: dict[str, type[RayError]] = {
    ERR_UNSCHEDULABLE: TaskUnschedulableError,
    ERR_STORE_FULL: ObjectStoreFullError,
    ERR_WORKER_DIED: WorkerCrashedError,
    ERR_NO_WORKERS: WorkerCrashedError,
    ERR_NODE_DIED: ObjectLostError,
    ERR_CANCELLED: TaskCancelledError,
    ERR_SHUTDOWN: RayError,
}


class Future:
    """A countdown latch on `_thread.allocate_lock`: `wait` returns after `needed` hits."""

    __slots__ = ("_lock", "needed")

    def __init__(self, needed: int) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self.needed = needed

    def hit(self) -> None:
        """Count one resolved object (called with the node's table lock held)."""
        self.needed -= 1
        if self.needed == 0:
            self._lock.release()

    def wait(self, timeout: float | None) -> bool:
        """Block until released or `timeout` seconds passed; return whether released."""
        if timeout is None:
            return self._lock.acquire()
        return self._lock.acquire(True, max(0.0, timeout))


@dataclass(slots=True)
class ObjectEntry:
    """What the host knows of an object the program references: state, value, waiters."""

    state: int = PENDING
    payload: bytes | None = None
    stored: bool = False
    error_kind: str | None = None
    error: Any = None
    waiters: list[Future] | None = None


@dataclass(slots=True)
class WorkerHandle:
    """The driver's side of one worker process."""

    worker_id: int
    pid: int
    conn: Connection
    functions: set[int] = field(default_factory=set)
    spec: TaskSpec | None = None
    outbox: list[tuple] = field(default_factory=list)
    alive: bool = True


class Node:
    """The driver-side host of one node: core components, workers, arena and event loop."""

    def __init__(
        self,
        num_cpus: float,
        object_store_memory: int,
        *,
        resources: dict[str, float] | None = None,
        scheduling_policy: str = "bottom_up",
        inline_threshold: int = INLINE_THRESHOLD,
        num_workers: int | None = None,
        prefault_bytes: int = 16 << 20,
        spillback_threshold: int = 1 << 30,
        seed: int = 0,
    ) -> None:
        self.session = next(_sessions)
        self.inline_threshold = inline_threshold
        # one node: spilling to the global scheduler can only bring the task back here
        self.config = CoreConfig(
            policy=scheduling_policy,
            inline_threshold=inline_threshold,
            spillback_threshold=spillback_threshold,
        )
        self.arena = Arena(object_store_memory, prefault_bytes=prefault_bytes)
        total = {"CPU": float(num_cpus), **{k: float(v) for k, v in (resources or {}).items()}}
        self.gcs = Gcs(GCS_ADDR, self.config)
        self.gs = GlobalScheduler(GS_ADDR, GCS_ADDR, random.Random(seed), self.config)
        self.raylet = Raylet(
            NODE_ID, RAYLET_ADDR, GCS_ADDR, GS_ADDR, total, self.arena.capacity, self.config
        )
        self.owner = Owner(OWNER_ADDR, NODE_ID, 0, RAYLET_ADDR, GCS_ADDR, self.config)
        self.components: dict[int, Any] = {
            GCS_ADDR: self.gcs,
            GS_ADDR: self.gs,
            RAYLET_ADDR: self.raylet,
            OWNER_ADDR: self.owner,
        }
        # state shared with user threads (guarded by _lock) --------------------------------
        self._lock = threading.Lock()
        self._ids_lock = threading.Lock()
        self.table: dict[int, ObjectEntry] = {}
        self.arena_objects: dict[int, tuple[int, int]] = {}
        self._pins: dict[int, int] = {}
        self._doomed: set[int] = set()
        self._ops: deque[tuple[Callable[[Any, float], None], Any]] = deque()
        self._unpins: deque[int] = deque()
        self._functions: dict[int, bytes] = {}
        self._fn_ids = itertools.count(1)
        self._wake_pending = False
        self._stopping = False
        self.closed = False
        # loop-thread state -----------------------------------------------------------------
        self._out: list[Any] = []
        self._timers: list[tuple[float, int, int, str]] = []
        self._timer_seq = itertools.count()
        self._task_allocs: dict[int, list[int]] = {}
        self._backlog: deque[TaskSpec] = deque()
        self._idle: list[WorkerHandle] = []
        self._dirty: list[WorkerHandle] = []
        self._t0 = time.monotonic()
        self.loop_error: BaseException | None = None
        self._effects: dict[type, Callable[[Any, float], None]] = {
            Send: self._effect_send,
            Dispatch: self._effect_dispatch,
            ObjectReady: self._effect_object_ready,
            Free: self._effect_free,
            SetTimer: self._effect_set_timer,
            Trace: self._effect_trace,
            Transfer: self._effect_transfer,
        }
        self._worker_handlers: dict[int, Callable[[WorkerHandle, tuple, float], None]] = {
            p.TASK_RESULT: self._on_task_result,
            p.ALLOC_REQUEST: self._on_alloc_request,
        }
        # workers: fork before any thread exists ------------------------------------------
        self.workers: list[WorkerHandle] = []
        try:
            for i in range(num_workers or max(1, int(num_cpus))):
                pid, conn = fork_worker(
                    self.arena, i, [w.conn for w in self.workers], inline_threshold
                )
                self.workers.append(WorkerHandle(i, pid, conn))
            self._zygote_pid, self._zygote = start_zygote(
                self.arena, [w.conn for w in self.workers], inline_threshold
            )
        except BaseException:
            self._teardown_workers()
            self.arena.close()
            raise
        self._spawning = 0
        self._next_worker_id = len(self.workers)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, (self._on_wakeup, None))
        self._zygote.setblocking(False)
        self._sel.register(self._zygote, selectors.EVENT_READ, (self._on_zygote_reply, None))
        for w in self.workers:
            w.conn.sock.setblocking(False)
            self._sel.register(w.conn, selectors.EVENT_READ, (self._on_worker_io, w))
            self._idle.append(w)
        out = self._out
        self.gs.start(0.0, out)
        self.raylet.start(0.0, out)
        self._execute(0.0)
        self.arena.prefault_in_background()
        self._thread = threading.Thread(target=self._loop, name="twinray-node", daemon=True)
        self._thread.start()

    # =====================================================================================
    # user-thread API
    # =====================================================================================

    def register_function(self, pickled: bytes) -> int:
        """Give a pickled function an id on this node (workers receive it on first use)."""
        fn_id = next(self._fn_ids)
        self._functions[fn_id] = pickled
        return fn_id

    def submit(self, rf: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        """Submit a task of remote function `rf`; return its ObjectRef(s)."""
        self._check_open()
        fn_id = rf._function_id(self)
        name = rf.__qualname__
        arg_refs: list[int] = []
        implicit: list[int] = []
        try:
            a = tuple(
                self._encode_arg(v, f"argument {i} of {name}()", arg_refs, implicit)
                for i, v in enumerate(args)
            )
            kw = {
                k: self._encode_arg(v, f"argument '{k}' of {name}()", arg_refs, implicit)
                for k, v in kwargs.items()
            }
        except BaseException:
            for oid in implicit:
                self._ops.append((self._op_release, oid))
            raise
        with self._ids_lock:
            tid = self.owner.new_task_id()
        n = options.num_returns
        spec = TaskSpec(
            task_id=tid,
            owner=OWNER_ADDR,
            owner_node=NODE_ID,
            function=fn_id,
            args=(a, kw),
            resources=options.resource_demand(),
            num_returns=n,
            max_retries=options.max_retries,
            retry_exceptions=options.retry_exceptions,
            name=options.name or name,
            arg_refs=tuple(arg_refs),
        )
        returns = [object_id(tid, i) for i in range(1, n + 1)]
        with self._lock:
            for oid in returns:
                self.table[oid] = ObjectEntry()
        ops = self._ops
        ops.append((self._op_submit, spec))
        for oid in implicit:
            ops.append((self._op_release, oid))
        self._wake()
        refs = [ObjectRef(oid, self) for oid in returns]
        if n == 1:
            return refs[0]
        return refs if n else None

    def _encode_arg(self, value: Any, what: str, arg_refs: list[int], implicit: list[int]) -> Any:
        """An encoded value tuple, or an object id (int) for refs and large values."""
        if isinstance(value, ObjectRef):
            if value._node is not self:
                raise ValueError(f"{value!r} ({what}) belongs to another session")
            arg_refs.append(value._oid)
            return value._oid
        obj = serialize(value, what)
        if obj.total_size < self.inline_threshold:
            return (p.VALUE_INLINE, obj.to_bytes())
        oid = self._put_serialized(obj)  # large arguments become implicit puts, like Ray
        implicit.append(oid)
        arg_refs.append(oid)
        return oid

    def put(self, value: Any) -> ObjectRef:
        """Store `value` (inline or in the arena) and return its ObjectRef."""
        self._check_open()
        if isinstance(value, ObjectRef):
            raise TypeError("put() of an ObjectRef is not supported")
        oid = self._put_serialized(serialize(value, "value passed to put()"))
        return ObjectRef(oid, self)

    def _put_serialized(self, obj: SerializedObject) -> int:
        with self._ids_lock:
            oid = self.owner.new_put_id()
        size = obj.total_size
        if size < self.inline_threshold:
            payload: bytes | None = obj.to_bytes()
            entry = ObjectEntry(READY, payload)
        else:
            payload = None
            offset = self._allocate(size)
            write_to_arena(self.arena, offset, obj)  # the copy runs on the caller's thread
            entry = ObjectEntry(READY, None, True)
            with self._lock:
                self.arena_objects[oid] = (offset, size)
        with self._lock:
            self.table[oid] = entry
        self._ops.append((self._op_put, (oid, size, payload, entry.stored)))
        return oid

    def get(self, refs: list[ObjectRef], timeout: float | None) -> list[Any]:
        """Wait for `refs` and return their values (raising a task's error)."""
        entries = self._entries(refs)
        fut = None
        with self._lock:
            pending = [e for e in entries if e.state == PENDING]
            if pending:
                fut = Future(len(pending))
                for e in pending:
                    if e.waiters is None:
                        e.waiters = []
                    e.waiters.append(fut)
        if fut is not None and not fut.wait(timeout):
            with self._lock:
                self._unregister(fut, pending)
                left = sum(e.state == PENDING for e in pending)
            if left:
                raise GetTimeoutError(
                    f"get() timed out after {timeout} s: {left} of {len(refs)} object(s) not ready"
                )
        return [self._value(r._oid, e) for r, e in zip(refs, entries)]

    def wait(
        self, refs: list[ObjectRef], num_returns: int, timeout: float | None
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """Return `(ready, not_ready)` once `num_returns` are ready or `timeout` passed."""
        entries = self._entries(refs)
        fut = None
        with self._lock:
            done = sum(e.state != PENDING for e in entries)
            pending = [e for e in entries if e.state == PENDING]
            if done < num_returns and (timeout is None or timeout > 0):
                fut = Future(num_returns - done)
                for e in pending:
                    if e.waiters is None:
                        e.waiters = []
                    e.waiters.append(fut)
        if fut is not None:
            fut.wait(timeout)
            with self._lock:
                self._unregister(fut, pending)
        ready: list[ObjectRef] = []
        not_ready: list[ObjectRef] = []
        for r, e in zip(refs, entries):
            if e.state != PENDING and len(ready) < num_returns:
                ready.append(r)
            else:
                not_ready.append(r)
        return ready, not_ready

    def release_ref(self, oid: int) -> None:
        """Drop the program's reference to `oid` (called from `ObjectRef.__del__`)."""
        if not self.closed:
            self._ops.append((self._op_release, oid))

    def _entries(self, refs: list[ObjectRef]) -> list[ObjectEntry]:
        self._check_open()
        table = self.table
        entries = []
        for r in refs:
            if not isinstance(r, ObjectRef):
                raise TypeError(f"expected an ObjectRef, got {type(r).__name__}")
            e = table.get(r._oid)
            if e is None or r._node is not self:
                raise ObjectLostError(f"{r!r} is not known to this session")
            entries.append(e)
        return entries

    @staticmethod
    def _unregister(fut: Future, entries: list[ObjectEntry]) -> None:
        for e in entries:
            if e.waiters:
                while fut in e.waiters:
                    e.waiters.remove(fut)

    def _value(self, oid: int, e: ObjectEntry) -> Any:
        if e.state == READY:
            if not e.stored:
                return loads(e.payload)
            with self._lock:
                offset, size = self.arena_objects[oid]
                self._pins[offset] = self._pins.get(offset, 0) + 1
            release = partial(self._unpins.append, offset)
            return deserialize_pinned(self.arena.view(offset, size), release)
        raise _error_of(e.error_kind, e.error)

    def _allocate(self, nbytes: int) -> int:
        """Reserve an arena range (any thread); retry once after applying pending unpins."""
        with self._lock:
            try:
                return self.arena.allocate(nbytes)
            except ObjectStoreFullError:
                self._apply_unpins_locked()
                return self.arena.allocate(nbytes)

    def _wake(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._wake_w.send(b"\0")
            except (BlockingIOError, OSError):
                pass

    def _check_open(self) -> None:
        if self.closed:
            raise RayError("the twinray node is shut down; call init() first")
        if self.loop_error is not None:
            raise RayError(f"the twinray event loop crashed: {self.loop_error!r}")

    # =====================================================================================
    # event loop
    # =====================================================================================

    def _loop(self) -> None:
        sel, ops, timers = self._sel, self._ops, self._timers
        clock, t0 = time.monotonic, self._t0
        try:
            while not self._stopping:
                if ops or self._unpins:
                    timeout: float | None = 0.0
                elif timers:
                    timeout = max(0.0, timers[0][0] - (clock() - t0))
                else:
                    timeout = None
                events = sel.select(timeout)
                now = clock() - t0
                for key, mask in events:
                    handler, arg = key.data
                    handler(arg, mask, now)
                while timers and timers[0][0] <= now:
                    _, _, addr, key = heapq.heappop(timers)
                    self.components[addr].handle(TimerFired(key), now, self._out)
                if self._unpins:
                    with self._lock:
                        self._apply_unpins_locked()
                while ops:
                    fn, arg = ops.popleft()
                    fn(arg, now)
                if self._out:
                    self._execute(now)
                if self._dirty:
                    self._flush_workers()
        except BaseException as exc:  # keep user threads from hanging on a dead loop
            self.loop_error = exc
            traceback.print_exc()
            self._fail_all_pending(ERR_SHUTDOWN, f"event loop crashed: {exc!r}")

    def _execute(self, now: float) -> None:
        """Turn every queued command into its effect (effects may queue more)."""
        out, effects = self._out, self._effects
        i = 0
        while i < len(out):
            cmd = out[i]
            i += 1
            effects[type(cmd)](cmd, now)
        out.clear()

    # -- operations queued by user threads -------------------------------------------------

    def _op_submit(self, spec: TaskSpec, now: float) -> None:
        self.owner.submit(spec, now, self._out)

    def _op_put(self, item: tuple[int, int, bytes | None, bool], now: float) -> None:
        oid, size, payload, stored = item
        self.owner.put(size, payload, stored, now, self._out, oid=oid)

    def _op_release(self, oid: int, now: float) -> None:
        with self._lock:
            self.table.pop(oid, None)
        self.owner.remove_ref(oid, now, self._out)

    def _op_stop(self, _: Any, now: float) -> None:
        self._stopping = True

    def _on_wakeup(self, _: Any, mask: int, now: float) -> None:
        self._wake_pending = False
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    # -- command effects -------------------------------------------------------------------

    def _effect_send(self, cmd: Send, now: float) -> None:
        self.components[cmd.dst].handle(cmd.msg, now, self._out)

    def _effect_dispatch(self, cmd: Dispatch, now: float) -> None:
        spec = cmd.spec
        if self._idle:
            self._start_task(self._idle.pop(), spec)
        elif self._spawning or any(w.alive for w in self.workers):
            self._backlog.append(spec)
        else:
            event = TaskFinished(
                spec.task_id, [], ERR_NO_WORKERS, "no worker process is left on this node"
            )
            self.raylet.handle(event, now, self._out)

    def _effect_object_ready(self, cmd: ObjectReady, now: float) -> None:
        oid = cmd.oid
        with self._lock:
            if cmd.error_kind is not None and oid in self.arena_objects:
                self._free_locked(oid)  # a stored output the store refused, or a failed retry
            e = self.table.get(oid)
            if e is None:
                return  # the program dropped the reference already
            if cmd.error_kind is None:
                result = cmd.result
                e.stored = result.stored
                e.payload = result.payload
                e.state = READY
            else:
                e.error_kind = cmd.error_kind
                e.error = cmd.error
                e.state = FAILED
            waiters, e.waiters = e.waiters, None
            for fut in waiters or ():
                fut.hit()

    def _effect_free(self, cmd: Free, now: float) -> None:
        with self._lock:
            self._free_locked(cmd.oid)

    def _effect_set_timer(self, cmd: SetTimer, now: float) -> None:
        heapq.heappush(self._timers, (now + cmd.delay, next(self._timer_seq), cmd.addr, cmd.key))

    def _effect_trace(self, cmd: Trace, now: float) -> None:
        pass

    def _effect_transfer(self, cmd: Transfer, now: float) -> None:
        raise RuntimeError(f"a single-node host cannot transfer objects: {cmd!r}")

    # -- arena bookkeeping (call with _lock held) ------------------------------------------

    def _free_locked(self, oid: int) -> None:
        loc = self.arena_objects.pop(oid, None)
        if loc is None:
            return
        offset = loc[0]
        if self._pins.get(offset):
            self._doomed.add(offset)  # a value from get() still aliases it
        else:
            self.arena.free(offset)

    def _apply_unpins_locked(self) -> None:
        unpins, pins = self._unpins, self._pins
        while unpins:
            offset = unpins.popleft()
            left = pins[offset] - 1
            if left:
                pins[offset] = left
                continue
            del pins[offset]
            if offset in self._doomed:
                self._doomed.discard(offset)
                self.arena.free(offset)

    # -- workers ---------------------------------------------------------------------------

    def _start_task(self, w: WorkerHandle, spec: TaskSpec) -> None:
        fn_id = spec.function
        if fn_id not in w.functions:
            w.outbox.append(p.register_function(fn_id, self._functions[fn_id]))
            w.functions.add(fn_id)
        args, kwargs = spec.args
        resolve = self._resolve_arg
        a = tuple(resolve(spec, v) for v in args)
        kw = {k: resolve(spec, v) for k, v in kwargs.items()} if kwargs else {}
        w.outbox.append(p.execute_task(spec.task_id, fn_id, a, kw, spec.num_returns))
        w.spec = spec
        self._dirty.append(w)

    def _resolve_arg(self, spec: TaskSpec, value: Any) -> tuple:
        if type(value) is not int:
            return value
        inlined = spec.inlined
        if inlined is not None and value in inlined:
            return (p.VALUE_INLINE, inlined[value])
        with self._lock:
            offset, size = self.arena_objects[value]
        return (p.VALUE_ARENA, offset, size)

    def _flush_workers(self) -> None:
        for w in self._dirty:
            if w.outbox and w.alive:
                try:
                    done = w.conn.send_many(w.outbox)
                except OSError:
                    done = True  # the EOF on read reports the death
                w.outbox.clear()
                if not done:
                    self._sel.modify(
                        w.conn,
                        selectors.EVENT_READ | selectors.EVENT_WRITE,
                        (self._on_worker_io, w),
                    )
        self._dirty.clear()

    def _on_worker_io(self, w: WorkerHandle, mask: int, now: float) -> None:
        if mask & selectors.EVENT_WRITE and w.conn.flush():
            self._sel.modify(w.conn, selectors.EVENT_READ, (self._on_worker_io, w))
        if not mask & selectors.EVENT_READ:
            return
        try:
            msgs = w.conn.recv_many()
        except (EOFError, OSError):
            self._on_worker_died(w, now)
            return
        handlers = self._worker_handlers
        for msg in msgs:
            handlers[msg[0]](w, msg, now)

    def _on_task_result(self, w: WorkerHandle, msg: tuple, now: float) -> None:
        _, task_id, ok, payload = msg
        w.spec = None
        allocs = self._task_allocs.pop(task_id, None)
        if ok:
            outputs: list[tuple[int, Any]] = []
            stored: list[bool] = []
            for i, enc in enumerate(payload):
                if enc[0] == p.VALUE_INLINE:
                    outputs.append((len(enc[1]), enc[1]))
                    stored.append(False)
                else:
                    with self._lock:
                        self.arena_objects[object_id(task_id, i + 1)] = (enc[1], enc[2])
                    outputs.append((enc[2], None))
                    stored.append(True)
            event = TaskFinished(task_id, outputs, None, None, stored)
        else:
            if allocs:
                with self._lock:
                    for offset in allocs:
                        self.arena.free(offset)
            event = TaskFinished(task_id, [], ERR_APPLICATION, payload)
        self.raylet.handle(event, now, self._out)
        self._worker_idle(w)

    def _on_alloc_request(self, w: WorkerHandle, msg: tuple, now: float) -> None:
        _, task_id, nbytes = msg
        try:
            offset = self._allocate(nbytes)
            self._task_allocs.setdefault(task_id, []).append(offset)
        except ObjectStoreFullError:
            offset = -1
        w.outbox.append(p.alloc_reply(offset))
        self._dirty.append(w)

    def _worker_idle(self, w: WorkerHandle) -> None:
        if self._backlog:
            self._start_task(w, self._backlog.popleft())
        else:
            self._idle.append(w)

    def _on_worker_died(self, w: WorkerHandle, now: float) -> None:
        w.alive = False
        self._sel.unregister(w.conn)
        w.conn.close()
        _reap(w.pid, 1.0)  # its socket closed: it is exiting
        if w in self._idle:
            self._idle.remove(w)
        if not self._stopping:
            self._spawn_worker()
        spec, w.spec = w.spec, None
        if spec is None:
            return
        allocs = self._task_allocs.pop(spec.task_id, None)
        if allocs:
            with self._lock:
                for offset in allocs:
                    self.arena.free(offset)
        detail = f"worker {w.worker_id} (pid {w.pid}) died while running {spec.name}()"
        self.raylet.handle(TaskFinished(spec.task_id, [], ERR_WORKER_DIED, detail), now, self._out)
        if not self._spawning and not any(x.alive for x in self.workers):
            backlog, self._backlog = self._backlog, deque()
            for queued in backlog:
                event = TaskFinished(
                    queued.task_id, [], ERR_NO_WORKERS, "no worker process is left on this node"
                )
                self.raylet.handle(event, now, self._out)

    def _spawn_worker(self) -> None:
        """Ask the zygote for a replacement worker (fork is unsafe in this threaded process)."""
        worker_id = self._next_worker_id
        self._next_worker_id += 1
        try:
            self._zygote.send(ZYGOTE_REQUEST.pack(worker_id))
        except OSError:
            return
        self._spawning += 1

    def _on_zygote_reply(self, _: Any, mask: int, now: float) -> None:
        try:
            data, fds, _flags, _addr = socket.recv_fds(self._zygote, 64, 1)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data:
            self._sel.unregister(self._zygote)
            self._spawning = 0
            return
        self._spawning -= 1
        worker_id, pid = ZYGOTE_REPLY.unpack(data)
        sock = socket.socket(fileno=fds[0])
        sock.setblocking(False)
        w = WorkerHandle(worker_id, pid, Connection(sock))
        self.workers.append(w)
        self._sel.register(w.conn, selectors.EVENT_READ, (self._on_worker_io, w))
        self._worker_idle(w)

    # =====================================================================================
    # shutdown
    # =====================================================================================

    def shutdown(self) -> None:
        """Stop the loop, stop and reap every worker, release the arena. Idempotent."""
        if self.closed:
            return
        self._ops.append((self._op_stop, None))
        self._wake_pending = False
        self._wake()
        self._thread.join(timeout=10)
        self.closed = True
        self._teardown_workers()
        self._fail_all_pending(ERR_SHUTDOWN, "the node was shut down")
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
        self.arena.close()

    def _teardown_workers(self) -> None:
        for w in self.workers:
            if w.alive and w.spec is not None:  # busy: do not wait for the task to finish
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            elif w.alive:
                try:
                    w.conn.sock.setblocking(True)
                    w.conn.sock.settimeout(1.0)
                    w.conn.send_many([p.shutdown()])
                except OSError:
                    pass
        for w in self.workers:
            if not w.conn.closed:
                w.conn.close()
            w.alive = False
        deadline = time.monotonic() + 5.0
        for w in self.workers:
            _reap(w.pid, max(0.0, deadline - time.monotonic()))  # no-op for the zygote's
        zygote = getattr(self, "_zygote", None)
        if zygote is not None:
            zygote.close()  # the zygote reaps its workers and exits
            _reap(self._zygote_pid, 10.0)

    def _fail_all_pending(self, kind: str, detail: str) -> None:
        with self._lock:
            for e in self.table.values():
                if e.state == PENDING:
                    e.state, e.error_kind, e.error = FAILED, kind, detail
                    waiters, e.waiters = e.waiters, None
                    for fut in waiters or ():
                        fut.hit()


def _reap(pid: int, timeout: float) -> None:
    """Wait up to `timeout` s for `pid` to exit, then SIGKILL it; never leave a zombie."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        if time.monotonic() >= deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            return
        time.sleep(0.002)


def _error_of(kind: str | None, error: Any) -> BaseException:
    """The exception `get` raises for an object that failed with `kind`/`error`."""
    if isinstance(error, tuple) and len(error) == 5:
        return p.decode_error(error)
    cls = _ERROR_TYPES.get(kind or "", RayError)
    return cls(str(error))
