"""Real mode's side of actor checkpoints: run the actor's save/restore hooks in its worker (loop thread).

The core decides when an actor saves (`runtime.core.checkpoints`); here a
``SaveCheckpoint`` becomes a call of the actor's ``save_checkpoint()`` method, queued on
its worker like any call, whose encoded return value is the checkpoint's state; a
restarted actor's worker gets a call of ``load_checkpoint(state)`` right behind its
constructor, before any other call. Neither call is a task of the core: their answers
are taken out of the pool's stream of results here.
"""

from __future__ import annotations

import itertools
from typing import Any

from runtime.core.messages import ActorWorkerDied, CheckpointSaved, KillWorker, SaveCheckpoint
from runtime.core.task import ACTOR_METHOD, TaskSpec
from runtime.real import protocol as p
from runtime.real.pool import WorkerHandle, WorkerPool

__all__ = ["SAVE_METHOD", "LOAD_METHOD", "ActorCheckpoints"]

SAVE_METHOD = "save_checkpoint"
"""The actor method that returns its state (`runtime.actor.Checkpointable`)."""
LOAD_METHOD = "load_checkpoint"
"""The actor method that restores a state ``save_checkpoint`` returned."""

_HOOK_IDS = itertools.count(1)
_HOOK_BASE = 1 << 60
"""Hook calls' task ids: far above any id the owners hand out (they count from 1)."""


class ActorCheckpoints:
    """Save and load calls in flight, by their task id (loop thread only)."""

    def __init__(self, pool: WorkerPool, raylet: Any, out: list[Any], workers: Any) -> None:
        self.pool = pool
        self.raylet = raylet
        self.out = out
        self.workers = workers
        """The node's `ActorWorkers` (actor id -> its worker)."""
        self.calls: dict[int, tuple[int, str, int]] = {}
        """Hook call task id -> (actor id, SAVE_METHOD or LOAD_METHOD, the arena offset of
        a restored state copied there, or -1)."""
        pool.checkpoint_calls = self.calls
        pool.checkpoint_answered = self.answered

    def save(self, cmd: SaveCheckpoint, now: float) -> None:
        """``SaveCheckpoint``: queue ``save_checkpoint()`` on the actor's worker."""
        w = self.workers.workers.get(cmd.actor_id)
        if w is None or not w.alive:
            return  # it died: the core hears of it as a worker death
        self._call(w, cmd.actor_id, SAVE_METHOD, ())

    def restore(self, w: WorkerHandle, spec: TaskSpec) -> None:
        """After the constructor of a restarted actor: queue ``load_checkpoint(state)``."""
        plan = spec.checkpoint
        if plan is None or plan.state is None:
            return
        arg = self._wire_state(plan.state)
        self._call(w, spec.actor_id, LOAD_METHOD, (arg,), arg[1] if len(arg) == 3 else -1)

    def _call(
        self, w: WorkerHandle, actor_id: int, method: str, args: tuple, copied: int = -1
    ) -> None:
        tid = _HOOK_BASE + next(_HOOK_IDS)
        self.calls[tid] = (actor_id, method, copied)
        spec = TaskSpec(
            task_id=tid,
            owner=-1,
            owner_node=-1,
            function=method,
            args=(args, {}),
            resources={},
            name=method,
            kind=ACTOR_METHOD,
            actor_id=actor_id,
            max_retries=0,
        )
        self.pool.start_task(w, spec)

    def _wire_state(self, state: tuple) -> tuple:
        """The argument form of a saved state: inline bytes, or copied into the arena."""
        if state[0] == p.VALUE_INLINE:
            return state
        data = state[1]
        with self.pool.lock:
            offset = self.pool.arena.allocate(len(data))
            self.pool.arena.write(offset, [data])
        return (p.VALUE_ARENA, offset, len(data))

    def answered(self, w: WorkerHandle, task_id: int, ok: bool, payload: Any, now: float) -> None:
        """A hook call's answer: report the saved state (or why not), or a failed restore."""
        actor_id, method, copied = self.calls.pop(task_id)
        pool = self.pool
        allocs = pool.task_allocs.pop(task_id, None) or []
        if copied >= 0:
            allocs.append(copied)  # the restored state's copy: read by now
        state: tuple | None = None
        if ok and method == SAVE_METHOD:
            (enc,) = payload
            if enc[0] == p.VALUE_INLINE:
                state = (p.VALUE_INLINE, enc[1])
            else:
                with pool.lock:
                    state = (p.VALUE_ARENA, bytes(pool.arena.view(enc[1], enc[2])))
        if allocs:
            with pool.lock:
                for offset in allocs:
                    pool.arena.free(offset)
        if method == SAVE_METHOD:
            if state is not None:
                event = CheckpointSaved(actor_id, state, len(state[1]))
            else:
                event = CheckpointSaved(actor_id, error=f"the actor's {SAVE_METHOD}() raised")
            self.raylet.handle(event, now, self.out)
        elif not ok:  # the state could not be restored: this incarnation is unusable
            reason = f"{LOAD_METHOD}() raised while restoring the actor's checkpoint"
            self.workers.kill(KillWorker(-1, actor_id), now)
            self.raylet.handle(ActorWorkerDied(actor_id, reason), now, self.out)
