"""The node's actor workers: one dedicated worker process per actor, its calls routed there (loop thread).

The core decides (placement, ordering, restarts); this part starts each actor's worker
through the pool's zygote, sends it its constructor and calls, kills it on
``KillWorker`` and reports its unexpected death to the raylet as ``ActorWorkerDied``
(or its constructor's as a worker death).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from runtime.core.messages import ActorWorkerDied, KillWorker, TaskFinished
from runtime.core.task import (
    ACTOR_CREATION,
    ACTOR_METHOD,
    ERR_APPLICATION,
    ERR_WORKER_DIED,
    TaskSpec,
)
from runtime.real import protocol as p
from runtime.real.actor_checkpoints import ActorCheckpoints
from runtime.real.pool import WorkerHandle, WorkerPool

__all__ = ["ActorWorkers"]


class ActorWorkers:
    """Actor id -> its worker; creation and calls dispatched to them (loop thread only)."""

    def __init__(self, pool: WorkerPool, raylet: Any, out: list[Any]) -> None:
        self.pool = pool
        self.raylet = raylet
        self.out = out
        self.workers: dict[int, WorkerHandle] = {}
        """Each live actor's dedicated worker."""
        self.killed_early: set[int] = set()
        """Actors killed while their worker was still being forked: it is stopped on arrival."""
        self.dispatchers = {
            ACTOR_CREATION: self.dispatch_creation,
            ACTOR_METHOD: self.dispatch_call,
        }
        """Task kind -> what a ``Dispatch`` of it does."""
        self.checkpoints = ActorCheckpoints(pool, raylet, out, self)
        """Actor checkpoint hooks run in the actors' workers (``SaveCheckpoint``)."""
        pool.connect_actors(
            actor_worker_died=self.worker_died,
            actor_task_done=self.task_done,
            adopt_actor_worker=self.adopt,
            actor_spawn_failed=self.spawn_failed,
        )

    def dispatch_creation(self, spec: TaskSpec, now: float) -> None:
        """Fork a dedicated worker for the actor; its constructor runs when it arrives."""
        if not self.pool.spawn_actor_worker(spec):
            event = TaskFinished(
                spec.task_id, [], ERR_APPLICATION, "the worker zygote is gone: no worker can start"
            )
            self.raylet.handle(event, now, self.out)

    def dispatch_call(self, spec: TaskSpec, now: float) -> None:
        """Send an actor call to its actor's worker (its death if the worker is gone)."""
        w = self.workers.get(spec.actor_id)
        if w is None or not w.alive:
            reason = "the actor's worker process is gone"
            self.raylet.handle(ActorWorkerDied(spec.actor_id, reason), now, self.out)
            return
        self.pool.start_task(w, spec)

    def kill(self, cmd: KillWorker, now: float) -> None:
        """``KillWorker``: SIGKILL the actor's worker (or stop it when it arrives)."""
        w = self.workers.pop(cmd.actor_id, None)
        if w is None:
            self.killed_early.add(cmd.actor_id)  # its worker is still being forked
            return
        w.killed = True
        try:
            os.kill(w.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def spawn_failed(self, spec: TaskSpec, detail: str, now: float) -> None:
        """The zygote could not fork the actor's worker: its constructor fails as a worker
        death (the core may restart it), unless the actor was killed meanwhile."""
        if spec.actor_id in self.killed_early:  # killed meanwhile: nothing to report
            self.killed_early.discard(spec.actor_id)
        elif not self.pool.stopping:
            event = TaskFinished(spec.task_id, [], ERR_WORKER_DIED, detail)
            self.raylet.handle(event, now, self.out)

    def adopt(self, w: WorkerHandle, spec: TaskSpec, now: float) -> None:
        """A worker forked for an actor arrived: bind it and run the constructor."""
        w.actor_id = spec.actor_id
        if spec.actor_id in self.killed_early:
            self.killed_early.discard(spec.actor_id)
            w.killed = True
            self.pool.send(w, p.shutdown())
            return
        self.workers[spec.actor_id] = w
        self.pool.start_task(w, spec)
        if spec.checkpoint is not None:
            self.checkpoints.restore(w, spec)  # a restarted actor: its state comes next

    def worker_died(self, w: WorkerHandle, now: float) -> None:
        """An actor's worker exited: report it to the raylet unless the core asked for it."""
        if self.workers.get(w.actor_id) is w:
            del self.workers[w.actor_id]
        spec, w.spec = w.spec, None
        w.queue.clear()
        if w.killed or self.pool.stopping:
            return
        detail = f"the actor's worker {w.worker_id} (pid {w.pid}) died"
        if spec is not None and spec.kind == ACTOR_CREATION:
            event: Any = TaskFinished(spec.task_id, [], ERR_WORKER_DIED, detail)
        else:
            if spec is not None:
                detail += f" while running {spec.name}()"
            event = ActorWorkerDied(w.actor_id, detail)
        self.raylet.handle(event, now, self.out)

    def task_done(self, w: WorkerHandle, spec: TaskSpec | None, ok: bool) -> None:
        """After an actor's task: a constructor that raised leaves a worker with nothing to do."""
        if spec is not None and spec.kind == ACTOR_CREATION and not ok:
            if self.workers.get(w.actor_id) is w:
                del self.workers[w.actor_id]
            w.killed = True
            self.pool.send(w, p.shutdown())
