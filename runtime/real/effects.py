"""Effects, a part of the node: what each core command does in the real world (loop thread)."""

from __future__ import annotations

import heapq
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

from runtime.core.messages import (
    INTERRUPT_UNSTARTED,
    CancelRunning,
    Dispatch,
    FenceNode,
    Free,
    MakeRoom,
    ObjectReady,
    Persist,
    Restore,
    Restored,
    Send,
    SetTimer,
    Spill,
    Spilled,
    TimerFired,
    Trace,
    Transfer,
    WorkerInterrupted,
)
from runtime.core.task import TASK
from runtime.exceptions import ObjectStoreFullError
from runtime.real.addresses import HOST_ADDR, OWNER_ADDR
from runtime.real.arena import ALIGNMENT
from runtime.real.futures import FAILED, READY
from runtime.real.worker import CANCEL_SIGNAL, write_cancel_target

__all__ = ["Effects", "HostTimers"]


INTERRUPT_RETRY = 0.05
"""Seconds between repeated interrupts of a task being cancelled."""


class HostTimers:
    """The host's own timers, as a component: ``TimerFired`` goes back to the effects."""

    __slots__ = ("effects",)

    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def handle(self, msg: TimerFired, now: float, out: list[Any]) -> None:
        """Hand the timer's key to the effects."""
        self.effects.on_host_timer(msg.key, now)


class Effects:
    """Turns core commands into effects on the loop thread, and makes room in the arena.

    It owns no table of its own: it acts on the parts passed in (object table, arena,
    claims, raylet, the in-process components and the command list `out`) and pushes
    host timers onto the loop's heap (`timers`, ordered by `timer_seq`). The parts made
    after it (worker pool, nested owners, actor dispatchers, the actor API's collector)
    are connected with `connect`.
    """

    def __init__(
        self,
        *,
        objects: Any,
        arena: Any,
        claims: Any,
        raylet: Any,
        components: dict[int, Any],
        out: list[Any],
        execute: Callable[[float], None],
        timers: list[tuple[float, int, int, str]],
        timer_seq: Iterator[int],
    ) -> None:
        self.objects = objects
        self.arena = arena
        self.claims = claims
        self.raylet = raylet
        self.components = components
        """Address -> in-process component: a ``Send`` is a direct ``handle`` call."""
        self.out = out
        self.execute = execute
        self.timers = timers
        """The loop's timer heap: (due, sequence, address, key)."""
        self.timer_seq = timer_seq
        self.pool: Any = None
        self.nested: Any = None
        self.actor_dispatchers: dict[int, Callable[[Any, float], None]] = {}
        """Task kind -> what dispatches it to an actor's worker (see `connect`)."""
        self.collect_actor: Callable[[tuple[int, int], float], None] | None = None
        """Collect an actor whose handles are all gone (the actor API's; see `connect`)."""

    def connect(
        self,
        pool: Any,
        nested: Any,
        actor_dispatchers: dict[int, Callable[[Any, float], None]],
        collect_actor: Callable[[tuple[int, int], float], None],
    ) -> None:
        """Plug in the parts made after this one: worker pool, nested owners, actors."""
        self.pool = pool
        self.nested = nested
        self.actor_dispatchers = actor_dispatchers
        self.collect_actor = collect_actor

    def table(self) -> dict[type, Callable[[Any, float], None]]:
        """Command type -> its effect, for the commands this part carries out."""
        return {
            Send: self.send,
            Dispatch: self.dispatch,
            ObjectReady: self.object_ready,
            Free: self.free,
            SetTimer: self.set_timer,
            Trace: self.trace,
            Transfer: self.transfer,
            FenceNode: self.fence_node,
            CancelRunning: self.cancel_running,
            Spill: self.spill,
            Restore: self.restore,
            Persist: self.persist,
        }

    # -- command effects -------------------------------------------------------------------

    def send(self, cmd: Send, now: float) -> None:
        """A message between in-process components: handled at once."""
        self.components[cmd.dst].handle(cmd.msg, now, self.out)

    def dispatch(self, cmd: Dispatch, now: float) -> None:
        """A task for a worker: an actor's worker, a prefetch offer, or an idle pool worker."""
        spec = cmd.spec
        if spec.kind != TASK:
            self.actor_dispatchers[spec.kind](spec, now)
        elif cmd.ahead:
            self.pool.prefetch(spec, now)
        else:
            self.pool.dispatch(spec, now)

    def object_ready(self, cmd: ObjectReady, now: float) -> None:
        """An object is ready or failed: resolve the table entry (or a nested owner's)."""
        oid = cmd.oid
        if cmd.owner != OWNER_ADDR:
            if cmd.error_kind is not None and (
                oid in self.objects.arena_objects or oid in self.objects.spilled
            ):
                with self.objects.lock:
                    self.objects.free_locked(oid)
            self.nested.ready(cmd, now)
            return
        with self.objects.lock:
            if cmd.error_kind is not None and (
                oid in self.objects.arena_objects or oid in self.objects.spilled
            ):
                self.objects.free_locked(
                    oid
                )  # a stored output the store refused, or a failed retry
            e = self.objects.entries.get(oid)
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

    def cancel_running(self, cmd: CancelRunning, now: float) -> None:
        """Interrupt (or kill) the worker running a cancelled task."""
        self._interrupt(cmd.task_id, cmd.force, now)

    def _interrupt(self, task_id: int, force: bool, now: float) -> None:
        """Interrupt (KeyboardInterrupt in the body) or, with ``force``, kill the task's worker.

        A worker ignores the interrupt outside a task body (it may not have started the
        task yet), so the signal is repeated every ``INTERRUPT_RETRY`` s while the worker
        still runs the task; it stops as soon as the task's end is processed here, before
        the worker can be given another task.
        """
        pool = self.pool
        for w in pool.workers:
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
        for spec in pool.backlog:  # dispatched by the raylet, still waiting for a worker
            if spec.task_id == task_id:
                pool.backlog.remove(spec)
                event = WorkerInterrupted(task_id, INTERRUPT_UNSTARTED)
                self.raylet.handle(event, now, self.out)
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
                self.pool.revoking.pop(task_id, None)  # a pending give-back must not re-queue it
                self.objects.release_arg_pins(task_id)
                event = WorkerInterrupted(task_id, INTERRUPT_UNSTARTED)
                self.raylet.handle(event, now, self.out)
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
        entry = (now + INTERRUPT_RETRY, next(self.timer_seq), HOST_ADDR, f"interrupt:{task_id}")
        heapq.heappush(self.timers, entry)

    def on_host_timer(self, key: str, now: float) -> None:
        """A host timer fired: repeat an interrupt, or collect an actor."""
        kind, _, arg = key.partition(":")
        if kind == "interrupt":
            self._interrupt(int(arg), False, now)
        elif kind == "collect":
            actor_id, _, owner_addr = arg.partition(":")
            assert self.collect_actor is not None, "connect() was not called"
            self.collect_actor((int(actor_id), int(owner_addr)), now)

    def free(self, cmd: Free, now: float) -> None:
        """Release an object's arena range (deferred while a value aliases it)."""
        with self.objects.lock:
            self.objects.free_locked(cmd.oid)

    def set_timer(self, cmd: SetTimer, now: float) -> None:
        """Push a component's timer onto the loop's heap."""
        heapq.heappush(self.timers, (now + cmd.delay, next(self.timer_seq), cmd.addr, cmd.key))

    def trace(self, cmd: Trace, now: float) -> None:
        """Trace records are the simulator's: nothing to do here."""
        pass

    def transfer(self, cmd: Transfer, now: float) -> None:
        """A single node has no other node to transfer to: an error in the core."""
        raise RuntimeError(f"a single-node host cannot transfer objects: {cmd!r}")

    def fence_node(self, cmd: FenceNode, now: float) -> None:
        """A single node has no other node to fence (no heartbeats): an error in the core.

        A node process of a cluster replaces this effect (`runtime.real.peers.Peers.fence`)."""
        raise RuntimeError(f"a single-node host cannot fence a node: {cmd!r}")

    def persist(self, cmd: Persist, now: float) -> None:
        """Only a head's GCS persists (its store replaces this effect): an error elsewhere."""
        raise RuntimeError(f"this node has no GCS store to persist into: {cmd!r}")

    # -- spilling ---------------------------------------------------------------------------

    def allocate_loop(self, nbytes: int, now: float) -> int:
        """Reserve an arena range on the loop thread, asking the raylet to spill while full."""
        while True:
            try:
                return self.objects.allocate_now(nbytes)
            except ObjectStoreFullError:
                if not self.make_room(nbytes, now):
                    raise

    def op_make_room(self, item: tuple[int, Any, list[bool]], now: float) -> None:
        """Program thread's request (queued): make room for `nbytes`; `box[0]` says if worth a retry."""
        nbytes, done, box = item
        try:
            if self.out:
                self.execute(now)  # puts and frees queued before this op are done first
            with self.objects.lock:
                self.objects.apply_unpins_locked()
                fits = self.arena.allocator.largest_free() >= nbytes + ALIGNMENT
            box[0] = fits or self.make_room(nbytes, now)  # True: worth another try
        finally:
            done.hit()

    def make_room(self, nbytes: int, now: float) -> bool:
        """Ask the raylet what to spill for `nbytes`, spill it now; True if anything was."""
        cmds: list[Any] = []
        self.raylet.handle(MakeRoom(nbytes), now, cmds)
        spilled = False
        for cmd in cmds:
            if type(cmd) is Spill:
                ok = self.objects.spill_object(cmd.oid)
                spilled = spilled or ok
                self.raylet.handle(Spilled(cmd.oid, ok), now, self.out)
            else:
                self.out.append(cmd)
        return spilled

    def spill(self, cmd: Spill, now: float) -> None:
        """Spill an object to disk now, as the raylet asked."""
        ok = self.objects.spill_object(cmd.oid)
        self.raylet.handle(Spilled(cmd.oid, ok), now, self.out)

    def restore(self, cmd: Restore, now: float) -> None:
        """Read a spilled object back into the arena, as the raylet asked."""
        oid = cmd.oid
        with self.objects.lock:
            loc = self.objects.spilled.get(oid)
        if loc is None:
            if oid in self.objects.arena_objects:
                self.raylet.handle(Restored(oid), now, self.out)
            else:
                self.raylet.handle(Restored(oid, "it is not on disk"), now, self.out)
            return
        file_offset, size = loc
        try:
            offset = self.allocate_loop(size, now)
        except ObjectStoreFullError as exc:  # the raylet retries it when room appears
            self.raylet.handle(Restored(oid, str(exc), no_room=True), now, self.out)
            return
        self.objects.spill.read_into(file_offset, self.arena.writable_view(offset, size))
        with self.objects.lock:
            del self.objects.spilled[oid]
            self.objects.arena_objects[oid] = (offset, size)
            self.objects.spill.free(file_offset, size)
        self.raylet.handle(Restored(oid), now, self.out)
