"""The node's worker pool: start tasks on workers, read their replies, replace dead ones."""

from __future__ import annotations

import itertools
import os
import selectors
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.core.ids import object_id
from runtime.core.messages import (
    TaskFinished,
    Unassigned,
)
from runtime.core.task import (
    ACTOR_METHOD,
    ERR_APPLICATION,
    ERR_APPLICATION_FINAL,
    ERR_WORKER_DIED,
    TASK,
    TaskSpec,
)
from runtime.exceptions import (
    ObjectStoreFullError,
)
from runtime.real import protocol as p
from runtime.real.claims import Claims
from runtime.real.futures import ERR_NO_WORKERS
from runtime.real.objects import ObjectTable
from runtime.real.transport import Connection
from runtime.real.zygote import ZYGOTE_REPLY, ZYGOTE_REQUEST

__all__ = ["WorkerHandle", "WorkerPool", "reap"]


@dataclass(slots=True)
class WorkerHandle:
    """The driver's side of one worker process."""

    worker_id: int
    pid: int
    conn: Connection
    functions: set[int] = field(default_factory=set)
    spec: TaskSpec | None = None
    queue: deque[TaskSpec] = field(default_factory=deque)
    """Bodies sent after ``spec`` (pipelined actor calls, prefetched tasks), run in order."""
    outbox: list[tuple] = field(default_factory=list)
    alive: bool = True
    actor_id: int = 0
    """Non-zero for a worker dedicated to that actor (not part of the task pool)."""
    killed: bool = False
    """The host terminated it on purpose: its exit is not a failure to report."""
    owner: Any = None
    """The core Owner of the objects this worker's code creates (made on first use)."""
    started: float = 0.0
    """About when the current task began, for the span of a worker that dies running it
    (the worker reports the span of every body it finishes: `_on_task_result`)."""
    offered: int = 0
    """The prefetched task on offer in its claim slot (0: none); see `runtime.real.claims`."""
    ticket: int = 0
    """The claim ticket of that offer: unique per offer, so a stale message never matches."""
    no_prefetch: bool = False
    """A prefetched task was taken back from it: queue none behind its running task."""
    remote: bool = False
    """A driver connected over the network (`runtime.real.remote_clients`), served like a
    worker's requests: no process of this node, never given a task, values sent inline
    (unless `shared_arena`)."""
    shared_arena: bool = False
    """A remote driver on this machine that mapped the arena: values go as offsets."""
    pinned: dict[int, int] = field(default_factory=dict)
    """Such a driver's pins (offset -> count) not yet unpinned: released if it leaves."""
    reserved: dict[int, int] = field(default_factory=dict)
    """Arena ranges (offset -> size) held for its puts in place, not yet sealed: freed if
    it dies (`NestedOwners._req_put_reserve`)."""


def _retry_kind(error: tuple, retry_on: Any) -> str:
    """ERR_APPLICATION if the encoded `error` is one of the classes in `retry_on` (Ray's
    `retry_exceptions=[...]`), else ERR_APPLICATION_FINAL (the owner will not retry it)."""
    classes = tuple(retry_on)
    try:
        cause = p.decode_error(error).cause
    except Exception:
        cause = None
    if cause is not None:
        return ERR_APPLICATION if isinstance(cause, classes) else ERR_APPLICATION_FINAL
    names = {c.__name__ for c in classes}
    return ERR_APPLICATION if error[1] in names else ERR_APPLICATION_FINAL


def _body_context(spec: TaskSpec) -> tuple:
    """What the worker sets up around the body: (runtime_env, GPU ids); see `protocol`."""
    gpus = spec.instances.get("GPU", ()) if spec.instances else ()
    return (spec.runtime_env, gpus)


class WorkerPool:
    """The worker processes of a `Node` and what they run (loop thread only).

    Owns the processes (forked by the zygote), the idle list, the backlog of tasks
    dispatched while no worker was free, the messages waiting to be written to each
    worker, the prefetch offers and give-backs, the arena ranges reserved by running
    tasks, and the spans of finished bodies. What it needs from the rest of the node is
    passed in: the raylet and the command list it hands events to, the object table
    (argument pins, result ranges), and the selector it registers worker sockets with; the
    actor and nested-owner hooks are plugged in by `connect_actors` and `connect_owners`.
    """

    def __init__(
        self,
        size: int,
        zygote: Any,
        *,
        raylet: Any,
        out: list[Any],
        claims: Claims,
        arena: Any,
        objects: ObjectTable,
        allocate: Callable[[int, float], int],
        selector: selectors.BaseSelector,
        unregister_io: Callable[[Any], None],
        handlers: dict[int, Callable[[WorkerHandle, tuple, float], None]],
    ) -> None:
        self.size = size
        """Task-pool workers started at init (they join as the zygote forks them)."""
        self.workers: list[WorkerHandle] = []
        """Every worker forked this session, pool and actor workers, dead ones included."""
        self.idle: list[WorkerHandle] = []
        """Pool workers with nothing to run."""
        self.backlog: deque[TaskSpec] = deque()
        """Tasks the raylet dispatched while no pool worker was idle, in order."""
        self.dirty: list[WorkerHandle] = []
        """Workers with messages in their outbox (written at the end of the step)."""
        self.functions: dict[int, bytes] = {}
        """Pickled functions by id; each worker is sent one before its first use."""
        self.tickets = itertools.count(1)
        """Claim tickets for prefetched tasks (`runtime.real.claims`): one per offer."""
        self.revoking: dict[int, str] = {}
        """Prefetched tasks asked back from their worker: task id -> "cancel" or "blocked"."""
        self.task_allocs: dict[int, list[int]] = {}
        """Arena ranges reserved by a running task for its results (freed if it fails)."""
        self.spans: deque[tuple] = deque(maxlen=200_000)
        """Finished task executions for `timeline()`: (name, kind, worker, pid, start, end, status)."""
        self.actor_spawns: dict[int, TaskSpec] = {}
        """Worker id asked of the zygote -> the actor creation it is forked for."""
        self.spawning = 0
        """Pool workers asked of the zygote that have not arrived yet."""
        self.next_worker_id = 0
        self.stopping = False
        """The node is shutting down: dead workers are not replaced."""
        self.no_workers = "no worker process is left on this node"
        """Why a task finds no worker: what a task dispatched after the last one died is
        told (once the zygote has exited, that it did: no worker can start again)."""
        self.zygote_proc = zygote
        self.zygote_pid = zygote.pid
        self.zygote = zygote.sock
        self.raylet = raylet
        self.out = out
        self.claims = claims
        self.arena = arena
        self.objects = objects
        # the object table's state and methods the hot paths use, bound once
        self.lock = objects.lock
        self.arena_objects = objects.arena_objects
        self.pins = objects.pins
        self.arg_pins = objects.arg_pins
        self.release_arg_pins = objects.release_arg_pins
        self.allocate = allocate
        self.sel = selector
        self.unregister_io = unregister_io
        self.handlers = handlers
        """Worker message type -> handler (the node's table; other parts add to it)."""
        self.drop_worker_refs: Callable[[WorkerHandle, float], None] = _unplugged
        self.actor_worker_died: Callable[[WorkerHandle, float], None] = _unplugged
        self.actor_task_done: Callable[[WorkerHandle, TaskSpec | None, bool], None] = _unplugged
        self.adopt_actor_worker: Callable[[WorkerHandle, TaskSpec, float], None] = _unplugged
        self.actor_spawn_failed: Callable[[TaskSpec, str, float], None] = _unplugged
        handlers[p.TASK_RESULT] = self.on_task_result
        handlers[p.ALLOC_REQUEST] = self.on_alloc_request
        handlers[p.REVOKED] = self.on_revoked
        self.zygote.setblocking(False)
        selector.register(self.zygote, selectors.EVENT_READ, (self.on_zygote_reply, None))

    def connect_owners(self, drop_worker_refs: Callable[[WorkerHandle, float], None]) -> None:
        """Plug in what the pool calls on the nested owners when a worker dies."""
        self.drop_worker_refs = drop_worker_refs

    checkpoint_calls: dict[int, Any] = {}  # noqa: RUF012 (replaced per pool when plugged)
    """Actor checkpoint hook calls in flight (`runtime.real.actor_checkpoints`)."""

    def checkpoint_answered(
        self, w: WorkerHandle, task_id: int, ok: bool, payload: Any, now: float
    ) -> None:
        """A checkpoint hook call answered (replaced by `ActorCheckpoints` when plugged)."""

    def connect_actors(
        self,
        *,
        actor_worker_died: Callable[[WorkerHandle, float], None],
        actor_task_done: Callable[[WorkerHandle, TaskSpec | None, bool], None],
        adopt_actor_worker: Callable[[WorkerHandle, TaskSpec, float], None],
        actor_spawn_failed: Callable[[TaskSpec, str, float], None],
    ) -> None:
        """Plug in what the pool calls on the actor workers' part (`ActorWorkers`)."""
        self.actor_worker_died = actor_worker_died
        self.actor_task_done = actor_task_done
        self.adopt_actor_worker = adopt_actor_worker
        self.actor_spawn_failed = actor_spawn_failed

    def start(self) -> None:
        """Ask the zygote for the initial pool (they join as its replies arrive)."""
        for _ in range(self.size):
            self.spawn_worker()

    # -- dispatch ----------------------------------------------------------------------------

    def dispatch(self, spec: TaskSpec, now: float) -> None:
        """Run task `spec` on an idle worker, or queue it until one is free."""
        if self.idle:
            self.start_task(self.idle.pop(), spec)
        elif self.spawning or self.alive():
            self.backlog.append(spec)
        else:
            event = TaskFinished(spec.task_id, [], ERR_NO_WORKERS, self.no_workers)
            self.raylet.handle(event, now, self.out)

    def prefetch(self, spec: TaskSpec, now: float) -> None:
        """Queue a prefetched task behind the running task of a busy, unblocked worker."""
        is_blocked = self.raylet.is_blocked
        ticket = next(self.tickets)
        for w in self.workers:
            if (
                w.alive
                and not w.actor_id
                and w.spec is not None
                and not w.queue
                and not w.no_prefetch
                and not is_blocked(w.spec.task_id)
                and self.claims.offer(w.worker_id, ticket)
            ):
                self.start_task(w, spec, ticket)
                return
        self.raylet.handle(Unassigned(spec.task_id), now, self.out)

    def start_task(self, w: WorkerHandle, spec: TaskSpec, ticket: int = 0) -> None:
        """Send `spec` to `w`; ``ticket``: a prefetched task on offer under it (`Claims.offer`)."""
        fn_id = spec.function
        if spec.kind != ACTOR_METHOD and fn_id not in w.functions:
            w.outbox.append(p.register_function(fn_id, self.functions[fn_id]))
            w.functions.add(fn_id)
        args, kwargs = spec.args
        resolve = self.resolve_arg
        a = tuple(resolve(spec, v) for v in args)
        kw = {k: resolve(spec, v) for k, v in kwargs.items()} if kwargs else {}
        kind = spec.kind
        ctx = _body_context(spec) if spec.instances or spec.runtime_env else None
        if spec.generator:
            if ticket:
                w.offered, w.ticket = spec.task_id, ticket
            msg = p.execute_generator(
                spec.task_id, kind, fn_id, a, kw, spec.generator, spec.skip_items, ticket
            )
            w.outbox.append(msg)
        elif kind == TASK:
            if ticket:
                w.offered, w.ticket = spec.task_id, ticket
            w.outbox.append(
                p.execute_task(spec.task_id, fn_id, a, kw, spec.num_returns, ticket, ctx)
            )
        elif kind == ACTOR_METHOD:
            w.outbox.append(p.call_actor(spec.task_id, fn_id, a, kw, spec.num_returns))
        else:
            w.outbox.append(p.create_actor(spec.task_id, fn_id, a, kw, spec.max_concurrency, ctx))
        if w.spec is None:
            w.spec = spec
            w.started = time.monotonic()
        else:
            w.queue.append(spec)  # a pipelined actor call: it starts when the others end
        self.dirty.append(w)

    def resolve_arg(self, spec: TaskSpec, value: Any) -> tuple:
        """The wire form of one argument: inline bytes, or an arena range pinned until `spec` ends."""
        if type(value) is not int:
            return value
        inlined = spec.inlined
        if inlined is not None and value in inlined:
            return (p.VALUE_INLINE, inlined[value])
        with self.lock:
            offset, size = self.arena_objects[value]  # the raylet made it local (pulled)
            self.pins[offset] = self.pins.get(offset, 0) + 1  # until the task ends
            self.arg_pins.setdefault(spec.task_id, []).append(offset)
        return (p.VALUE_ARENA, offset, size)

    def flush(self) -> None:
        """Write every dirty worker's outbox (what does not fit waits for EVENT_WRITE)."""
        for w in self.dirty:
            if w.outbox and w.alive:
                try:
                    done = w.conn.send_many(w.outbox)
                except OSError:
                    done = True  # the EOF on read reports the death
                w.outbox.clear()
                if not done:
                    self.sel.modify(
                        w.conn,
                        selectors.EVENT_READ | selectors.EVENT_WRITE,
                        (self.on_worker_io, w),
                    )
        self.dirty.clear()

    def send(self, w: WorkerHandle, msg: tuple) -> None:
        """Queue `msg` for worker `w` (written at the end of the step)."""
        w.outbox.append(msg)
        self.dirty.append(w)

    # -- replies ----------------------------------------------------------------------------

    def on_worker_io(self, w: WorkerHandle, mask: int, now: float) -> None:
        """Selector callback: flush what waited for room, read and handle `w`'s messages."""
        if mask & selectors.EVENT_WRITE and w.conn.flush():
            self.sel.modify(w.conn, selectors.EVENT_READ, (self.on_worker_io, w))
        if not mask & selectors.EVENT_READ:
            return
        try:
            msgs = w.conn.recv_many()
        except (EOFError, OSError):
            self.on_worker_died(w, now)
            return
        handlers = self.handlers
        for msg in msgs:
            handlers[msg[0]](w, msg, now)

    def on_task_result(self, w: WorkerHandle, msg: tuple, now: float) -> None:
        """TASK_RESULT: record the outputs (or the error) and tell the raylet the task ended."""
        _, task_id, ok, payload, began, end = msg  # the span as the worker measured it
        spec = w.spec
        started = 0
        if spec is not None and spec.task_id != task_id and w.actor_id:
            spec = self._out_of_order_call(w, task_id)  # a concurrent actor's call
        else:
            w.no_prefetch = False
            if w.queue:
                w.spec = w.queue.popleft()
                w.started = end  # the worker went on to it then (at the earliest)
                if not w.actor_id:
                    started = w.spec.task_id  # a prefetched task: it runs now
                    if w.offered == started:
                        w.offered = 0
            else:
                w.spec = None
        if self.checkpoint_calls and task_id in self.checkpoint_calls:
            self.checkpoint_answered(w, task_id, ok, payload, now)  # not a task of the core
            return
        if spec is not None:
            self.record_span(w, spec, "ok" if ok else "error", end, began)
        allocs = self.task_allocs.pop(task_id, None)
        if self.arg_pins:
            self.release_arg_pins(task_id)
        if ok:
            outputs: list[tuple[int, Any]] = []
            stored: list[bool] = []
            for i, enc in enumerate(payload):
                if enc[0] == p.VALUE_INLINE:
                    outputs.append((len(enc[1]), enc[1]))
                    stored.append(False)
                else:
                    with self.lock:
                        self.arena_objects[object_id(task_id, i + 1)] = (enc[1], enc[2])
                    outputs.append((enc[2], None))
                    stored.append(True)
            event = TaskFinished(task_id, outputs, None, None, stored, started)
        else:
            if allocs:
                with self.lock:
                    for offset in allocs:
                        self.arena.free(offset)
            kind = ERR_APPLICATION
            retry_on = spec.retry_exceptions if spec is not None and spec.task_id == task_id else 0
            if retry_on and type(retry_on) is not bool:  # a list of classes: is it one?
                kind = _retry_kind(payload, retry_on)
            event = TaskFinished(task_id, [], kind, payload, None, started)
        self.raylet.handle(event, now, self.out)
        if w.actor_id:
            self.actor_task_done(w, spec, ok)
        elif w.spec is None:
            self.worker_idle(w)

    def _out_of_order_call(self, w: WorkerHandle, task_id: int) -> TaskSpec | None:
        """A call of an async or threaded actor ended before the oldest one sent: take it
        out of the worker's queue (the oldest stays `w.spec`)."""
        for i, queued in enumerate(w.queue):
            if queued.task_id == task_id:
                del w.queue[i]
                return queued
        return None

    def record_span(
        self,
        w: WorkerHandle,
        spec: TaskSpec,
        status: str,
        end: float = 0.0,
        start: float | None = None,
    ) -> None:
        """Remember one task execution for `timeline()` (bounded; oldest dropped).

        ``start`` defaults to when the worker began its current body; a caller that has
        already moved the worker on to its next queued body passes the old start.
        """
        end = end or time.monotonic()
        began = w.started if start is None else start
        self.spans.append((spec.name, spec.kind, w.worker_id, w.pid, began, end, status))

    def on_alloc_request(self, w: WorkerHandle, msg: tuple, now: float) -> None:
        """ALLOC_REQUEST: reserve an arena range for a result (-1: the store is full)."""
        _, task_id, nbytes = msg
        try:
            offset = self.allocate(nbytes, now)
            self.task_allocs.setdefault(task_id, []).append(offset)
        except ObjectStoreFullError:
            offset = -1
        w.outbox.append(p.alloc_reply(offset))
        self.dirty.append(w)

    def worker_idle(self, w: WorkerHandle) -> None:
        """Pool worker `w` has nothing to run: start the oldest backlogged task, or idle it."""
        if self.backlog:
            self.start_task(w, self.backlog.popleft())
            return
        self.idle.append(w)

    # -- prefetched tasks given back ---------------------------------------------------------

    def steal_prefetched(self, now: float) -> None:
        """A worker is idle: take back a task prefetched behind a busy worker's running one.

        Prefetching queues a task behind a running one to hide the hand-off; if that one
        runs long, the queued task would wait for it while a worker sits idle. If the busy
        worker has not started it (`Claims.steal`), it goes back to the raylet's queue,
        which dispatches it to the idle worker; the busy one will skip it.
        """
        for x in self.workers:
            if not x.offered or not x.queue or not x.alive:
                continue
            spec = x.queue[0]
            tid = spec.task_id
            if tid != x.offered or tid in self.revoking:
                continue
            x.offered = 0
            if not self.claims.steal(x.worker_id, x.ticket):
                continue  # it started meanwhile: its worker reports it with the next result
            x.queue.popleft()
            x.no_prefetch = True  # until its running task ends
            if self.arg_pins:
                self.release_arg_pins(tid)
            self.raylet.handle(Unassigned(tid), now, self.out)
            return

    def revoke(self, w: WorkerHandle, task_ids: list[int], reason: str) -> None:
        """Ask a worker to drop prefetched tasks it has not started (answer: REVOKED)."""
        for tid in task_ids:
            self.revoking[tid] = reason
        w.outbox.append(p.revoke(task_ids))
        self.dirty.append(w)

    def on_revoked(self, w: WorkerHandle, msg: tuple, now: float) -> None:
        """REVOKED: the tasks the worker dropped go back to the raylet's queue."""
        dropped = set(msg[1])
        running = w.spec.task_id if w.spec is not None else 0
        for tid in list(self.revoking):
            spec = next((s for s in w.queue if s.task_id == tid), None)
            if spec is None and tid not in dropped and tid != running:
                continue  # not this worker's
            del self.revoking[tid]
            if tid not in dropped:
                continue  # it started meanwhile: nothing to give back
            if spec is not None:
                w.queue.remove(spec)
            if w.offered == tid:
                w.offered = 0
                self.claims.steal(w.worker_id, w.ticket)  # clear the offer: never seen
            self.release_arg_pins(tid)
            self.raylet.handle(Unassigned(tid), now, self.out)

    def block(self, w: WorkerHandle) -> None:
        """The task on `w` waits (its CPU is lent out): give back what was prefetched
        behind it, and grow the pool when no worker is idle so the awaited tasks can run."""
        if w.queue:  # prefetched tasks must not wait behind a blocked one
            self.revoke(w, [s.task_id for s in w.queue], "blocked")
        if not self.idle and not self.stopping:
            self.spawn_worker()  # the pool grows so that the awaited tasks can run

    # -- deaths and replacements ---------------------------------------------------------------

    def on_worker_died(self, w: WorkerHandle, now: float) -> None:
        """`w`'s socket closed: reap it, fail what it ran, replace it (pool workers)."""
        w.alive = False
        self.unregister_io(w.conn)
        w.conn.close()
        if w.reserved:  # puts in place it never sealed
            with self.lock:
                for offset in w.reserved:
                    self.arena.free(offset)
            w.reserved.clear()
        if w.remote:  # a connected driver left: no process to reap, nothing ran there
            for offset, count in w.pinned.items():  # values it still held alias nothing now
                self.objects.unpins.extend([offset] * count)
            w.pinned.clear()
            self.drop_worker_refs(w, now)
            return
        reap(w.pid, 1.0)  # its socket closed: it is exiting
        if w.offered or w.queue:
            self.claims.clear(w.worker_id)
        if w.spec is not None:
            self.record_span(w, w.spec, "worker died")
        self.drop_worker_refs(w, now)
        if w.spec is not None and self.arg_pins:
            self.release_arg_pins(w.spec.task_id)
        if w.actor_id:
            self.actor_worker_died(w, now)
            return
        if w in self.idle:
            self.idle.remove(w)
        if not self.stopping:
            self.spawn_worker()
        spec, w.spec = w.spec, None
        if spec is None:
            return
        allocs = self.task_allocs.pop(spec.task_id, None)
        if allocs:
            with self.lock:
                for offset in allocs:
                    self.arena.free(offset)
        detail = f"worker {w.worker_id} (pid {w.pid}) died while running {spec.name}()"
        self.raylet.handle(TaskFinished(spec.task_id, [], ERR_WORKER_DIED, detail), now, self.out)
        queued, w.queue = list(w.queue), deque()
        for nxt in queued:  # prefetched behind it: they die unstarted (and are retried)
            self.revoking.pop(nxt.task_id, None)
            if self.arg_pins:
                self.release_arg_pins(nxt.task_id)
            detail = f"worker {w.worker_id} (pid {w.pid}) died before running {nxt.name}()"
            self.raylet.handle(
                TaskFinished(nxt.task_id, [], ERR_WORKER_DIED, detail), now, self.out
            )
        if not self.spawning and not self.alive():
            self._fail_backlog(self.no_workers, now)

    def _fail_backlog(self, detail: str, now: float) -> None:
        """No pool worker is left nor coming: every backlogged task fails."""
        backlog, self.backlog = self.backlog, deque()
        for queued in backlog:
            self.raylet.handle(
                TaskFinished(queued.task_id, [], ERR_NO_WORKERS, detail), now, self.out
            )

    def alive(self) -> bool:
        """True while a task-pool worker (not an actor's) is alive."""
        return any(x.alive and not x.actor_id for x in self.workers)

    def spawn_worker(self) -> None:
        """Ask the zygote for one more pool worker (the driver never forks: see `runtime.real.zygote`)."""
        worker_id = self.next_worker_id
        self.next_worker_id += 1
        try:
            self.zygote.send(ZYGOTE_REQUEST.pack(worker_id))
        except OSError:
            return
        self.spawning += 1

    def spawn_actor_worker(self, spec: TaskSpec) -> bool:
        """Ask the zygote for a worker dedicated to the actor `spec` creates; False if it is gone."""
        worker_id = self.next_worker_id
        self.next_worker_id += 1
        try:
            self.zygote.send(ZYGOTE_REQUEST.pack(worker_id))
        except OSError:
            return False
        self.actor_spawns[worker_id] = spec
        return True

    def on_zygote_reply(self, _: Any, mask: int, now: float) -> None:
        """Selector callback: a worker the zygote forked (its socket), or a failed fork."""
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.zygote, 64, 1)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data:
            self.unregister_io(self.zygote)
            self._zygote_gone(now)
            return
        worker_id, pid = ZYGOTE_REPLY.unpack(data)
        if pid < 0 or not fds:
            self._spawn_failed(worker_id, -pid, now)
            return
        sock = socket.socket(fileno=fds[0])
        sock.setblocking(False)
        w = WorkerHandle(worker_id, pid, Connection(sock))
        self.workers.append(w)
        self.sel.register(w.conn, selectors.EVENT_READ, (self.on_worker_io, w))
        actor_spec = self.actor_spawns.pop(worker_id, None)
        if actor_spec is not None:
            self.adopt_actor_worker(w, actor_spec, now)
            return
        self.spawning -= 1
        self.worker_idle(w)

    def _spawn_failed(self, worker_id: int, errno: int, now: float) -> None:
        """The zygote could not fork worker `worker_id` (``errno``): fail what waited for it.

        An actor's constructor fails as a worker death (the core may restart it); a pool
        worker is not replaced, and tasks waiting for one fail if no pool worker is left.
        """
        detail = f"the worker zygote could not start worker {worker_id}: {os.strerror(errno)}"
        spec = self.actor_spawns.pop(worker_id, None)
        if spec is not None:
            self.actor_spawn_failed(spec, detail, now)
            return
        self.spawning -= 1
        if self.spawning or self.alive() or self.stopping:
            return
        self._fail_backlog(detail, now)

    def _zygote_gone(self, now: float) -> None:
        """The zygote exited (it failed to start, or was killed): no worker can start now.

        Tasks waiting for a worker fail if no pool worker is left, and so do the
        constructors of actors whose worker was never forked; its traceback, if any,
        went to stderr.
        """
        self.spawning = 0
        if self.stopping:
            return
        detail = f"the worker zygote (pid {self.zygote_pid}) exited: no worker can start"
        self.no_workers = detail  # for tasks dispatched from now on, too
        for spec in self.actor_spawns.values():
            self.raylet.handle(
                TaskFinished(spec.task_id, [], ERR_WORKER_DIED, detail), now, self.out
            )
        self.actor_spawns.clear()
        if self.alive():
            return
        self._fail_backlog(detail, now)

    def teardown(self) -> None:
        """Shutdown: stop every worker (busy ones killed), reap them, stop the zygote."""
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
            reap(w.pid, max(0.0, deadline - time.monotonic()))  # no-op for the zygote's
        self.zygote_proc.close(10.0)  # the zygote reaps its workers and exits


def _unplugged(*args: Any) -> None:
    raise RuntimeError("WorkerPool: a hook was not connected (connect_actors/connect_owners)")


def reap(pid: int, timeout: float) -> None:
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
