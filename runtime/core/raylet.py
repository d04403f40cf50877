"""A node's raylet: local scheduler (bottom-up with spillback), argument pulls, and store accounting."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.core.bundles import RayletBundles
from runtime.core.config import CoreConfig
from runtime.core.ids import Address, NodeId, ObjectId, TaskId, generator_item_id, object_id
from runtime.core.messages import (
    ActorDied,
    ActorStarted,
    ActorWorkerDied,
    CancelRunning,
    CancelTask,
    Command,
    CommitBundles,
    Dispatch,
    EvictObjects,
    Free,
    GeneratorItem,
    GeneratorYielded,
    HostEvent,
    KillActor,
    KillWorker,
    LocateObject,
    MakeRoom,
    Message,
    NodeAdded,
    NodeRemoved,
    ObjectAdded,
    ObjectLocations,
    ObjectRemoved,
    PinObject,
    PrepareBundles,
    RegisterNode,
    ResourceReport,
    Restore,
    Restored,
    ReturnBundles,
    ScheduleTask,
    Send,
    SetTimer,
    Spill,
    Spilled,
    SpillTask,
    SubmitActorTask,
    SubmitTask,
    Subscribe,
    TaskDone,
    TaskEvents,
    TaskFinished,
    TimerFired,
    Trace,
    Transfer,
    TransferDone,
    TransferFailed,
    Unassigned,
    WorkerBlocked,
    WorkerUnblocked,
)
from runtime.core.object_store import ObjectStore
from runtime.core.policies import LocalState, PlacementPolicy, make_policy
from runtime.core.resources import (
    Resources,
    ShapeKey,
    acquire,
    describe,
    fits,
    give_instances,
    pick_instances,
    release,
    shape_key,
    take_instances,
    unit_instances,
)
from runtime.core.task import (
    ACTOR_CREATION,
    ERR_ACTOR_DIED,
    ERR_CANCELLED,
    ERR_OBJECT_LOST,
    ERR_STORE_FULL,
    TASK,
    ActorError,
    ResultInfo,
    TaskSpec,
)

REPORT_TIMER = "report"

WAIT_CAUSES = ("arguments", "global_scheduler", "transfers", "resources", "actor_queue")
"""Why a task waited before it ran, as accumulated in ``Raylet.waited`` (seconds):

* ``arguments``: from submission until the task reached a raylet: held by its owner
  until its arguments were computed (and, for an actor call, its actor started), plus
  the submission itself;
* ``global_scheduler``: spilled, until the global scheduler placed it on a node (an
  actor's creation: from registration with the GCS until placed);
* ``transfers``: on its node, pulling (or restoring) its stored arguments;
* ``resources``: queued on its node until resources were free;
* ``actor_queue``: at its actor, behind the actor's earlier calls.
"""


@dataclass(slots=True)
class LocalActor:
    """An actor living on this node: its held resources and its ordered queue of calls."""

    spec: TaskSpec
    hold: Resources
    queue: deque[TaskSpec] = field(default_factory=deque)
    inflight: deque[TaskSpec] = field(default_factory=deque)
    """Calls dispatched to the actor's worker and not finished, oldest first (at most
    `depth` of them; the worker runs up to the actor's ``max_concurrency`` at once)."""
    depth: int = 1
    """Calls dispatched before earlier ones finish: the actor's ``max_concurrency`` running
    plus ``CoreConfig.actor_pipeline - 1`` waiting in the worker."""
    next_seq: dict[Address, int] = field(default_factory=dict)
    """Per caller: the sequence number of the next call to accept."""
    early: dict[tuple[Address, int], TaskSpec] = field(default_factory=dict)
    """Calls that arrived before an earlier call of the same caller."""


class Raylet(RayletBundles):
    """The per-node scheduler and store manager.

    A task submitted by a local owner starts at once when its resources are free and its
    arguments are local; otherwise the placement policy decides whether it waits here or
    is spilled to the global scheduler. Tasks placed here by the global scheduler are
    always accepted (no ping-pong). Arguments stored on other nodes are pulled before the
    task is queued for resources, so a task never holds a CPU while waiting for bytes.
    """

    def __init__(
        self,
        node: NodeId,
        addr: Address,
        gcs_addr: Address,
        gs_addr: Address,
        resources: Resources,
        store_capacity: int,
        config: CoreConfig | None = None,
        policy: PlacementPolicy | None = None,
    ) -> None:
        self.node = node
        self.addr = addr
        self.gcs_addr = gcs_addr
        self.gs_addr = gs_addr
        self.config = config or CoreConfig()
        self.policy = policy or make_policy(self.config.policy, self.config.sample_size)
        self.total: Resources = dict(resources)
        self.available: Resources = dict(resources)
        self.instances: dict[str, list[float]] = unit_instances(resources)
        """Free capacity per instance of each unit-instance resource (GPU ids 0..n-1)."""
        self.store = ObjectStore(store_capacity)
        self.queues: dict[ShapeKey, deque[TaskSpec]] = {}
        self.queued = 0
        self.waiting: dict[TaskId, tuple[TaskSpec, set[ObjectId]]] = {}
        """Tasks whose stored arguments are still being pulled here."""
        self.pulls: dict[ObjectId, list[TaskId]] = {}
        self.room_queue: deque[ObjectId] = deque()
        """Spilled arguments waiting for room before they are restored, in admission order."""
        self.restoring: dict[ObjectId, int] = {}
        """Restores in flight (oid -> bytes): counted against memory until answered."""
        self.running: dict[TaskId, TaskSpec] = {}
        self.actors: dict[int, LocalActor] = {}
        self.ahead: dict[TaskId, TaskSpec] = {}
        """Prefetched tasks handed to the host without resources (``worker_prefetch``)."""
        self._prefetch_paused = False
        """The host handed a prefetched task back: send no more until a task finishes."""
        self._ahead_cancelled: set[TaskId] = set()
        """Prefetched tasks cancelled while at the host: dropped if handed back."""
        self.blocked: set[TaskId] = set()
        """Running tasks whose worker waits (nested get): their resources are lent out."""
        self.waited: dict[str, float] = dict.fromkeys(WAIT_CAUSES, 0.0)
        """Seconds tasks spent waiting here, by cause (``WAIT_CAUSES``), summed over tasks."""
        self.task_events: list[tuple[Any, ...]] = []
        """Task state changes not yet sent to the GCS (records of ``TaskEvents``)."""
        self.dispatched = 0
        self.spilled = 0
        self.peers: set[NodeId] = set()
        """The other live nodes (from the GCS node table): none means nowhere to spill."""
        self._feasible: dict[ShapeKey, bool] = {}
        """Per resource shape: can this node ever run it (its totals never change)."""
        self._state = LocalState(node, False, 0, self.config.spillback_threshold, 0, 0)
        self._handlers: dict[type, Callable[[Any, float, list[Any]], None]] = {
            SubmitTask: self._on_submit,
            ScheduleTask: self._on_scheduled,
            TaskFinished: self._on_task_finished,
            TransferDone: self._on_transfer_done,
            EvictObjects: self._on_evict,
            PinObject: self._on_pin,
            TimerFired: self._on_timer,
            SubmitActorTask: self._on_actor_task,
            ActorWorkerDied: self._on_actor_worker_died,
            KillActor: self._on_kill_actor,
            CancelTask: self._on_cancel,
            NodeAdded: self._on_node_added,
            NodeRemoved: self._on_node_removed,
            TransferFailed: self._on_transfer_failed,
            ObjectLocations: self._on_object_locations,
            WorkerBlocked: self._on_worker_blocked,
            WorkerUnblocked: self._on_worker_unblocked,
            MakeRoom: self._on_make_room,
            Spilled: self._on_spilled,
            Restored: self._on_restored,
            Unassigned: self._on_unassigned,
            PrepareBundles: self._on_prepare_bundles,
            CommitBundles: self._on_commit_bundles,
            ReturnBundles: self._on_return_bundles,
            GeneratorYielded: self._on_generator_yielded,
        }
        self._init_bundles()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, now: float, out: list[Any]) -> None:
        """Register with the GCS and start the periodic report timer."""
        out.append(
            Send(
                self.gcs_addr,
                RegisterNode(self.node, self.addr, dict(self.total), self.store.capacity),
                256,
            )
        )
        out.append(SetTimer(self.addr, self.config.report_interval, REPORT_TIMER))
        out.append(Send(self.gcs_addr, Subscribe(self.addr), 64))

    def handle(self, msg: Message | HostEvent, now: float, out: list[Command]) -> None:
        """React to one message or host event, appending commands to ``out``."""
        self._handlers[type(msg)](msg, now, out)

    # -- placement ----------------------------------------------------------------------

    def _on_submit(self, msg: SubmitTask, now: float, out: list[Any]) -> None:
        spec = msg.spec
        self.waited["arguments"] += now - spec.since
        spec.since = now
        if spec.strategy is not None and self._submit_with_strategy(spec, now, out):
            return
        key = self._shape(spec)
        feasible = self._feasible.get(key)
        if feasible is None:
            feasible = self._feasible[key] = fits(spec.resources, self.total)
        if not feasible:
            self._spill(spec, "spill: node can never fit " + describe(spec.resources), out)
            return
        state = self._state
        state.queued = self.queued + len(self.waiting)
        local_bytes = remote_bytes = 0
        if spec.deps:
            store = self.store
            for dep in spec.deps:
                if dep.oid in store:
                    local_bytes += dep.size
                else:
                    remote_bytes += dep.size
        state.local_dep_bytes = local_bytes
        state.remote_dep_bytes = remote_bytes
        state.fits_now = (
            remote_bytes == 0
            and not self.queues.get(self._shape(spec))
            and fits(spec.resources, self.available)
        )
        reason = self.policy.run_locally(state, spec)
        if reason is None and not self.peers:
            reason = "local: no other node to spill to"
        if reason is None:
            self._spill(spec, "spill: policy " + self.policy.name, out)
            return
        spec.reason = reason
        self._admit(spec, now, out)

    def _on_scheduled(self, msg: ScheduleTask, now: float, out: list[Any]) -> None:
        spec = msg.spec
        self.waited["global_scheduler"] += now - spec.since
        spec.since = now
        self._admit(spec, now, out)

    def _spill(self, spec: TaskSpec, reason: str, out: list[Any]) -> None:
        spec.reason = reason
        self.spilled += 1
        if self.config.trace:
            out.append(Trace("spill", spec.task_id, self.node, reason))
        queued = self.queued + len(self.waiting)
        spill = SpillTask(spec, self.node, queued, len(self.running))
        out.append(Send(self.gs_addr, spill, spec.nbytes))

    def _admit(self, spec: TaskSpec, now: float, out: list[Any]) -> None:
        """Take responsibility for ``spec`` on this node: pull its inputs, then queue it."""
        spec.node = self.node
        if self.config.trace:
            out.append(Trace("admit", spec.task_id, self.node, spec.reason))
        if spec.deps:
            store = self.store
            missing: set[ObjectId] = set()
            spilled: list[ObjectId] = []
            for dep in spec.deps:
                if store.in_memory(dep.oid):
                    store.pin(dep.oid)
                elif dep.oid in store:
                    missing.add(dep.oid)  # spilled: restore it before the task runs
                    spilled.append(dep.oid)
                else:
                    missing.add(dep.oid)
                    self._pull(dep.oid, dep.size, dep.locations, spec.task_id, out)
            if missing:
                self.waiting[spec.task_id] = (spec, missing)
                if spilled:
                    self._restore_args(spec, spilled, now, out)
                return
        self._enqueue(spec, now, out)

    def _pull(
        self,
        oid: ObjectId,
        size: int,
        locations: tuple[NodeId, ...],
        task_id: TaskId,
        out: list[Any],
    ) -> None:
        waiters = self.pulls.get(oid)
        if waiters is not None:
            waiters.append(task_id)
            return
        self.pulls[oid] = [task_id]
        src = next((n for n in locations if n != self.node), locations[0] if locations else -1)
        out.append(Transfer(oid, src, self.node, size))

    def _restore_args(
        self, spec: TaskSpec, spilled: list[ObjectId], now: float, out: list[Any]
    ) -> None:
        """Restore a waiting task's spilled arguments, as memory allows (see `_restore_more`).

        A task whose arguments together exceed the store's capacity can never have them all
        in memory: it fails at once with a store-full error.
        """
        store = self.store
        total = sum(
            store.objects[d.oid].size if d.oid in store else d.size
            for d in {d.oid: d for d in spec.deps}.values()
        )
        if total > store.capacity:
            reason = (
                f"the arguments of {spec.name} ({total} bytes) can never fit in the object "
                f"store of node {self.node} ({store.capacity} bytes)"
            )
            self._fail_waiters([spec.task_id], reason, out)
            return
        for oid in spilled:
            waiters = self.pulls.get(oid)
            if waiters is not None:
                waiters.append(spec.task_id)  # restoring or queued for another task already
                continue
            self.pulls[oid] = [spec.task_id]
            self.room_queue.append(oid)
        self._restore_more(now, out)

    def _restore_more(self, now: float, out: list[Any]) -> None:
        """Start queued restores, oldest first, while they fit beside what cannot move.

        Memory that cannot be freed for a restore is what tasks pin (running tasks' and
        waiting tasks' arguments) plus the restores in flight; everything else can be
        spilled or evicted by the host. Strict FIFO: the oldest waiting task gets all of
        its arguments before a later one gets any it would have to share memory with, so
        tasks holding part of their arguments can never wait on each other forever.
        """
        queue, store, pulls = self.room_queue, self.store, self.pulls
        while queue:
            oid = queue[0]
            waiters = pulls.get(oid)
            if waiters is not None and not any(t in self.waiting for t in waiters):
                del pulls[oid]  # every task waiting on it ended (cancelled, failed)
                waiters = None
            entry = store.objects.get(oid)
            if waiters is None or entry is None or store.in_memory(oid):
                queue.popleft()
                if waiters is None:
                    continue
                if entry is None:  # freed meanwhile: cannot happen while a task holds it
                    del pulls[oid]
                    reason = f"object {oid:x} was freed before it could be restored"
                    self._fail_waiters(waiters, reason, out, ERR_OBJECT_LOST)
                else:  # in memory again (restored for another reason)
                    self._object_local(oid, now, out)
                continue
            if store.pinned + sum(self.restoring.values()) + entry.size > store.capacity:
                return  # waits until a task ends or an object is freed
            queue.popleft()
            self.restoring[oid] = entry.size
            out.append(Restore(self.node, oid, entry.size))

    def _enqueue(self, spec: TaskSpec, now: float, out: list[Any]) -> None:
        key = self._shape(spec)
        queue = self.queues.get(key)
        if (
            not queue
            and fits(spec.resources, self.available)
            and (not self.instances or self._take_instances(spec))
        ):
            self._dispatch(spec, now, out)
            return
        if queue is None:
            queue = self.queues[key] = deque()
        queue.append(spec)
        self.queued += 1
        if self.config.worker_prefetch:
            self._prefetch(out)

    def _prefetch(self, out: list[Any]) -> None:
        """Hand queued plain tasks to the host ahead of resources, up to ``worker_prefetch``."""
        limit = self.config.worker_prefetch
        if self._prefetch_paused or len(self.ahead) >= limit:
            return
        for queue in self.queues.values():
            if queue and self.instances and self._needs_instances(queue[0]):
                continue  # its instance ids are picked when it starts: never ahead of that
            while queue and len(self.ahead) < limit and queue[0].kind == TASK:
                spec = queue.popleft()
                self.queued -= 1
                self.ahead[spec.task_id] = spec
                out.append(Dispatch(self.node, spec, True))
            if len(self.ahead) >= limit:
                return

    def _on_unassigned(self, msg: Unassigned, now: float, out: list[Any]) -> None:
        spec = self.ahead.pop(msg.task_id, None)
        if spec is None:
            return
        if msg.task_id in self._ahead_cancelled:  # its owner failed it already: drop it
            self._ahead_cancelled.discard(msg.task_id)
            for dep in spec.deps:
                self.store.unpin(dep.oid)
            error = "cancelled before it started"
            out.append(
                Send(spec.owner, TaskDone(spec.task_id, self.node, [], ERR_CANCELLED, error))
            )
            return
        self._prefetch_paused = True
        key = self._shape(spec)
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = deque()
        queue.appendleft(spec)
        self.queued += 1
        spec.since = now
        self._dispatch_queued(now, out)

    def _dispatch(self, spec: TaskSpec, now: float, out: list[Any]) -> None:
        acquire(self.available, spec.resources)
        self.running[spec.task_id] = spec
        self.dispatched += 1
        spec.started_at = now
        out.append(Dispatch(self.node, spec))

    def _dispatch_queued(self, now: float, out: list[Any]) -> None:
        """Start queued tasks, per resource shape in FIFO order, while resources last."""
        available, waited = self.available, self.waited
        for queue in self.queues.values():
            while queue and fits(queue[0].resources, available):
                if self.instances and not self._take_instances(queue[0]):
                    break  # the total fits but no instance has room (fractions)
                self.queued -= 1
                spec = queue.popleft()
                waited["resources"] += now - spec.since
                self._dispatch(spec, now, out)

    def _needs_instances(self, spec: TaskSpec) -> bool:
        resources = spec.resources
        return any(resources.get(name, 0.0) > 0 for name in self.instances)

    def _take_instances(self, spec: TaskSpec) -> bool:
        """Pick and charge the instance ids ``spec`` needs (True: it got them, or needs none)."""
        picked: dict[str, tuple[int, ...]] = {}
        for name, free in self.instances.items():
            amount = spec.resources.get(name, 0.0)
            if amount > 0:
                ids = pick_instances(free, amount)
                if ids is None:
                    return False
                picked[name] = ids
        for name, ids in picked.items():
            take_instances(self.instances[name], ids, spec.resources[name])
        spec.instances = picked or None
        return True

    def _give_instances(self, spec: TaskSpec, amounts: Resources | None = None) -> None:
        """Give back ``spec``'s instance ids (charged ``amounts``; default its resources).

        ``spec.instances`` stays as the record of which instances it used."""
        picked = spec.instances
        if not picked:
            return
        charged = spec.resources if amounts is None else amounts
        for name, ids in picked.items():
            give_instances(self.instances[name], ids, charged.get(name, 0.0))

    @staticmethod
    def _shape(spec: TaskSpec) -> ShapeKey:
        key = spec.shape
        if key is None:
            key = spec.shape = shape_key(spec.resources)
        return key

    # -- completion ---------------------------------------------------------------------

    def _on_task_finished(self, msg: TaskFinished, now: float, out: list[Any]) -> None:
        spec = self.running.pop(msg.task_id, None)
        if spec is None:
            spec = self.ahead.pop(msg.task_id, None) if self.ahead else None
            if spec is None:
                return  # cancelled or already failed over; nothing holds resources for it
            self._ahead_cancelled.discard(msg.task_id)
            for dep in spec.deps:  # a prefetched task that never started (its worker died)
                self.store.unpin(dep.oid)
            self._report_done(spec, msg, now, out)
            return
        if spec.kind != TASK:
            self._actor_task_finished(spec, msg, now, out)
            return
        if self.blocked and msg.task_id in self.blocked:
            self.blocked.discard(msg.task_id)  # its resources were already lent back
            if spec.instances:  # all but the instance resources, which it kept
                release(self.available, self._instance_part(spec))
        else:
            release(self.available, spec.resources)
        if spec.instances:
            self._give_instances(spec)
        nxt = self.ahead.pop(msg.started, None) if msg.started else None
        if nxt is not None:  # the worker went on to a prefetched task: it runs now
            self._ahead_cancelled.discard(nxt.task_id)  # too late to take back: it ran
            acquire(self.available, nxt.resources)
            self.running[nxt.task_id] = nxt
            self.dispatched += 1
            nxt.started_at = now
        for dep in spec.deps:
            self.store.unpin(dep.oid)
        self._report_done(spec, msg, now, out)
        if self.room_queue:
            self._restore_more(now, out)
        self._prefetch_paused = False
        if self.queued:
            self._dispatch_queued(now, out)
            if self.config.worker_prefetch:
                self._prefetch(out)

    def _report_done(self, spec: TaskSpec, msg: TaskFinished, now: float, out: list[Any]) -> None:
        """Seal a finished task's outputs and tell its owner how it ended."""
        error_kind, error = msg.error_kind, msg.error
        results: list[ResultInfo] = []
        nbytes = 96
        if error_kind is None:
            results, nbytes, error = self._seal_outputs(spec, msg, now, out)
            if error is not None:
                error_kind = ERR_STORE_FULL
        if self.config.record_task_events:
            state = "FINISHED" if error_kind is None else "FAILED"
            record = (spec.task_id, state, self.node, now, spec, spec.attempt, error_kind, error)
            self.task_events.append(record)
        done = TaskDone(spec.task_id, self.node, results, error_kind, error)
        out.append(Send(spec.owner, done, nbytes))

    def _seal_outputs(
        self, spec: TaskSpec, msg: TaskFinished, now: float, out: list[Any]
    ) -> tuple[list[ResultInfo], int, str | None]:
        """Account for a finished task's return values; small ones go inline to the owner."""
        results: list[ResultInfo] = []
        nbytes = 96
        threshold = self.config.inline_threshold
        stored_flags = msg.stored
        tid = spec.task_id
        for i, (size, payload) in enumerate(msg.outputs):
            oid = object_id(tid, i + 1)
            stored = stored_flags[i] if stored_flags is not None else size >= threshold
            if not stored:
                results.append(ResultInfo(oid, size, False, payload))
                nbytes += size
                continue
            try:
                evicted = self.store.add(oid, size, primary=True)
            except MemoryError as exc:
                return [], nbytes, f"object store of node {self.node} is full: {exc}"
            self._forget(evicted, out)
            out.append(Send(self.gcs_addr, ObjectAdded(oid, self.node, size, spec.owner, True), 96))
            results.append(ResultInfo(oid, size, True, None))
            if self.pulls:
                self._object_local(oid, now, out)
        return results, nbytes, None

    def _on_generator_yielded(self, msg: GeneratorYielded, now: float, out: list[Any]) -> None:
        """Seal one item of a running generator task and tell its owner at once."""
        oid = generator_item_id(msg.task_id, msg.index)
        spec = self.running.get(msg.task_id)
        if spec is None:  # cancelled or failed over meanwhile: nobody will consume it
            if msg.stored:
                out.append(Free(self.node, oid))
            return
        if msg.error_kind is not None:
            item = GeneratorItem(msg.task_id, msg.index, self.node, None, msg.error_kind, msg.error)
            out.append(Send(spec.owner, item, 256))
            return
        size = msg.size
        stored = msg.stored if msg.stored is not None else size >= self.config.inline_threshold
        if not stored:
            result = ResultInfo(oid, size, False, msg.payload)
            out.append(
                Send(
                    spec.owner, GeneratorItem(msg.task_id, msg.index, self.node, result), 96 + size
                )
            )
            return
        if oid in self.store:
            return  # a duplicate of a live item (a re-run that did not skip it): keep the first
        try:
            evicted = self.store.add(oid, size, primary=True)
        except MemoryError as exc:
            out.append(Free(self.node, oid))
            error = f"object store of node {self.node} is full: {exc}"
            item = GeneratorItem(msg.task_id, msg.index, self.node, None, ERR_STORE_FULL, error)
            out.append(Send(spec.owner, item, 256))
            return
        self._forget(evicted, out)
        out.append(Send(self.gcs_addr, ObjectAdded(oid, self.node, size, spec.owner, True), 96))
        result = ResultInfo(oid, size, True, None)
        out.append(Send(spec.owner, GeneratorItem(msg.task_id, msg.index, self.node, result), 96))
        if self.pulls:
            self._object_local(oid, now, out)

    def _on_transfer_done(self, msg: TransferDone, now: float, out: list[Any]) -> None:
        try:
            evicted = self.store.add(msg.oid, msg.size, primary=False)
        except MemoryError as exc:
            waiters = self.pulls.pop(msg.oid, [])
            self._fail_waiters(waiters, f"object store of node {self.node} is full: {exc}", out)
            return
        self._forget(evicted, out)
        out.append(Send(self.gcs_addr, ObjectAdded(msg.oid, self.node, msg.size, -1, False), 96))
        self._object_local(msg.oid, now, out)

    def _object_local(self, oid: ObjectId, now: float, out: list[Any]) -> None:
        """``oid`` is now in this node's store (pulled, computed or put here): wake its waiters."""
        waiters = self.pulls.pop(oid, None)
        if waiters is None:
            return
        for task_id in waiters:
            entry = self.waiting.get(task_id)
            if entry is None:
                continue
            spec, missing = entry
            self.store.pin(oid)
            missing.discard(oid)
            if not missing:
                del self.waiting[task_id]
                self.waited["transfers"] += now - spec.since
                spec.since = now
                self._enqueue(spec, now, out)

    def _on_transfer_failed(self, msg: TransferFailed, now: float, out: list[Any]) -> None:
        if msg.oid in self.pulls:
            out.append(Send(self.gcs_addr, LocateObject(msg.oid, self.addr), 64))

    def _on_object_locations(self, msg: ObjectLocations, now: float, out: list[Any]) -> None:
        waiters = self.pulls.get(msg.oid)
        if waiters is None:
            return
        if msg.oid in self.store:
            self._object_local(msg.oid, now, out)  # recomputed or put here meanwhile
            return
        sources = [n for n in msg.locations if n != self.node]
        if sources:
            size = self._pull_size(msg.oid, waiters)
            out.append(Transfer(msg.oid, sources[0], self.node, size))
            return
        del self.pulls[msg.oid]
        reason = f"object {msg.oid:x} was lost: no live node holds a copy"
        self._fail_waiters(waiters, reason, out, ERR_OBJECT_LOST)

    def _pull_size(self, oid: ObjectId, waiters: list[TaskId]) -> int:
        for task_id in waiters:
            entry = self.waiting.get(task_id)
            if entry is not None:
                for dep in entry[0].deps:
                    if dep.oid == oid:
                        return dep.size
        return 0

    def _fail_waiters(
        self, waiters: list[TaskId], reason: str, out: list[Any], kind: str = ERR_STORE_FULL
    ) -> None:
        for task_id in waiters:
            entry = self.waiting.pop(task_id, None)
            if entry is None:
                continue
            spec = entry[0]
            for dep in spec.deps:
                if dep.oid not in entry[1]:
                    self.store.unpin(dep.oid)
            out.append(Send(spec.owner, TaskDone(task_id, self.node, [], kind, reason)))

    def _forget(self, evicted: list[ObjectId], out: list[Any]) -> None:
        for oid in evicted:
            out.append(Free(self.node, oid))
            out.append(Send(self.gcs_addr, ObjectRemoved(oid, self.node), 64))

    def _on_worker_blocked(self, msg: WorkerBlocked, now: float, out: list[Any]) -> None:
        spec = self.running.get(msg.task_id)
        if spec is None or spec.kind != TASK or msg.task_id in self.blocked:
            return
        self.blocked.add(msg.task_id)
        release(self.available, self._lendable(spec))
        if self.queued:
            self._dispatch_queued(now, out)

    def _on_worker_unblocked(self, msg: WorkerUnblocked, now: float, out: list[Any]) -> None:
        if msg.task_id not in self.blocked:
            return
        self.blocked.discard(msg.task_id)
        spec = self.running.get(msg.task_id)
        if spec is not None:
            acquire(self.available, self._lendable(spec))  # may oversubscribe briefly, as in Ray

    def _lendable(self, spec: TaskSpec) -> Resources:
        """What a blocked task lends out: all but its instance resources (GPUs stay its own,
        so no other task is given the same instance ids)."""
        if not spec.instances:
            return spec.resources
        return {k: v for k, v in spec.resources.items() if k not in spec.instances}

    def _instance_part(self, spec: TaskSpec) -> Resources:
        """The instance resources of ``spec`` (kept while it was blocked)."""
        picked = spec.instances or {}
        return {k: v for k, v in spec.resources.items() if k in picked}

    # -- cluster membership -------------------------------------------------------------

    def _on_node_added(self, msg: NodeAdded, now: float, out: list[Any]) -> None:
        if msg.node != self.node:
            self.peers.add(msg.node)

    def _on_node_removed(self, msg: NodeRemoved, now: float, out: list[Any]) -> None:
        self.peers.discard(msg.node)

    # -- objects and reports ------------------------------------------------------------

    def _on_evict(self, msg: EvictObjects, now: float, out: list[Any]) -> None:
        for oid in msg.oids:
            if self.store.remove(oid):
                out.append(Free(self.node, oid))
        if self.room_queue:
            self._restore_more(now, out)

    def _on_make_room(self, msg: MakeRoom, now: float, out: list[Any]) -> None:
        """Spill LRU unpinned primary copies until ``nbytes`` fit (at least one, if any)."""
        if not self.config.object_spilling:
            return
        store = self.store
        needed = store.used + msg.nbytes - store.capacity
        for oid in store.spill_candidates(needed):
            out.append(Spill(self.node, oid, store.objects[oid].size))

    def _on_spilled(self, msg: Spilled, now: float, out: list[Any]) -> None:
        if msg.ok:
            self.store.mark_spilled(msg.oid)
        else:
            self.store.spill_failed(msg.oid)

    def _on_restored(self, msg: Restored, now: float, out: list[Any]) -> None:
        self.restoring.pop(msg.oid, None)
        if msg.error is None:
            self.store.mark_restored(msg.oid)
            self._object_local(msg.oid, now, out)
            if self.room_queue:
                self._restore_more(now, out)
            return
        if msg.no_room and msg.oid in self.pulls and (self.store.pinned or self.restoring):
            # memory is short for now: retry it first once a task ends or a restore lands
            self.room_queue.appendleft(msg.oid)
            return
        waiters = self.pulls.pop(msg.oid, [])
        self._fail_waiters(waiters, f"cannot restore spilled object {msg.oid:x}: {msg.error}", out)
        if self.room_queue:
            self._restore_more(now, out)  # their other arguments are unpinned

    def _on_pin(self, msg: PinObject, now: float, out: list[Any]) -> None:
        evicted = self.store.add(msg.oid, msg.size, primary=True, force=True)
        self._forget(evicted, out)
        out.append(Send(self.gcs_addr, ObjectAdded(msg.oid, self.node, msg.size, msg.owner), 96))

    def _on_timer(self, msg: TimerFired, now: float, out: list[Any]) -> None:
        out.append(
            Send(
                self.gs_addr,
                ResourceReport(
                    self.node,
                    dict(self.available),
                    self.queued + len(self.waiting),
                    len(self.running),
                ),
                128,
            )
        )
        self.flush_task_events(now, out)
        out.append(SetTimer(self.addr, self.config.report_interval, REPORT_TIMER))

    def flush_task_events(self, now: float, out: list[Any]) -> None:
        """Send the task state changes gathered since the last report to the GCS.

        Finished tasks were recorded as they ended; running ones are reported here, once
        per interval, so the table shows them without a record per dispatch. Called by
        the report timer, and by a host that wants the table current (the state API).
        """
        if self.config.record_task_events:
            node, events = self.node, self.task_events
            for tid, spec in self.running.items():
                events.append(
                    (tid, "RUNNING", node, spec.started_at, spec, spec.attempt, None, None)
                )
        if self.task_events:
            events, self.task_events = self.task_events, []
            out.append(Send(self.gcs_addr, TaskEvents(self.node, events), 32 * len(events)))

    # -- actors -------------------------------------------------------------------------

    def _actor_task_finished(
        self, spec: TaskSpec, msg: TaskFinished, now: float, out: list[Any]
    ) -> None:
        if spec.kind == ACTOR_CREATION:
            release(self.available, spec.resources)
            if self.config.record_task_events:
                state = "FINISHED" if msg.error_kind is None else "FAILED"
                record = (spec.task_id, state, self.node, now, spec, spec.attempt,
                          msg.error_kind, msg.error)  # fmt: skip
                self.task_events.append(record)
            if msg.error_kind is None:
                hold = spec.hold if spec.hold is not None else spec.resources
                acquire(self.available, hold)
                if spec.instances:  # the actor keeps its instance ids while alive
                    self._keep_instances(spec, hold)
                depth = max(1, spec.max_concurrency) + max(1, self.config.actor_pipeline) - 1
                self.actors[spec.actor_id] = LocalActor(spec, hold, depth=depth)
                out.append(Send(self.gcs_addr, ActorStarted(spec.actor_id, self.node, self.addr)))
            else:
                # a constructor that raised is final; a worker that died may be restarted
                self._give_instances(spec)
                killed = msg.error_kind == "application"
                reason: Any = f"the actor's worker died in its constructor: {msg.error}"
                if killed:
                    reason = ActorError("the actor's constructor raised an exception", msg.error)
                out.append(Send(self.gcs_addr, ActorDied(spec.actor_id, self.node, reason, killed)))
            if self.queued:
                self._dispatch_queued(now, out)
            return
        actor = self.actors.get(spec.actor_id)
        if actor is not None:
            inflight = actor.inflight
            if inflight and inflight[0] is spec:
                inflight.popleft()
            elif spec in inflight:
                inflight.remove(spec)
        self._report_done(spec, msg, now, out)
        if actor is not None:
            self._run_next_call(actor, now, out)

    def _keep_instances(self, spec: TaskSpec, hold: Resources) -> None:
        """An actor's lifetime holds ``hold``: keep the instances it covers, free the rest."""
        picked = spec.instances or {}
        for name in list(picked):
            placed, kept = spec.resources.get(name, 0.0), hold.get(name, 0.0)
            if kept != placed:  # a different lifetime amount: give back, pick again
                give_instances(self.instances[name], picked.pop(name), placed)
                ids = pick_instances(self.instances[name], kept) if kept > 0 else None
                if ids is not None:
                    take_instances(self.instances[name], ids, kept)
                    picked[name] = ids
        spec.instances = picked or None

    def _on_actor_task(self, msg: SubmitActorTask, now: float, out: list[Any]) -> None:
        spec = msg.spec
        self.waited["arguments"] += now - spec.since
        spec.since = now
        actor = self.actors.get(spec.actor_id)
        if actor is None:
            error = f"actor {spec.actor_id:x} is not alive on node {self.node}"
            out.append(
                Send(spec.owner, TaskDone(spec.task_id, self.node, [], ERR_ACTOR_DIED, error))
            )
            return
        caller = spec.owner
        expected = actor.next_seq.get(caller, msg.first_unfinished)
        if spec.seq != expected:
            actor.early[(caller, spec.seq)] = spec
            actor.next_seq.setdefault(caller, expected)
            return
        while True:
            spec.node = self.node
            actor.queue.append(spec)
            expected += 1
            nxt = actor.early.pop((caller, expected), None) if actor.early else None
            if nxt is None:
                break
            spec = nxt
        actor.next_seq[caller] = expected
        self._run_next_call(actor, now, out)

    def _run_next_call(self, actor: LocalActor, now: float, out: list[Any]) -> None:
        queue, inflight = actor.queue, actor.inflight
        depth = actor.depth
        while queue and len(inflight) < depth:
            spec = queue.popleft()
            self.waited["actor_queue"] += now - spec.since
            inflight.append(spec)
            self.running[spec.task_id] = spec
            self.dispatched += 1
            spec.started_at = now
            out.append(Dispatch(self.node, spec))

    def _on_actor_worker_died(self, msg: ActorWorkerDied, now: float, out: list[Any]) -> None:
        self._actor_gone(msg.actor_id, msg.reason, False, now, out)

    def _on_kill_actor(self, msg: KillActor, now: float, out: list[Any]) -> None:
        if msg.actor_id in self.actors or self._creation_running(msg.actor_id) is not None:
            out.append(KillWorker(self.node, msg.actor_id))
            self._actor_gone(msg.actor_id, "the actor was killed", msg.no_restart, now, out)

    def _creation_running(self, actor_id: int) -> TaskSpec | None:
        for spec in self.running.values():
            if spec.kind == ACTOR_CREATION and spec.actor_id == actor_id:
                return spec
        return None

    def _actor_gone(
        self, actor_id: int, reason: str, killed: bool, now: float, out: list[Any]
    ) -> None:
        """The actor's worker is gone: fail its calls, free what it held, tell the GCS."""
        actor = self.actors.pop(actor_id, None)
        if actor is None:
            creation = self._creation_running(actor_id)
            if creation is None:
                return
            del self.running[creation.task_id]
            release(self.available, creation.resources)
            self._give_instances(creation)
        else:
            release(self.available, actor.hold)
            self._give_instances(actor.spec, actor.hold)
            calls = (
                list(actor.inflight)
                + list(actor.queue)
                + [actor.early[k] for k in sorted(actor.early)]
            )
            for spec in calls:
                self.running.pop(spec.task_id, None)
                error = f"{reason} (actor {actor_id:x} on node {self.node})"
                done = TaskDone(spec.task_id, self.node, [], ERR_ACTOR_DIED, error)
                out.append(Send(spec.owner, done))
        out.append(Send(self.gcs_addr, ActorDied(actor_id, self.node, reason, killed)))
        if self.queued:
            self._dispatch_queued(now, out)

    # -- cancellation -------------------------------------------------------------------

    def _on_cancel(self, msg: CancelTask, now: float, out: list[Any]) -> None:
        """Drop a queued or waiting task, or interrupt a running one (its owner already failed it)."""
        tid = msg.task_id
        if tid in self.ahead:  # handed to the host, not started: it takes it back
            self._ahead_cancelled.add(tid)
            out.append(CancelRunning(self.node, tid, msg.force))  # it may have started
            return
        if tid in self.running:
            force = msg.force and self.running[tid].kind == TASK
            out.append(CancelRunning(self.node, tid, force))
            return
        entry = self.waiting.pop(tid, None)
        if entry is not None:
            spec, missing = entry
            for dep in spec.deps:
                if dep.oid not in missing:
                    self.store.unpin(dep.oid)
            if self.room_queue:
                self._restore_more(now, out)
            return
        for queue in self.queues.values():
            for spec in queue:
                if spec.task_id == tid:
                    queue.remove(spec)
                    self.queued -= 1
                    for dep in spec.deps:
                        self.store.unpin(dep.oid)
                    if self.room_queue:
                        self._restore_more(now, out)
                    return
        for actor in self.actors.values():
            for spec in actor.queue:
                if spec.task_id == tid:
                    actor.queue.remove(spec)
                    return
        if msg.node >= 0 and msg.node != self.node:
            out.append(Send(self.gs_addr, msg, 64))  # it went elsewhere: forward

    # -- introspection ------------------------------------------------------------------

    def explain(self, task_id: TaskId) -> str:
        """Say why a task is where it is on this node: running, queued, or waiting for inputs."""
        spec = self.running.get(task_id)
        if spec is not None:
            given = "".join(
                f", {name} {','.join(map(str, ids))}"
                for name, ids in (spec.instances or {}).items()
            )
            return f"running on node {self.node}{given} ({spec.reason})"
        entry = self.waiting.get(task_id)
        if entry is not None:
            missing = ", ".join(f"{oid:x}" for oid in sorted(entry[1]))
            return f"waiting on node {self.node} for inputs to arrive: {missing}"
        for queue in self.queues.values():
            for position, spec in enumerate(queue):
                if spec.task_id == task_id:
                    return (
                        f"queued on node {self.node} ({spec.reason}): needs "
                        f"{describe(spec.resources)}, available {describe(self.available)}, "
                        f"{position} task(s) ahead"
                    )
        return f"not known to node {self.node}"
