"""A node's raylet: local scheduler (bottom-up with spillback), argument pulls, and store accounting.

Lifecycle of a task on this raylet
==================================

Every task the raylet holds has ``spec.rstate``, one of the states below, and sits in the
containers that state names (``check()`` verifies both). A task enters from outside
(submitted, placed by the global scheduler, or an actor call) and leaves at DONE; the
same spec may enter again later (a retry, or another node after a spill).

==================  ===========================================  ======================
state               where it is                                  resources held
==================  ===========================================  ======================
FETCHING            ``waiting`` (pulling or restoring inputs)    none (inputs pinned)
QUEUED              ``queues[shape]``                            none (inputs pinned)
AHEAD               ``ahead`` (prefetched: the host holds it)    none
AHEAD_CANCELLED     ``ahead`` and ``_ahead_cancelled``           none
RUNNING             ``running``                                  its request
BLOCKED             ``running`` and ``blocked`` (nested get)     its instance part only
ACTOR_EARLY         its actor's ``early`` (an earlier call of    none
                    the same caller has not arrived)
ACTOR_FETCHING      its actor's ``queue`` and ``waiting``        none (its actor's)
ACTOR_QUEUED        its actor's ``queue``                        none (its actor's)
ACTOR_RUNNING       its actor's ``inflight`` and ``running``     none (its actor's)
DONE                nowhere                                      none
==================  ===========================================  ======================

Transitions (``TRANSITIONS``; the event that causes each)::

    (enter)          -> FETCHING        admitted, some input not in memory here
    (enter)          -> QUEUED          admitted, inputs local, no resources (or a queue)
    (enter)          -> RUNNING         admitted, inputs local, resources free
    (enter)          -> ACTOR_EARLY     actor call ahead of its caller's order
    (enter)          -> ACTOR_FETCHING  actor call in order, some input not here
    (enter)          -> ACTOR_QUEUED    actor call in order, inputs local
    FETCHING         -> QUEUED|RUNNING  last input arrived (pulled, restored, sealed)
    FETCHING         -> DONE            an input lost or too big; cancelled; group removed
    QUEUED           -> RUNNING         resources freed (``_dispatch_queued``)
    QUEUED           -> AHEAD           prefetched to the host (``worker_prefetch``)
    QUEUED           -> DONE            cancelled; group removed
    AHEAD            -> RUNNING         its worker finished the task before and started it
    AHEAD            -> QUEUED          handed back (``Unassigned``)
    AHEAD            -> AHEAD_CANCELLED cancelled or group removed while at the host
    AHEAD            -> DONE            its worker died before starting it
    AHEAD_CANCELLED  -> RUNNING         too late to take back: it started
    AHEAD_CANCELLED  -> DONE            handed back, or its worker died
    RUNNING          -> BLOCKED         its worker waits (``WorkerBlocked``)
    BLOCKED          -> RUNNING         ``WorkerUnblocked``
    RUNNING|BLOCKED  -> DONE            finished, interrupted, group removed, actor gone
    ACTOR_EARLY      -> ACTOR_FETCHING|ACTOR_QUEUED   the caller's earlier call arrived
    ACTOR_FETCHING   -> ACTOR_QUEUED    its last input arrived
    ACTOR_QUEUED     -> ACTOR_RUNNING   first in its actor's queue, a slot free
    ACTOR_*          -> DONE            finished, input lost, cancelled, actor gone
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from runtime.core import checkpoints
from runtime.core.bundles import RayletBundles
from runtime.core.component import Component
from runtime.core.config import CoreConfig
from runtime.core.ids import Address, NodeId, ObjectId, TaskId, generator_item_id, object_id
from runtime.core.invariants import InvariantError
from runtime.core.messages import (
    INTERRUPT_CANCELLED,
    INTERRUPT_KILLED,
    INTERRUPT_UNSTARTED,
    ActorDied,
    ActorStarted,
    ActorWorkerDied,
    CancelRunning,
    CancelTask,
    CheckpointSaved,
    Command,
    CommitBundles,
    Dispatch,
    EvictObjects,
    Free,
    GeneratorItem,
    GeneratorYielded,
    Heartbeat,
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
    TasksHeld,
    TaskStarted,
    TimerFired,
    Trace,
    Transfer,
    TransferDone,
    TransferFailed,
    Unassigned,
    WorkerBlocked,
    WorkerInterrupted,
    WorkerUnblocked,
)
from runtime.core.object_store import SPILLED, ObjectStore, StoredObject
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
    ACTOR_METHOD,
    ERR_ACTOR_DIED,
    ERR_APPLICATION,
    ERR_CANCELLED,
    ERR_OBJECT_LOST,
    ERR_STORE_FULL,
    ERR_WORKER_DIED,
    TASK,
    ActorError,
    ResultInfo,
    TaskSpec,
    not_started,
)

REPORT_TIMER: Final = "report"
HEARTBEAT_TIMER: Final = "heartbeat"

FETCHING: Final = "fetching"
QUEUED: Final = "queued"
AHEAD: Final = "ahead"
AHEAD_CANCELLED: Final = "ahead_cancelled"
RUNNING: Final = "running"
BLOCKED: Final = "blocked"
ACTOR_EARLY: Final = "actor_early"
ACTOR_FETCHING: Final = "actor_fetching"
ACTOR_QUEUED: Final = "actor_queued"
ACTOR_RUNNING: Final = "actor_running"
DONE: Final = "done"

STATES = (
    FETCHING, QUEUED, AHEAD, AHEAD_CANCELLED, RUNNING, BLOCKED,
    ACTOR_EARLY, ACTOR_FETCHING, ACTOR_QUEUED, ACTOR_RUNNING, DONE,
)  # fmt: skip
"""The lifecycle states of a task held by a raylet (see the table at the top)."""

ENTRY_STATES = frozenset({FETCHING, QUEUED, RUNNING, ACTOR_EARLY, ACTOR_FETCHING, ACTOR_QUEUED})
"""The states a task may enter from outside (not held here before)."""

TRANSITIONS: dict[str, frozenset[str]] = {
    FETCHING: frozenset({QUEUED, RUNNING, DONE}),
    QUEUED: frozenset({RUNNING, AHEAD, DONE}),
    AHEAD: frozenset({RUNNING, QUEUED, AHEAD_CANCELLED, DONE}),
    AHEAD_CANCELLED: frozenset({RUNNING, DONE}),
    RUNNING: frozenset({BLOCKED, DONE}),
    BLOCKED: frozenset({RUNNING, DONE}),
    ACTOR_EARLY: frozenset({ACTOR_FETCHING, ACTOR_QUEUED, DONE}),
    ACTOR_FETCHING: frozenset({ACTOR_QUEUED, DONE}),
    ACTOR_QUEUED: frozenset({ACTOR_RUNNING, DONE}),
    ACTOR_RUNNING: frozenset({DONE}),
    DONE: frozenset(),
}
"""Legal moves between states of a held task (entering is ``ENTRY_STATES``)."""

HELD_IN: dict[str, frozenset[str]] = {
    FETCHING: frozenset({"waiting"}),
    QUEUED: frozenset({"queues"}),
    AHEAD: frozenset({"ahead"}),
    AHEAD_CANCELLED: frozenset({"ahead", "ahead_cancelled"}),
    RUNNING: frozenset({"running"}),
    BLOCKED: frozenset({"running", "blocked"}),
    ACTOR_EARLY: frozenset({"actor.early"}),
    ACTOR_FETCHING: frozenset({"actor.queue", "waiting"}),
    ACTOR_QUEUED: frozenset({"actor.queue"}),
    ACTOR_RUNNING: frozenset({"actor.inflight", "running"}),
}
"""The containers a task in each state is in, and in none other (``check()``)."""

WAIT_CAUSES: Final = ("arguments", "global_scheduler", "transfers", "resources", "actor_queue")
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


class WaitTotals:
    """Seconds tasks waited at one raylet, summed per cause (``WAIT_CAUSES``, in order).

    Fields, not a dict keyed by the cause's name: adding to one costs no string lookup
    and no boxed float (compiled), on a path every task takes.
    """

    __slots__ = ("arguments", "global_scheduler", "transfers", "resources", "actor_queue")

    def __init__(self) -> None:
        """All causes at zero."""
        self.arguments = 0.0
        self.global_scheduler = 0.0
        self.transfers = 0.0
        self.resources = 0.0
        self.actor_queue = 0.0

    def as_dict(self) -> dict[str, float]:
        """``{cause: seconds}`` in ``WAIT_CAUSES`` order."""
        return {cause: getattr(self, cause) for cause in WAIT_CAUSES}


@dataclass(frozen=True, slots=True)
class RunningTask:
    """Public, immutable view of a body running on a node (``Raylet.running_tasks``)."""

    task_id: TaskId
    kind: int
    """TASK, ACTOR_CREATION or ACTOR_METHOD."""
    actor_id: int
    started_at: float


@dataclass(frozen=True, slots=True)
class StoreUsage:
    """Public snapshot of a node's store accounting (``Raylet.store_usage``), in bytes."""

    capacity: int
    used: int
    """In memory (spilled objects excluded)."""
    pinned: int
    """In memory and pinned by tasks (neither evictable nor spillable)."""
    spilled_bytes: int
    """On disk only."""


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
    since_checkpoint: int = 0
    """Checkpointed actors (``spec.checkpoint``): calls finished since the last save."""
    covered: dict[Address, int] = field(default_factory=dict)
    """Checkpointed actors: per caller, the last call finished here."""
    saving: bool = False
    """Checkpointed actors: a save is under way (no call is dispatched meanwhile)."""


class Raylet(Component):
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
        self.policy = policy or make_policy(self.config)
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
        self.held: dict[TaskId, TaskSpec] = {}
        """Every task this raylet holds, in any state but DONE (``spec.rstate``)."""
        self._checking = self.config.check_transitions
        """Assert each transition against ``TRANSITIONS`` (``CoreConfig.check_transitions``)."""
        self.waited = WaitTotals()
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
        self.pg = RayletBundles(self)
        """Placement-group bundles on this node (prepare, commit, return; strategy admission)."""
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
            PrepareBundles: self.pg._on_prepare_bundles,
            CommitBundles: self.pg._on_commit_bundles,
            ReturnBundles: self.pg._on_return_bundles,
            GeneratorYielded: self._on_generator_yielded,
            WorkerInterrupted: self._on_worker_interrupted,
            CheckpointSaved: self._on_checkpoint_saved,
        }
        self._cancel_in: dict[str, Callable[[TaskSpec, CancelTask, float, list[Any]], None]] = {
            AHEAD: self._cancel_ahead,
            AHEAD_CANCELLED: self._cancel_ahead,
            RUNNING: self._cancel_running,
            BLOCKED: self._cancel_running,
            ACTOR_RUNNING: self._cancel_running,
            FETCHING: self._cancel_fetching,
            ACTOR_FETCHING: self._cancel_fetching,
            QUEUED: self._cancel_queued,
            ACTOR_QUEUED: self._cancel_call,
        }
        """How a cancellation acts on a held task, by its state (ACTOR_EARLY: not at all)."""

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
        if self.config.heartbeat_period_s:
            self._heartbeat(out)

    def handle(self, msg: Message | HostEvent, now: float, out: list[Command]) -> None:
        """React to one message or host event, appending commands to ``out``.

        The two messages of every task are called directly (compiled: a native call, no
        boxed ``now``); the table has them too, and serves every other message.
        """
        cls = type(msg)
        if cls is SubmitTask:
            self._on_submit(msg, now, out)  # type: ignore[arg-type]  # (checked: cls)
        elif cls is TaskFinished:
            self._on_task_finished(msg, now, out)  # type: ignore[arg-type]
        else:
            self._handlers[cls](msg, now, out)

    # -- placement ----------------------------------------------------------------------

    def _on_submit(self, msg: SubmitTask, now: float, out: list[Any]) -> None:
        spec = msg.spec
        self.waited.arguments += now - spec.since
        spec.since = now
        if spec.strategy is not None and self.pg._submit_with_strategy(spec, now, out):
            return
        key = spec.shape
        if key is None:
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
        deps = spec.deps
        if deps:
            store = self.store
            for dep in deps:
                if dep.oid in store:
                    local_bytes += dep.size
                else:
                    remote_bytes += dep.size
        state.local_dep_bytes = local_bytes
        state.remote_dep_bytes = remote_bytes
        fits_now = state.fits_now = (
            remote_bytes == 0 and not self.queues.get(key) and fits(spec.resources, self.available)
        )
        reason = self.policy.run_locally(state, spec)
        if reason is None and not self.peers:
            reason = "local: no other node to spill to"
        if reason is None:
            self._spill(spec, "spill: policy " + self.policy.name, out)
            return
        spec.reason = reason
        self._admit(spec, now, out, fits_now and not self.instances)

    def _on_scheduled(self, msg: ScheduleTask, now: float, out: list[Any]) -> None:
        spec = msg.spec
        self.waited.global_scheduler += now - spec.since
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

    def _admit(self, spec: TaskSpec, now: float, out: list[Any], starts_now: bool = False) -> None:
        """Take responsibility for ``spec`` on this node: pull its inputs, then queue it.

        ``starts_now``: the caller checked that it would start at once if it has no stored
        arguments (nothing queued for its shape, resources free, no instance ids to pick).
        """
        spec.node = self.node
        self.held[spec.task_id] = spec
        spec.rstate = ""  # entering: any earlier state was another stay's
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
                self._move(spec, FETCHING)
                if spilled:
                    self._restore_args(spec, spilled, now, out)
                return
        elif starts_now:
            self._dispatch(spec, now, out)  # what `_enqueue` would do (hot path)
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
            self._fail_waiters([spec.task_id], reason, now, out)
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
                    self._fail_waiters(waiters, reason, now, out, ERR_OBJECT_LOST)
                else:  # in memory again (restored for another reason)
                    self._object_local(oid, now, out)
                continue
            if store.pinned + sum(self.restoring.values()) + entry.size > store.capacity:
                return  # waits until a task ends or an object is freed
            queue.popleft()
            self.restoring[oid] = entry.size
            out.append(Restore(self.node, oid, entry.size))

    def _enqueue(self, spec: TaskSpec, now: float, out: list[Any]) -> None:
        key = spec.shape
        if key is None:
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
        self._move(spec, QUEUED)
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
                self._move(spec, AHEAD)
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
            self._leave(spec)
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
        self._move(spec, QUEUED)
        self.queued += 1
        spec.since = now
        self._dispatch_queued(now, out)

    def _dispatch(self, spec: TaskSpec, now: float, out: list[Any]) -> None:
        acquire(self.available, spec.resources)
        self.running[spec.task_id] = spec
        if self._checking:
            self._move(spec, RUNNING)
        else:
            spec.rstate = RUNNING  # what `_move` does outside check mode (hot path)
        self.dispatched += 1
        spec.started_at = now
        out.append(Dispatch(self.node, spec))
        if spec.speculation is not None:  # opted into speculative execution: time it
            out.append(Send(spec.owner, TaskStarted(spec.task_id, self.node), 64))

    def _dispatch_queued(self, now: float, out: list[Any]) -> None:
        """Start queued tasks, per resource shape in FIFO order, while resources last."""
        available, waited = self.available, self.waited
        for queue in self.queues.values():
            while queue and fits(queue[0].resources, available):
                if self.instances and not self._take_instances(queue[0]):
                    break  # the total fits but no instance has room (fractions)
                self.queued -= 1
                spec = queue.popleft()
                waited.resources += now - spec.since
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
            self._leave(spec)
            self._report_done(spec, msg, now, out)
            return
        self._leave(spec)
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
            self._move(nxt, RUNNING)
            self.dispatched += 1
            nxt.started_at = now
            if nxt.speculation is not None:  # opted into speculative execution: time it
                out.append(Send(nxt.owner, TaskStarted(nxt.task_id, self.node), 64))
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
            self._fail_waiters(
                waiters, f"object store of node {self.node} is full: {exc}", now, out
            )
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
                self.waited.transfers += now - spec.since
                spec.since = now
                if spec.kind == ACTOR_METHOD:  # it holds its place in the actor's queue
                    self._move(spec, ACTOR_QUEUED)
                    actor = self.actors.get(spec.actor_id)
                    if actor is not None:
                        self._run_next_call(actor, now, out)
                    continue
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
        self._fail_waiters(waiters, reason, now, out, ERR_OBJECT_LOST)

    def _pull_size(self, oid: ObjectId, waiters: list[TaskId]) -> int:
        for task_id in waiters:
            entry = self.waiting.get(task_id)
            if entry is not None:
                for dep in entry[0].deps:
                    if dep.oid == oid:
                        return dep.size
        return 0

    def _fail_waiters(
        self,
        waiters: list[TaskId],
        reason: str,
        now: float,
        out: list[Any],
        kind: str = ERR_STORE_FULL,
    ) -> None:
        for task_id in waiters:
            entry = self.waiting.pop(task_id, None)
            if entry is None:
                continue
            spec = entry[0]
            for dep in spec.deps:
                if dep.oid not in entry[1]:
                    self.store.unpin(dep.oid)
            self._leave(spec)
            out.append(Send(spec.owner, TaskDone(task_id, self.node, [], kind, reason)))
            if spec.kind == ACTOR_METHOD:
                self._drop_queued_call(spec, now, out)

    def _forget(self, evicted: list[ObjectId], out: list[Any]) -> None:
        for oid in evicted:
            out.append(Free(self.node, oid))
            out.append(Send(self.gcs_addr, ObjectRemoved(oid, self.node), 64))

    def _on_worker_blocked(self, msg: WorkerBlocked, now: float, out: list[Any]) -> None:
        spec = self.running.get(msg.task_id)
        if spec is None or spec.kind != TASK or msg.task_id in self.blocked:
            return
        self.blocked.add(msg.task_id)
        self._move(spec, BLOCKED)
        release(self.available, self._lendable(spec))
        if self.queued:
            self._dispatch_queued(now, out)

    def _on_worker_unblocked(self, msg: WorkerUnblocked, now: float, out: list[Any]) -> None:
        if msg.task_id not in self.blocked:
            return
        self.blocked.discard(msg.task_id)
        spec = self.running.get(msg.task_id)
        if spec is not None:
            self._move(spec, RUNNING)
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
        self._fail_waiters(
            waiters, f"cannot restore spilled object {msg.oid:x}: {msg.error}", now, out
        )
        if self.room_queue:
            self._restore_more(now, out)  # their other arguments are unpinned

    def _on_pin(self, msg: PinObject, now: float, out: list[Any]) -> None:
        evicted = self.store.add(msg.oid, msg.size, primary=True, force=True)
        self._forget(evicted, out)
        out.append(Send(self.gcs_addr, ObjectAdded(msg.oid, self.node, msg.size, msg.owner), 96))

    def _on_timer(self, msg: TimerFired, now: float, out: list[Any]) -> None:
        if msg.key == HEARTBEAT_TIMER:
            self._heartbeat(out)
            return
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

    def _heartbeat(self, out: list[Any]) -> None:
        """Tell the GCS this node is alive; again in ``heartbeat_period_s``."""
        out.append(Send(self.gcs_addr, Heartbeat(self.node), 32))
        out.append(SetTimer(self.addr, self.config.heartbeat_period_s, HEARTBEAT_TIMER))

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
            for dep in spec.deps:  # its constructor's arguments, pinned since admission
                self.store.unpin(dep.oid)
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
                killed = msg.error_kind == ERR_APPLICATION
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
        if spec.deps:
            for dep in spec.deps:
                self.store.unpin(dep.oid)
        self._report_done(spec, msg, now, out)
        if actor is not None:
            if actor.spec.checkpoint is not None:
                checkpoints.call_finished(self, actor, spec, out)
            self._run_next_call(actor, now, out)
        if spec.deps and self.room_queue:
            self._restore_more(now, out)

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
        self.waited.arguments += now - spec.since
        spec.since = now
        actor = self.actors.get(spec.actor_id)
        if actor is None:
            error = not_started(f"actor {spec.actor_id:x} is not alive on node {self.node}")
            out.append(
                Send(spec.owner, TaskDone(spec.task_id, self.node, [], ERR_ACTOR_DIED, error))
            )
            return
        self.held[spec.task_id] = spec
        spec.rstate = ""  # entering
        caller = spec.owner
        expected = actor.next_seq.get(caller, msg.first_unfinished)
        if spec.seq != expected:
            actor.early[(caller, spec.seq)] = spec
            self._move(spec, ACTOR_EARLY)
            actor.next_seq.setdefault(caller, expected)
            return
        while True:
            spec.node = self.node
            actor.queue.append(spec)
            if not spec.deps or not self._pull_call_args(spec, now, out):
                self._move(spec, ACTOR_QUEUED)
            expected += 1
            nxt = actor.early.pop((caller, expected), None) if actor.early else None
            if nxt is None:
                break
            spec = nxt
        actor.next_seq[caller] = expected
        self._run_next_call(actor, now, out)

    def _pull_call_args(self, spec: TaskSpec, now: float, out: list[Any]) -> bool:
        """Pin an actor call's local arguments and pull (or restore) the others, as for a
        task (`_admit`); it keeps its place in the actor's queue meanwhile (Ray's order).
        True: some are missing (it is ACTOR_FETCHING, or already failed)."""
        store = self.store
        missing: set[ObjectId] = set()
        spilled: list[ObjectId] = []
        for dep in spec.deps:
            if store.in_memory(dep.oid):
                store.pin(dep.oid)
            elif dep.oid in store:
                missing.add(dep.oid)
                spilled.append(dep.oid)
            else:
                missing.add(dep.oid)
                self._pull(dep.oid, dep.size, dep.locations, spec.task_id, out)
        if not missing:
            return False
        self.waiting[spec.task_id] = (spec, missing)
        self._move(spec, ACTOR_FETCHING)
        if spilled:
            self._restore_args(spec, spilled, now, out)
        return True

    def _drop_queued_call(self, spec: TaskSpec, now: float, out: list[Any]) -> None:
        """An actor call waiting for its arguments ended (failed, cancelled): the calls
        behind it may run."""
        actor = self.actors.get(spec.actor_id)
        if actor is None:
            return
        try:
            actor.queue.remove(spec)
        except ValueError:
            return
        self._run_next_call(actor, now, out)

    def _run_next_call(self, actor: LocalActor, now: float, out: list[Any]) -> None:
        queue, inflight = actor.queue, actor.inflight
        depth = actor.depth if actor.spec.checkpoint is None else checkpoints.dispatch_room(actor)
        waiting = self.waiting
        while queue and len(inflight) < depth:
            if waiting and queue[0].task_id in waiting:
                return  # its arguments are still coming: the calls behind it wait (order)
            spec = queue.popleft()
            self.waited.actor_queue += now - spec.since
            inflight.append(spec)
            self.running[spec.task_id] = spec
            self._move(spec, ACTOR_RUNNING)
            self.dispatched += 1
            spec.started_at = now
            out.append(Dispatch(self.node, spec))

    def _on_checkpoint_saved(self, msg: CheckpointSaved, now: float, out: list[Any]) -> None:
        checkpoints.on_checkpoint_saved(self, msg, now, out)

    def resume_actor(self, actor: LocalActor, now: float, out: list[Any]) -> None:
        """Dispatch the actor's next calls (after a checkpoint was saved)."""
        self._run_next_call(actor, now, out)

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
            self._leave(creation)
            release(self.available, creation.resources)
            self._give_instances(creation)
            for dep in creation.deps:
                self.store.unpin(dep.oid)
        else:
            release(self.available, actor.hold)
            self._give_instances(actor.spec, actor.hold)
            for spec in actor.inflight + actor.queue:  # dispatched or fetching: pinned
                self._unpin_call(spec)
            calls = (
                list(actor.inflight)
                + list(actor.queue)
                + [actor.early[k] for k in sorted(actor.early)]
            )
            started = {id(spec) for spec in actor.inflight}
            for spec in calls:
                self.running.pop(spec.task_id, None)
                self._leave(spec)
                error = f"{reason} (actor {actor_id:x} on node {self.node})"
                error = error if id(spec) in started else not_started(error)
                done = TaskDone(spec.task_id, self.node, [], ERR_ACTOR_DIED, error)
                out.append(Send(spec.owner, done))
        out.append(Send(self.gcs_addr, ActorDied(actor_id, self.node, reason, killed)))
        if self.room_queue:
            self._restore_more(now, out)
        if self.queued:
            self._dispatch_queued(now, out)

    def _unpin_call(self, spec: TaskSpec) -> None:
        """Unpin what an ending actor call pinned: its local arguments (all of them once it
        was dispatched; those pulled so far while it waits)."""
        if not spec.deps:
            return
        entry = self.waiting.pop(spec.task_id, None)
        missing = entry[1] if entry is not None else ()
        for dep in spec.deps:
            if dep.oid not in missing:
                self.store.unpin(dep.oid)

    # -- cancellation -------------------------------------------------------------------

    def _on_cancel(self, msg: CancelTask, now: float, out: list[Any]) -> None:
        """Drop a queued or waiting task, or interrupt a running one (its owner already failed it)."""
        spec = self.held.get(msg.task_id)
        if msg.exact and msg.node != self.node:
            spec = None  # meant for the copy on another node, not the one here
        cancel = self._cancel_in.get(spec.rstate) if spec is not None else None
        if spec is not None and cancel is not None:
            cancel(spec, msg, now, out)
        elif msg.node >= 0 and msg.node != self.node:
            out.append(Send(self.gs_addr, msg, 64))  # it went elsewhere: forward

    def _cancel_ahead(self, spec: TaskSpec, msg: CancelTask, now: float, out: list[Any]) -> None:
        """Handed to the host, not started: it takes it back (a late report is ignored)."""
        self._ahead_cancelled.add(spec.task_id)
        if spec.rstate == AHEAD:
            self._move(spec, AHEAD_CANCELLED)
        out.append(CancelRunning(self.node, spec.task_id, msg.force))  # it may have started

    def _cancel_running(self, spec: TaskSpec, msg: CancelTask, now: float, out: list[Any]) -> None:
        """Interrupt the body (kill its worker with ``force``, never an actor's)."""
        out.append(CancelRunning(self.node, spec.task_id, msg.force and spec.kind == TASK))

    def _cancel_fetching(self, spec: TaskSpec, msg: CancelTask, now: float, out: list[Any]) -> None:
        _, missing = self.waiting.pop(spec.task_id)
        for dep in spec.deps:
            if dep.oid not in missing:
                self.store.unpin(dep.oid)
        self._leave(spec)
        if spec.kind == ACTOR_METHOD:
            self._drop_queued_call(spec, now, out)
        if self.room_queue:
            self._restore_more(now, out)

    def _cancel_queued(self, spec: TaskSpec, msg: CancelTask, now: float, out: list[Any]) -> None:
        self.queues[self._shape(spec)].remove(spec)
        self.queued -= 1
        for dep in spec.deps:
            self.store.unpin(dep.oid)
        self._leave(spec)
        if self.room_queue:
            self._restore_more(now, out)

    def _cancel_call(self, spec: TaskSpec, msg: CancelTask, now: float, out: list[Any]) -> None:
        self.actors[spec.actor_id].queue.remove(spec)
        self._unpin_call(spec)
        self._leave(spec)

    # -- lifecycle bookkeeping ----------------------------------------------------------

    def _move(self, spec: TaskSpec, state: str) -> None:
        """Put ``spec`` in ``state`` (its containers are the caller's job); in check mode,
        first assert the move is in ``TRANSITIONS`` ("": it is entering)."""
        if self._checking:
            allowed = ENTRY_STATES if spec.rstate == "" else TRANSITIONS[spec.rstate]
            if state not in allowed:
                raise InvariantError(
                    f"raylet {self.node}: task {spec.task_id:x} cannot go from "
                    f"{spec.rstate or '(entering)'} to {state}"
                )
        spec.rstate = state

    def _leave(self, spec: TaskSpec) -> None:
        """``spec`` is no longer held here (DONE)."""
        if self._checking:
            self._move(spec, DONE)
        else:
            spec.rstate = DONE  # what `_move` does outside check mode (hot path)
        self.held.pop(spec.task_id, None)

    def check(self) -> None:
        """Verify the invariants; raise ``InvariantError`` naming the first one broken.

        Every held task is in exactly the containers its state names (``HELD_IN``), once
        each; available resources = total - what running tasks, actors and bundles hold;
        the store's byte counts match its entries, and each object's pins match the held
        tasks whose inputs it is. Costly (walks everything): for tests and debug runs.
        """
        places: dict[TaskId, list[str]] = {}
        specs: dict[TaskId, TaskSpec] = {}

        def put(spec: TaskSpec, place: str) -> None:
            places.setdefault(spec.task_id, []).append(place)
            specs[spec.task_id] = spec

        for queue in self.queues.values():
            for spec in queue:
                put(spec, "queues")
        for spec, _ in self.waiting.values():
            put(spec, "waiting")
        for spec in self.running.values():
            put(spec, "running")
        for spec in self.ahead.values():
            put(spec, "ahead")
        for tid in self._ahead_cancelled:
            if tid in self.ahead:
                put(self.ahead[tid], "ahead_cancelled")
        for tid in self.blocked:
            if tid in self.running:
                put(self.running[tid], "blocked")
        for actor in self.actors.values():
            for spec in actor.queue:
                put(spec, "actor.queue")
            for spec in actor.inflight:
                put(spec, "actor.inflight")
            for spec in actor.early.values():
                put(spec, "actor.early")
        fail = self._invariant
        if set(places) != set(self.held):
            extra = sorted(set(places) - set(self.held))
            lost = sorted(set(self.held) - set(places))
            fail(f"held tasks and containers differ: unheld {extra}, nowhere {lost}")
        for tid, where in places.items():
            spec = specs[tid]
            if self.held[tid] is not spec:
                fail(f"task {tid:x}: its held spec is not the one in {where}")
            expected = HELD_IN.get(spec.rstate)
            if expected is None or sorted(where) != sorted(expected):
                fail(f"task {tid:x} in state {spec.rstate!r} is in {sorted(where)}")
        if self.queued != sum(len(q) for q in self.queues.values()):
            fail(f"queued counter {self.queued} != tasks in queues")
        if not self._ahead_cancelled <= set(self.ahead):
            fail("a cancelled prefetched task is not prefetched")
        if not self.blocked <= set(self.running):
            fail("a blocked task is not running")
        self._check_resources()
        self._check_store()

    def _invariant(self, what: str) -> None:
        raise InvariantError(f"raylet {self.node}: {what}")

    def _check_resources(self) -> None:
        reserved: Resources = {}
        for tid, spec in self.running.items():
            if spec.kind == ACTOR_METHOD:
                continue  # its actor holds the resources
            release(reserved, self._instance_part(spec) if tid in self.blocked else spec.resources)
        for actor in self.actors.values():
            release(reserved, actor.hold)
        for local in self.pg.bundles.values():
            for items in local.prepared.values():
                for _, bundle in items:
                    release(reserved, bundle)
            for bundle in local.committed.values():
                release(reserved, bundle)
        for name in set(self.total) | set(self.available) | set(reserved):
            total = self.total.get(name, 0.0)
            expected = total - reserved.get(name, 0.0)
            got = self.available.get(name, 0.0)
            if abs(got - expected) > 1e-6 * max(1.0, abs(total)):
                self._invariant(
                    f"available {name} is {got:g}, but total {total:g} - reserved "
                    f"{reserved.get(name, 0.0):g} = {expected:g}"
                )
        for name, free in self.instances.items():
            if any(f < -1e-9 or f > 1.0 + 1e-9 for f in free):
                self._invariant(f"an instance of {name} has free capacity outside [0, 1]: {free}")

    def _check_store(self) -> None:
        store = self.store
        used = spilled = pinned = 0
        for entry in store.objects.values():
            if entry.where == SPILLED:
                spilled += entry.size
            else:
                used += entry.size
            if entry.pins:
                pinned += entry.size
        if (used, spilled, pinned) != (store.used, store.spilled_bytes, store.pinned):
            self._invariant(
                f"store counts used/spilled/pinned {store.used}/{store.spilled_bytes}/"
                f"{store.pinned} != its entries' {used}/{spilled}/{pinned}"
            )
        holders: dict[ObjectId, int] = {}
        for spec in self.held.values():
            if not spec.deps or spec.rstate == ACTOR_EARLY:
                continue
            fetching = self.waiting.get(spec.task_id)
            missing = fetching[1] if fetching is not None else ()
            for dep in spec.deps:
                if dep.oid not in missing:
                    holders[dep.oid] = holders.get(dep.oid, 0) + 1
        for oid, entry in store.objects.items():
            if entry.pins != holders.get(oid, 0):
                self._invariant(
                    f"object {oid:x} has {entry.pins} pin(s), {holders.get(oid, 0)} held "
                    "task(s) use it"
                )

    def tasks_held(self) -> dict[Address, TasksHeld]:
        """What this raylet holds of each owner, as the ``TasksHeld`` it sends that owner
        when its node rejoins a restarted head: every task and actor call held here, and
        per owner the next call sequence number each local actor will accept from it."""
        held: dict[Address, TasksHeld] = {}
        for spec in self.held.values():
            msg = held.get(spec.owner)
            if msg is None:
                msg = held[spec.owner] = TasksHeld(self.node, [], {})
            msg.tasks.append((spec.task_id, spec.attempt, spec.seq))
        for actor_id, actor in self.actors.items():
            for caller, seq in actor.next_seq.items():
                msg = held.get(caller)
                if msg is None:
                    msg = held[caller] = TasksHeld(self.node, [], {})
                msg.next_seqs[actor_id] = seq
        return held

    def task_state(self, task_id: TaskId) -> str | None:
        """The lifecycle state of ``task_id`` here (``STATES``), or None if not held."""
        spec = self.held.get(task_id)
        return spec.rstate if spec is not None else None

    # -- introspection ------------------------------------------------------------------

    def explain(self, task_id: TaskId) -> str:
        """Say why a task is where it is on this node: running, queued, or waiting for inputs."""
        spec = self.held.get(task_id)
        if spec is None:
            return f"not known to node {self.node}"
        state = spec.rstate
        if state in (RUNNING, BLOCKED, ACTOR_RUNNING):
            given = "".join(
                f", {name} {','.join(map(str, ids))}"
                for name, ids in (spec.instances or {}).items()
            )
            return f"running on node {self.node}{given} ({spec.reason})"
        if state in (FETCHING, ACTOR_FETCHING):
            missing = ", ".join(f"{oid:x}" for oid in sorted(self.waiting[task_id][1]))
            return f"waiting on node {self.node} for inputs to arrive: {missing}"
        if state == QUEUED:
            position = self.queues[self._shape(spec)].index(spec)
            return (
                f"queued on node {self.node} ({spec.reason}): needs "
                f"{describe(spec.resources)}, available {describe(self.available)}, "
                f"{position} task(s) ahead"
            )
        if state in (AHEAD, AHEAD_CANCELLED):
            return f"handed ahead to a busy worker on node {self.node} ({spec.reason})"
        if state == ACTOR_QUEUED:
            position = self.actors[spec.actor_id].queue.index(spec)
            return (
                f"queued at actor {spec.actor_id:x} on node {self.node}, {position} call(s) ahead"
            )
        return (
            f"at actor {spec.actor_id:x} on node {self.node}, before an earlier call of its caller"
        )

    # -- interruptions ------------------------------------------------------------------

    def _on_worker_interrupted(self, msg: WorkerInterrupted, now: float, out: list[Any]) -> None:
        """The one rule for a body the host stopped: how it ends depends on ``msg.cause``."""
        tid = msg.task_id
        if msg.cause == INTERRUPT_KILLED:
            if msg.actor_id:
                self._on_actor_worker_died(ActorWorkerDied(msg.actor_id, msg.reason), now, out)
                return
            finished = TaskFinished(tid, [], ERR_WORKER_DIED, msg.reason)
        elif msg.cause == INTERRUPT_CANCELLED:
            finished = TaskFinished(tid, [], ERR_APPLICATION, "KeyboardInterrupt")
        elif msg.cause == INTERRUPT_UNSTARTED:
            finished = TaskFinished(tid, [], ERR_CANCELLED, "cancelled before it started")
        else:
            raise ValueError(f"WorkerInterrupted: unknown cause {msg.cause!r}")
        self._on_task_finished(finished, now, out)

    # -- public queries (what hosts may read; see PUBLIC) -------------------------------

    def running_tasks(self) -> tuple[RunningTask, ...]:
        """The bodies running on this node, oldest dispatch first."""
        return tuple(
            RunningTask(tid, spec.kind, spec.actor_id, spec.started_at)
            for tid, spec in self.running.items()
        )

    def victim(self, exclude: Collection[TaskId] = ()) -> RunningTask | None:
        """The body a worker-kill fault hits: the oldest running one not in ``exclude``."""
        for tid, spec in self.running.items():
            if tid not in exclude:
                return RunningTask(tid, spec.kind, spec.actor_id, spec.started_at)
        return None

    def is_blocked(self, task_id: TaskId) -> bool:
        """Whether the worker running ``task_id`` waits (nested get): its resources are lent."""
        return task_id in self.blocked

    def actor_spec(self, actor_id: int) -> TaskSpec | None:
        """The creation spec of ``actor_id`` if it lives on this node (read only), else None."""
        actor = self.actors.get(actor_id)
        return actor.spec if actor is not None else None

    def actor_hold(self, actor_id: int) -> Resources | None:
        """What ``actor_id`` holds for its lifetime on this node (a copy), else None."""
        actor = self.actors.get(actor_id)
        return dict(actor.hold) if actor is not None else None

    def total_resources(self) -> Resources:
        """The node's resources (a copy; committed bundles' names included)."""
        return dict(self.total)

    def available_resources(self) -> Resources:
        """What is free now (a copy; may be briefly negative after an unblock, as in Ray)."""
        return dict(self.available)

    def backlog(self) -> int:
        """Tasks held here that have not started: queued for resources or pulling inputs."""
        return self.queued + len(self.waiting)

    def wait_seconds(self) -> dict[str, float]:
        """Seconds tasks waited here so far, by cause (``WAIT_CAUSES``; a copy)."""
        return self.waited.as_dict()

    def store_usage(self) -> StoreUsage:
        """The store's byte counts now (a snapshot)."""
        store = self.store
        return StoreUsage(store.capacity, store.used, store.pinned, store.spilled_bytes)

    def stored_objects(self) -> Mapping[ObjectId, StoredObject]:
        """The store's accounting, object id -> entry (a read-only view; do not mutate)."""
        return MappingProxyType(self.store.objects)
