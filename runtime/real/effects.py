"""The command-effects mixin of the node: what each core command does in the real world."""

from __future__ import annotations

import heapq
import os
import signal
from typing import Any

from runtime.core.messages import (
    INTERRUPT_UNSTARTED,
    CancelRunning,
    Dispatch,
    Free,
    MakeRoom,
    ObjectReady,
    Restore,
    Restored,
    Send,
    SetTimer,
    Spill,
    Spilled,
    TaskFinished,
    TimerFired,
    Trace,
    Transfer,
    Unassigned,
    WorkerInterrupted,
)
from runtime.core.task import TASK
from runtime.exceptions import ObjectStoreFullError
from runtime.real import protocol as p
from runtime.real.addresses import HOST_ADDR, OWNER_ADDR
from runtime.real.arena import ALIGNMENT
from runtime.real.futures import ERR_NO_WORKERS, FAILED, READY
from runtime.real.worker import CANCEL_SIGNAL, write_cancel_target

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
        if cmd.ahead:
            self._prefetch_to_worker(spec, now)
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

    def _prefetch_to_worker(self, spec: Any, now: float) -> None:
        """Queue a prefetched task behind the running task of a busy, unblocked worker."""
        is_blocked = self.raylet.is_blocked
        ticket = next(self._tickets)
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
                self._start_task(w, spec, ticket)
                return
        self.raylet.handle(Unassigned(spec.task_id), now, self._out)

    def _revoke(self, w: Any, task_ids: list[int], reason: str) -> None:
        """Ask a worker to drop prefetched tasks it has not started (answer: REVOKED)."""
        for tid in task_ids:
            self._revoking[tid] = reason
        w.outbox.append(p.revoke(task_ids))
        self._dirty.append(w)

    def _on_revoked(self, w: Any, msg: tuple, now: float) -> None:
        dropped = set(msg[1])
        running = w.spec.task_id if w.spec is not None else 0
        for tid in list(self._revoking):
            spec = next((s for s in w.queue if s.task_id == tid), None)
            if spec is None and tid not in dropped and tid != running:
                continue  # not this worker's
            del self._revoking[tid]
            if tid not in dropped:
                continue  # it started meanwhile: nothing to give back
            if spec is not None:
                w.queue.remove(spec)
            if w.offered == tid:
                w.offered = 0
                self.claims.steal(w.worker_id, w.ticket)  # clear the offer: never seen
            self._release_arg_pins(tid)
            self.raylet.handle(Unassigned(tid), now, self._out)

    def _effect_object_ready(self, cmd: ObjectReady, now: float) -> None:
        oid = cmd.oid
        if cmd.owner != OWNER_ADDR:
            if cmd.error_kind is not None and (oid in self.arena_objects or oid in self.spilled):
                with self._lock:
                    self._free_locked(oid)
            self._nested_ready(cmd, now)
            return
        with self._lock:
            if cmd.error_kind is not None and (oid in self.arena_objects or oid in self.spilled):
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
            if not w.alive:
                continue
            if w.spec is not None and w.spec.task_id == task_id:
                if not force:
                    # the worker may have moved on to a pipelined or prefetched body:
                    # it ignores a signal whose named target is not the body it runs
                    write_cancel_target(self.arena, w.worker_id, task_id)
                try:
                    os.kill(w.pid, signal.SIGKILL if force else CANCEL_SIGNAL)
                except ProcessLookupError:
                    return
                if not force:
                    self._retry_interrupt(task_id, now)
                return
            if w.queue and any(s.task_id == task_id for s in w.queue):
                if w.actor_id:
                    # sent, maybe running (an async actor runs many): a sync actor's worker
                    # ignores a signal naming a call it does not run, so repeat until it does
                    write_cancel_target(self.arena, w.worker_id, task_id)
                    try:
                        os.kill(w.pid, CANCEL_SIGNAL)
                    except ProcessLookupError:
                        return
                    self._retry_interrupt(task_id, now)
                else:
                    self._cancel_prefetched(w, task_id, force, now)
                return
        for spec in self._backlog:  # dispatched by the raylet, still waiting for a worker
            if spec.task_id == task_id:
                self._backlog.remove(spec)
                event = WorkerInterrupted(task_id, INTERRUPT_UNSTARTED)
                self.raylet.handle(event, now, self._out)
                return

    def _cancel_prefetched(self, w: Any, task_id: int, force: bool, now: float) -> None:
        """Cancel a task prefetched behind the running one of pool worker `w`.

        The claim slot decides at once (a REVOKE would wait for the worker to read its
        socket, which a busy worker does only between bodies: a task it had just started
        ran to its end, holding its CPU): taken back, the task ends cancelled here and
        the worker skips it; already taken by the worker, it runs there (this host has
        not read the previous task's result yet), so it is interrupted, or with ``force``
        its worker killed, like any running task.
        """
        if w.offered == task_id:
            w.offered = 0
            if self.claims.steal(w.worker_id, w.ticket):
                w.queue.remove(next(s for s in w.queue if s.task_id == task_id))
                self._revoking.pop(task_id, None)  # a pending give-back must not re-queue it
                self._release_arg_pins(task_id)
                event = WorkerInterrupted(task_id, INTERRUPT_UNSTARTED)
                self.raylet.handle(event, now, self._out)
                return
        if not force:
            write_cancel_target(self.arena, w.worker_id, task_id)
        try:
            os.kill(w.pid, signal.SIGKILL if force else CANCEL_SIGNAL)
        except ProcessLookupError:
            return
        if not force:
            self._retry_interrupt(task_id, now)

    def _retry_interrupt(self, task_id: int, now: float) -> None:
        entry = (now + INTERRUPT_RETRY, next(self._timer_seq), HOST_ADDR, f"interrupt:{task_id}")
        heapq.heappush(self._timers, entry)

    def _on_host_timer(self, key: str, now: float) -> None:
        kind, _, arg = key.partition(":")
        if kind == "interrupt":
            self._interrupt(int(arg), False, now)
        elif kind == "collect":
            actor_id, _, owner_addr = arg.partition(":")
            self._op_collect_actor((int(actor_id), int(owner_addr)), now)

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
            spilled = self.spilled.pop(oid, None)
            if spilled is not None:
                self.spill.free(*spilled)
            return
        self._release_range_locked(loc[0])

    def _release_range_locked(self, offset: int) -> None:
        """Free an arena range now, or when the last value aliasing it is dropped."""
        if self._pins.get(offset):
            self._doomed.add(offset)  # a value from get() still aliases it
        else:
            self.arena.free(offset)

    def _release_arg_pins(self, task_id: int) -> None:
        """A task ended: drop the pins its arena arguments held (loop thread)."""
        offsets = self._arg_pins.pop(task_id, None)
        if offsets:
            with self._lock:
                self._unpins.extend(offsets)
                self._apply_unpins_locked()

    def _spilled_bytes_locked(self, oid: int) -> bytes:
        """The layout of spilled `oid`, read from disk (call with `_lock` held)."""
        offset, size = self.spilled[oid]
        return self.spill.read(offset, size)

    # -- spilling ---------------------------------------------------------------------------

    def _allocate_loop(self, nbytes: int, now: float) -> int:
        """Reserve an arena range on the loop thread, asking the raylet to spill while full."""
        while True:
            try:
                return self._allocate_now(nbytes)
            except ObjectStoreFullError:
                if not self._make_room(nbytes, now):
                    raise

    def _op_make_room(self, item: tuple[int, Any, list[bool]], now: float) -> None:
        nbytes, done, box = item
        try:
            if self._out:
                self._execute(now)  # puts and frees queued before this op are done first
            with self._lock:
                self._apply_unpins_locked()
                fits = self.arena.allocator.largest_free() >= nbytes + ALIGNMENT
            box[0] = fits or self._make_room(nbytes, now)  # True: worth another try
        finally:
            done.hit()

    def _make_room(self, nbytes: int, now: float) -> bool:
        """Ask the raylet what to spill for `nbytes`, spill it now; True if anything was."""
        cmds: list[Any] = []
        self.raylet.handle(MakeRoom(nbytes), now, cmds)
        spilled = False
        for cmd in cmds:
            if type(cmd) is Spill:
                ok = self._spill_object(cmd.oid)
                spilled = spilled or ok
                self.raylet.handle(Spilled(cmd.oid, ok), now, self._out)
            else:
                self._out.append(cmd)
        return spilled

    def _spill_object(self, oid: int) -> bool:
        """Write `oid` from the arena to the spill file and free its range (synchronously)."""
        with self._lock:
            loc = self.arena_objects.get(oid)
            if loc is None:
                return False
            offset, size = loc
            try:
                file_offset = self.spill.write(self.arena.view(offset, size))
            except OSError:
                return False
            del self.arena_objects[oid]
            self.spilled[oid] = (file_offset, size)
            self._release_range_locked(offset)
        return True

    def _effect_spill(self, cmd: Spill, now: float) -> None:
        ok = self._spill_object(cmd.oid)
        self.raylet.handle(Spilled(cmd.oid, ok), now, self._out)

    def _effect_restore(self, cmd: Restore, now: float) -> None:
        oid = cmd.oid
        with self._lock:
            loc = self.spilled.get(oid)
        if loc is None:
            if oid in self.arena_objects:
                self.raylet.handle(Restored(oid), now, self._out)
            else:
                self.raylet.handle(Restored(oid, "it is not on disk"), now, self._out)
            return
        file_offset, size = loc
        try:
            offset = self._allocate_loop(size, now)
        except ObjectStoreFullError as exc:  # the raylet retries it when room appears
            self.raylet.handle(Restored(oid, str(exc), no_room=True), now, self._out)
            return
        self.spill.read_into(file_offset, self.arena.writable_view(offset, size))
        with self._lock:
            del self.spilled[oid]
            self.arena_objects[oid] = (offset, size)
            self.spill.free(file_offset, size)
        self.raylet.handle(Restored(oid), now, self._out)

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
