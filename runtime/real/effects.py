"""The command-effects mixin of the node: what each core command does in the real world."""

from __future__ import annotations

import heapq
import os
import signal
from typing import Any

from runtime.core.messages import (
    CancelRunning,
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
from runtime.core.task import ERR_CANCELLED, TASK
from runtime.real.addresses import HOST_ADDR, OWNER_ADDR
from runtime.real.futures import ERR_NO_WORKERS, FAILED, READY
from runtime.real.worker import CANCEL_SIGNAL

__all__ = ["EffectsMixin"]


INTERRUPT_RETRY = 0.05
"""Seconds between repeated interrupts of a task being cancelled."""


class HostTimers:
    """The host's own timers, as a component: ``TimerFired`` goes back to the node."""

    __slots__ = ("node",)

    def __init__(self, node: Any) -> None:
        self.node = node

    def handle(self, msg: TimerFired, now: float, out: list[Any]) -> None:
        """Hand the timer's key to the node."""
        self.node._on_host_timer(msg.key, now)


class EffectsMixin:
    """Turns core commands into effects on the loop thread, and keeps the arena's pins."""

    # -- command effects -------------------------------------------------------------------

    def _effect_send(self, cmd: Send, now: float) -> None:
        self.components[cmd.dst].handle(cmd.msg, now, self._out)

    def _effect_dispatch(self, cmd: Dispatch, now: float) -> None:
        spec = cmd.spec
        if spec.kind != TASK:
            self._actor_dispatchers[spec.kind](spec, now)
            return
        if self._idle:
            self._start_task(self._idle.pop(), spec)
        elif self._spawning or self._pool_alive():
            self._backlog.append(spec)
        else:
            event = TaskFinished(
                spec.task_id, [], ERR_NO_WORKERS, "no worker process is left on this node"
            )
            self.raylet.handle(event, now, self._out)

    def _effect_object_ready(self, cmd: ObjectReady, now: float) -> None:
        oid = cmd.oid
        if cmd.owner != OWNER_ADDR:
            if cmd.error_kind is not None and oid in self.arena_objects:
                with self._lock:
                    self._free_locked(oid)
            self._nested_ready(cmd, now)
            return
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

    def _effect_cancel_running(self, cmd: CancelRunning, now: float) -> None:
        self._interrupt(cmd.task_id, cmd.force, now)

    def _interrupt(self, task_id: int, force: bool, now: float) -> None:
        """Interrupt (KeyboardInterrupt in the body) or, with ``force``, kill the task's worker.

        A worker ignores the interrupt outside a task body (it may not have started the
        task yet), so the signal is repeated every ``INTERRUPT_RETRY`` s while the worker
        still runs the task; it stops as soon as the task's end is processed here, before
        the worker can be given another task.
        """
        for w in self.workers:
            if w.alive and w.spec is not None and w.spec.task_id == task_id:
                try:
                    os.kill(w.pid, signal.SIGKILL if force else CANCEL_SIGNAL)
                except ProcessLookupError:
                    return
                if not force:
                    at = now + INTERRUPT_RETRY
                    entry = (at, next(self._timer_seq), HOST_ADDR, f"interrupt:{task_id}")
                    heapq.heappush(self._timers, entry)
                return
        for spec in self._backlog:  # dispatched by the raylet, still waiting for a worker
            if spec.task_id == task_id:
                self._backlog.remove(spec)
                event = TaskFinished(task_id, [], ERR_CANCELLED, "cancelled before it started")
                self.raylet.handle(event, now, self._out)
                return

    def _on_host_timer(self, key: str, now: float) -> None:
        kind, _, arg = key.partition(":")
        if kind == "interrupt":
            self._interrupt(int(arg), False, now)

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
