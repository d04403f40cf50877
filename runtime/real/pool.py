"""The worker pool mixin of the node: start tasks on workers, read their replies, replace dead ones."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import time
from collections import deque
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
from runtime.real.futures import ERR_NO_WORKERS
from runtime.real.transport import Connection
from runtime.real.zygote import ZYGOTE_REPLY, ZYGOTE_REQUEST

__all__ = ["PoolMixin", "WorkerHandle", "reap"]


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


class PoolMixin:
    """Worker processes of a `Node`: task hand-off, replies, deaths and replacements (loop thread)."""

    def _start_task(self, w: WorkerHandle, spec: TaskSpec, ticket: int = 0) -> None:
        """Send `spec` to `w`; ``ticket``: a prefetched task on offer under it (`Claims.offer`)."""
        fn_id = spec.function
        if spec.kind != ACTOR_METHOD and fn_id not in w.functions:
            w.outbox.append(p.register_function(fn_id, self._functions[fn_id]))
            w.functions.add(fn_id)
        args, kwargs = spec.args
        resolve = self._resolve_arg
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
        self._dirty.append(w)

    def _resolve_arg(self, spec: TaskSpec, value: Any) -> tuple:
        if type(value) is not int:
            return value
        inlined = spec.inlined
        if inlined is not None and value in inlined:
            return (p.VALUE_INLINE, inlined[value])
        with self._lock:
            offset, size = self.arena_objects[value]  # the raylet made it local (pulled)
            self._pins[offset] = self._pins.get(offset, 0) + 1  # until the task ends
            self._arg_pins.setdefault(spec.task_id, []).append(offset)
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
        if spec is not None:
            self._record_span(w, spec, "ok" if ok else "error", end, began)
        allocs = self._task_allocs.pop(task_id, None)
        if self._arg_pins:
            self._release_arg_pins(task_id)
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
            event = TaskFinished(task_id, outputs, None, None, stored, started)
        else:
            if allocs:
                with self._lock:
                    for offset in allocs:
                        self.arena.free(offset)
            kind = ERR_APPLICATION
            retry_on = spec.retry_exceptions if spec is not None and spec.task_id == task_id else 0
            if retry_on and type(retry_on) is not bool:  # a list of classes: is it one?
                kind = _retry_kind(payload, retry_on)
            event = TaskFinished(task_id, [], kind, payload, None, started)
        self.raylet.handle(event, now, self._out)
        if w.actor_id:
            self._actor_task_done(w, spec, ok)
        elif w.spec is None:
            self._worker_idle(w)

    def _out_of_order_call(self, w: WorkerHandle, task_id: int) -> TaskSpec | None:
        """A call of an async or threaded actor ended before the oldest one sent: take it
        out of the worker's queue (the oldest stays `w.spec`)."""
        for i, queued in enumerate(w.queue):
            if queued.task_id == task_id:
                del w.queue[i]
                return queued
        return None

    def _record_span(
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

    def _on_alloc_request(self, w: WorkerHandle, msg: tuple, now: float) -> None:
        _, task_id, nbytes = msg
        try:
            offset = self._allocate_loop(nbytes, now)
            self._task_allocs.setdefault(task_id, []).append(offset)
        except ObjectStoreFullError:
            offset = -1
        w.outbox.append(p.alloc_reply(offset))
        self._dirty.append(w)

    def _worker_idle(self, w: WorkerHandle) -> None:
        if self._backlog:
            self._start_task(w, self._backlog.popleft())
            return
        self._idle.append(w)

    def _steal_prefetched(self, now: float) -> None:
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
            if tid != x.offered or tid in self._revoking:
                continue
            x.offered = 0
            if not self.claims.steal(x.worker_id, x.ticket):
                continue  # it started meanwhile: its worker reports it with the next result
            x.queue.popleft()
            x.no_prefetch = True  # until its running task ends
            if self._arg_pins:
                self._release_arg_pins(tid)
            self.raylet.handle(Unassigned(tid), now, self._out)
            return

    def _on_worker_died(self, w: WorkerHandle, now: float) -> None:
        w.alive = False
        self._unregister_io(w.conn)
        w.conn.close()
        reap(w.pid, 1.0)  # its socket closed: it is exiting
        if w.offered or w.queue:
            self.claims.clear(w.worker_id)
        if w.spec is not None:
            self._record_span(w, w.spec, "worker died")
        self.drop_worker_refs(w, now)
        if w.spec is not None and self._arg_pins:
            self._release_arg_pins(w.spec.task_id)
        if w.actor_id:
            self._actor_worker_died(w, now)
            return
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
        queued, w.queue = list(w.queue), deque()
        for nxt in queued:  # prefetched behind it: they die unstarted (and are retried)
            self._revoking.pop(nxt.task_id, None)
            if self._arg_pins:
                self._release_arg_pins(nxt.task_id)
            detail = f"worker {w.worker_id} (pid {w.pid}) died before running {nxt.name}()"
            self.raylet.handle(
                TaskFinished(nxt.task_id, [], ERR_WORKER_DIED, detail), now, self._out
            )
        if not self._spawning and not self._pool_alive():
            backlog, self._backlog = self._backlog, deque()
            for queued in backlog:
                event = TaskFinished(
                    queued.task_id, [], ERR_NO_WORKERS, "no worker process is left on this node"
                )
                self.raylet.handle(event, now, self._out)

    def _pool_alive(self) -> bool:
        """True while a task-pool worker (not an actor's) is alive."""
        return any(x.alive and not x.actor_id for x in self.workers)

    def _spawn_worker(self) -> None:
        """Ask the zygote for one more pool worker (the driver never forks: see `runtime.real.zygote`)."""
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
            self._unregister_io(self._zygote)
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
        self._sel.register(w.conn, selectors.EVENT_READ, (self._on_worker_io, w))
        actor_spec = self._actor_spawns.pop(worker_id, None)
        if actor_spec is not None:
            self._adopt_actor_worker(w, actor_spec, now)
            return
        self._spawning -= 1
        self._worker_idle(w)

    def _spawn_failed(self, worker_id: int, errno: int, now: float) -> None:
        """The zygote could not fork worker `worker_id` (``errno``): fail what waited for it.

        An actor's constructor fails as a worker death (the core may restart it); a pool
        worker is not replaced, and tasks waiting for one fail if no pool worker is left.
        """
        detail = f"the worker zygote could not start worker {worker_id}: {os.strerror(errno)}"
        spec = self._actor_spawns.pop(worker_id, None)
        if spec is not None:
            if spec.actor_id in self._killed_early:  # killed meanwhile: nothing to report
                self._killed_early.discard(spec.actor_id)
            elif not self._stopping:
                event = TaskFinished(spec.task_id, [], ERR_WORKER_DIED, detail)
                self.raylet.handle(event, now, self._out)
            return
        self._spawning -= 1
        if self._spawning or self._pool_alive() or self._stopping:
            return
        backlog, self._backlog = self._backlog, deque()
        for queued in backlog:
            self.raylet.handle(
                TaskFinished(queued.task_id, [], ERR_NO_WORKERS, detail), now, self._out
            )

    def _zygote_gone(self, now: float) -> None:
        """The zygote exited (it failed to start, or was killed): no worker can start now.

        Tasks waiting for a worker fail if no pool worker is left, and so do the
        constructors of actors whose worker was never forked; its traceback, if any,
        went to stderr.
        """
        self._spawning = 0
        if self._stopping:
            return
        detail = f"the worker zygote (pid {self._zygote_pid}) exited: no worker can start"
        for spec in self._actor_spawns.values():
            self.raylet.handle(
                TaskFinished(spec.task_id, [], ERR_WORKER_DIED, detail), now, self._out
            )
        self._actor_spawns.clear()
        if self._pool_alive():
            return
        backlog, self._backlog = self._backlog, deque()
        for queued in backlog:
            self.raylet.handle(
                TaskFinished(queued.task_id, [], ERR_NO_WORKERS, detail), now, self._out
            )

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
            reap(w.pid, max(0.0, deadline - time.monotonic()))  # no-op for the zygote's
        zygote = getattr(self, "_zygote_proc", None)
        if zygote is not None:
            zygote.close(10.0)  # the zygote reaps its workers and exits


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
