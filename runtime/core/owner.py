"""The owner: submits tasks, holds their futures, resolves arguments, retries, and counts references.

Each driver (and later each worker that submits tasks) has one owner. It owns the
objects its tasks return and the values it ``put``: it knows whether each is pending,
ready or failed, where it lives, and how many references to it remain. A task whose
arguments are still pending waits here and is sent to the local raylet once they are
ready; arguments too big to inline are described to the raylet (size and locations) so
it can pull them. When the last reference to a stored object goes, the owner asks the
GCS to drop every copy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NoReturn

from runtime.core import checkpoints, owner_resume
from runtime.core.component import Component
from runtime.core.config import CoreConfig
from runtime.core.ids import (
    Address,
    NodeId,
    ObjectId,
    TaskId,
    TaskIdCounter,
    generator_item_id,
    generator_item_task,
    is_generator_item,
    object_id,
    task_of,
)
from runtime.core.invariants import InvariantError
from runtime.core.messages import (
    ACTOR_ALIVE,
    ACTOR_DEAD,
    ACTOR_PENDING,
    ACTOR_RESTARTING,
    ActorCheckpointed,
    ActorDied,
    ActorLookupReply,
    ActorStateChanged,
    ActorUpdate,
    CancelTask,
    Command,
    CreatePlacementGroup,
    FreeObjects,
    GeneratorItem,
    HostEvent,
    ItemReady,
    KillActor,
    LookupActor,
    Message,
    NodeRemoved,
    ObjectFreed,
    ObjectLost,
    ObjectReady,
    ObjectStatus,
    PinObject,
    PlacementGroupUpdate,
    RegisterActor,
    ReleaseBorrow,
    RemovePlacementGroup,
    Send,
    SetTimer,
    StreamEnded,
    SubmitActorTask,
    SubmitTask,
    Subscribe,
    SubscribeActor,
    SubscribeObject,
    SubscribePlacementGroup,
    TaskDone,
    TaskEvents,
    TasksHeld,
    TasksPlaced,
    TaskStarted,
    TimerFired,
)
from runtime.core.placement import PG_CREATED, PG_REMOVED, apply_strategy
from runtime.core.speculation import SPECULATION_TIMER, SpeculationPolicy, Speculator, eligible
from runtime.core.task import (
    ACTOR_CREATION,
    ACTOR_METHOD,
    ERR_ACTOR_DIED,
    ERR_APPLICATION,
    ERR_CANCELLED,
    ERR_NODE_DIED,
    ERR_OBJECT_LOST,
    ERR_PG_REMOVED,
    GEN_DYNAMIC,
    SYSTEM_ERRORS,
    DepInfo,
    ResultInfo,
    TaskSpec,
    not_started,
)

TASK_EVENTS_TIMER: Final = "task_events"

# ---------------------------------------------------------------------------------------
# Lifecycles (h11 style: the states, then every legal transition and what causes it).
# Hot paths write the state as a plain attribute; `Owner.check` verifies that each
# state matches where the task or object is held.
# ---------------------------------------------------------------------------------------

# What becomes of a task this owner submitted (``TaskSpec.owner_state``).
NEW: Final = "NEW"
"""Built but not submitted yet (``TaskSpec``'s default)."""
WAITING_ARGS: Final = "WAITING_ARGS"
"""In ``pending`` and ``_blocked``: held until its pending arguments are ready (an actor
call is also in its handle's ``unsent``, keeping its place in the caller's order)."""
SUBMITTED: Final = "SUBMITTED"
"""A task (not an actor call) in ``pending``, sent to the local raylet; it reports back
with ``TaskDone`` (or its node dies: ``NodeRemoved``)."""
UNSENT: Final = "UNSENT"
"""An actor call in ``pending`` and its handle's ``unsent``, its arguments ready: waits
for the actor to be ALIVE, or for an earlier call still waiting for arguments."""
INFLIGHT: Final = "INFLIGHT"
"""An actor call in ``pending`` and its handle's ``inflight`` (by sequence number), sent
to the raylet hosting the actor."""
ENDED: Final = "ENDED"
"""Finished or failed: out of ``pending`` (kept only as the lineage of stored objects; an
actor call may linger in ``unsent``, skipped when the calls are flushed)."""

TASK_STATES = frozenset({NEW, WAITING_ARGS, SUBMITTED, UNSENT, INFLIGHT, ENDED})
HELD_TASK_STATES = frozenset({WAITING_ARGS, SUBMITTED, UNSENT, INFLIGHT})
"""The states of the tasks in ``pending``."""

TASK_TRANSITIONS: dict[str, dict[str, str]] = {
    NEW: {
        WAITING_ARGS: "submit: an argument is pending",
        SUBMITTED: "submit: every argument is ready (a task)",
        UNSENT: "submit: every argument is ready (an actor call)",
        ENDED: "submit: an argument failed (the task fails without running)",
    },
    WAITING_ARGS: {
        SUBMITTED: "the last pending argument is ready (a task)",
        UNSENT: "the last pending argument is ready (an actor call)",
        ENDED: "an argument failed, or the task was cancelled",
    },
    SUBMITTED: {
        SUBMITTED: "a retry after a system error or a node death (attempt + 1)",
        WAITING_ARGS: "an input was lost: held until it is recomputed",
        ENDED: "TaskDone, cancel, or a node death with no retry left",
    },
    UNSENT: {
        INFLIGHT: "the actor is ALIVE and every earlier call was sent",
        ENDED: "the actor is dead, or the call was cancelled",
    },
    INFLIGHT: {
        UNSENT: "a retry (max_task_retries): back in order with a new sequence number",
        ENDED: "TaskDone, cancel, or the actor's node died",
    },
    ENDED: {
        WAITING_ARGS: "lineage reconstruction: recompute a lost object, inputs first",
        SUBMITTED: "lineage reconstruction, every input ready",
    },
}
"""Every legal transition of a task's ``owner_state``, with its cause."""

# What the owner knows of one of its objects (``OwnedObject.state``).
PENDING: Final = 0
"""Its task has not reported (or a borrowed object's owner has not answered yet)."""
READY: Final = 1
"""The value exists: inline here (``payload``), or stored on ``node``."""
FAILED: Final = 2
"""Its task failed, or it was lost and cannot be recomputed (``error_kind``, ``error``)."""
FREED: Final = 3
"""The value was freed, but its lineage is kept because a live stored object was computed from it."""

OBJECT_TRANSITIONS: dict[int, dict[int, str]] = {
    PENDING: {READY: "its task finished (or its owner said so)", FAILED: "its task failed"},
    READY: {
        FREED: "no reference left, but a live object's lineage needs it",
        PENDING: "every copy was lost: recomputed from its lineage",
        FAILED: "every copy was lost and it cannot be recomputed",
    },
    FREED: {
        PENDING: "an object computed from it is recomputed",
        FAILED: "an object computed from it is recomputed, and it cannot be",
    },
    FAILED: {},
}
"""Every legal transition of an object's state; an object leaves the table (is freed) from
any state once nothing references it (``_maybe_free``)."""


@dataclass(slots=True)
class OwnedObject:
    """What the owner knows of one of its objects."""

    state: int = PENDING
    size: int = 0
    stored: bool = False
    node: NodeId = -1
    payload: Any = None
    error_kind: str | None = None
    error: Any = None
    refs: int = 1
    """References held by the program (ObjectRef handles)."""
    task_refs: int = 0
    """Pending tasks that take this object as an argument."""
    dependents: list[TaskSpec] | None = None
    """Submitted tasks waiting for this object to become ready."""
    owner: Address = -1
    """-1 for this owner's own objects; the real owner's address for a borrowed one."""
    borrowers: int = 0
    """Other owners that borrowed this object and have not released it."""
    watchers: list[Address] | None = None
    """Borrowers to tell when this pending object resolves."""
    lineage: TaskSpec | None = None
    """The task that computed this stored value, kept to recompute it if every copy is lost."""
    lineage_refs: int = 0
    """Live stored objects whose lineage takes this object as an argument."""
    contained: list[ObjectId] | None = None
    """Objects whose refs are inside this value: each holds one reference from it."""

    def __init__(
        self,
        state: int = PENDING,
        size: int = 0,
        stored: bool = False,
        node: NodeId = -1,
        payload: Any = None,
        error_kind: str | None = None,
        error: Any = None,
        refs: int = 1,
        task_refs: int = 0,
        dependents: list[TaskSpec] | None = None,
        owner: Address = -1,
        borrowers: int = 0,
        watchers: list[Address] | None = None,
        lineage: TaskSpec | None = None,
        lineage_refs: int = 0,
        contained: list[ObjectId] | None = None,
    ) -> None:
        """Written out, not generated: mypyc compiles it (a dataclass's generated
        ``__init__`` stays interpreted Python even in a compiled module)."""
        self.state = state
        self.size = size
        self.stored = stored
        self.node = node
        self.payload = payload
        self.error_kind = error_kind
        self.error = error
        self.refs = refs
        self.task_refs = task_refs
        self.dependents = dependents
        self.owner = owner
        self.borrowers = borrowers
        self.watchers = watchers
        self.lineage = lineage
        self.lineage_refs = lineage_refs
        self.contained = contained


@dataclass(slots=True)
class ActorHandleState:
    """What a caller knows of an actor: where it is, and its calls not yet ended."""

    state: str = ACTOR_PENDING
    node: NodeId = -1
    addr: Address = -1
    error: Any = None
    seq: int = 0
    """The sequence number of the last call submitted."""
    unsent: list[TaskSpec] | None = None
    """Calls not sent yet, in order (waiting for arguments or for the actor to start)."""
    inflight: dict[int, TaskSpec] | None = None
    """Calls sent to the actor and not ended, by sequence number."""
    alias_of: int = 0
    """Set when ``get_if_exists`` resolved this handle to an existing actor with that id."""
    restarts: int = 0
    """The actor's incarnation as last published by the GCS."""
    sent_to: dict[TaskId, int] | None = None
    """Retriable calls in flight: the incarnation each was sent to."""
    log: list[TaskSpec] | None = None
    """Checkpointed actors this owner created: its finished calls that no checkpoint
    includes yet, oldest first (replayed on restart; `runtime.core.checkpoints`)."""
    log_seq: dict[TaskId, TaskId] = field(default_factory=dict)
    """Replays in flight: replay task id -> the logged call it re-runs."""
    replay_seqs: dict[TaskId, int] = field(default_factory=dict)
    """Logged calls replayed since: their replay's sequence number (checkpoints count it)."""


@dataclass(slots=True)
class StreamState:
    """The items of one generator task this owner submitted (see `Owner.drop_stream`)."""

    count: int = 0
    """Items delivered so far (indices ``0 .. count-1``); a re-run skips them."""
    ended: bool = False
    """The task ended: no more items will come."""
    dropped: bool = False
    """The program dropped the generator: items arriving later are freed at once."""
    dynamic: bool = False
    """``num_returns="dynamic"``: items are held by the task's return 1, not by the stream."""
    early: dict[ObjectId, list[ObjectId]] | None = None
    """Refs inside items not arrived yet (the executing side lends them first), per item."""


class Owner(Component):
    """Task submission, futures, dependency resolution, retries and reference counting."""

    def __init__(
        self,
        addr: Address,
        node: NodeId,
        owner_index: int,
        raylet_addr: Address,
        gcs_addr: Address,
        config: CoreConfig | None = None,
    ) -> None:
        self.addr = addr
        self.node = node
        self.raylet_addr = raylet_addr
        self.gcs_addr = gcs_addr
        self.config = config or CoreConfig()
        self.ids = TaskIdCounter(owner_index)
        """Hands out the ids of this owner's tasks, puts and placement groups."""
        self.objects: dict[ObjectId, OwnedObject] = {}
        """Every object this owner owns or borrows and still references (or keeps as lineage)."""
        self._uncontain: list[ObjectId] | None = None
        """Refs held by freed values, still to drop (iteratively: chains can be long)."""
        self._watched: set[ObjectId] = set()
        """Objects whose end the host wants to hear of (`watch_free`)."""
        self.pending: dict[TaskId, TaskSpec] = {}
        """Submitted tasks that have not ended, by id (kept for retries)."""
        self._blocked: dict[TaskId, int] = {}
        """Tasks held back until this many of their arguments are ready."""
        self.retries = 0
        """Task attempts resubmitted after a failure (a counter for metrics)."""
        self.replays = 0
        """Finished actor calls re-run to rebuild a restarted actor's state (a counter)."""
        self.replaying: set[TaskId] = set()
        """Replays of logged actor calls not yet finished (`runtime.core.checkpoints`)."""
        self.actors: dict[int, ActorHandleState] = {}
        """The actors this owner created or calls (an alias id maps to the same handle)."""
        self._aliases: dict[int, int] = {}
        """Actor ids that ``get_if_exists`` resolved to an actor this owner already called."""
        self._handlers: dict[type, Callable[[Any, float, list[Command]], None]] = {
            TaskDone: self._on_task_done,
            ActorUpdate: self._on_actor_update,
            ActorCheckpointed: self._on_actor_checkpointed,
            ActorLookupReply: self._on_lookup_reply,
            SubscribeObject: self._on_subscribe_object,
            ObjectStatus: self._on_object_status,
            ReleaseBorrow: self._on_release_borrow,
            NodeRemoved: self._on_node_removed,
            ObjectLost: self._on_object_lost,
            PlacementGroupUpdate: self._on_pg_update,
            TasksPlaced: self._on_tasks_placed,
        }
        self.pg_states: dict[int, PlacementGroupUpdate] = {}
        """The last state heard of each placement group this owner created or waits for."""
        self._pg_ready: dict[int, list[tuple[ObjectId, Any]]] = {}
        """Per group: the ``ready()`` objects not resolved yet, with their payloads."""
        self.dead_nodes: set[NodeId] = set()
        """Nodes the GCS reported dead: a stored value only there must be recomputed."""
        self.reconstructions = 0
        """Tasks re-run to recompute lost objects from their lineage (a counter for metrics)."""
        self._failed_events: list[tuple[Any, ...]] = []
        """Tasks that ended with an error here, at the owner, since the last flush."""
        self._flush_armed = False
        """A task-events flush timer is set (``_failed_events`` go out when it fires)."""
        self._handlers[TimerFired] = self._on_timer
        self.streams: dict[TaskId, StreamState] = {}
        """Generator tasks whose items are still coming or still held for the program."""
        self._handlers[GeneratorItem] = self._on_generator_item
        self.speculation_default: SpeculationPolicy | None = self.config.speculation
        """The policy of every eligible task submitted without one (None: opt-in per task)."""
        self.speculator: Speculator | None = None
        """Speculative execution's state, made when the first watched task starts."""
        self._handlers[TaskStarted] = self._on_task_started
        self.resume_state: owner_resume.ResumeState | None = None
        """Set while a resumed owner (a connected driver's, after the head restarted) waits
        to hear what the nodes hold (`runtime.core.owner_resume`)."""
        self._handlers[TasksHeld] = self._on_tasks_held

    def start(self, now: float, out: list[Command]) -> None:
        """Subscribe to node deaths (needed only where nodes can die: tasks there are retried)."""
        out.append(Send(self.gcs_addr, Subscribe(self.addr, joins=False), 64))

    def handle(self, msg: Message | HostEvent, now: float, out: list[Command]) -> None:
        """React to one message, appending commands to ``out``.

        A task's report (`TaskDone`) is called directly (compiled: a native call, no boxed
        ``now``); the table has it too, and serves every other message.
        """
        cls = type(msg)
        if cls is TaskDone:
            self._on_task_done(msg, now, out)  # type: ignore[arg-type]  # (checked: cls)
        else:
            self._handlers[cls](msg, now, out)

    # -- invariants (tests and debug runs only: never called on the hot path) ------------

    def check(self) -> None:
        """Verify this owner's invariants; raise ``InvariantError`` naming the first broken one.

        Every held task is in exactly the places its ``owner_state`` says (``pending``,
        ``_blocked``, its actor handle's ``unsent`` or ``inflight``); each object's state is
        a declared one and its reference counts match their holders: ``task_refs`` the
        pending tasks that take it, ``lineage_refs`` the lineage of live objects, ``refs``
        at least the values and streams that contain it; nothing collectable is kept.
        """
        self._check_tasks()
        self._check_actor_handles()
        self._check_objects()
        self._check_streams()

    def _fail(self, what: str) -> NoReturn:
        raise InvariantError(f"owner {self.addr}: {what}")

    def _check_tasks(self) -> None:
        pending, blocked, fail = self.pending, self._blocked, self._fail
        for tid, spec in pending.items():
            state = spec.owner_state
            if spec.task_id != tid:
                fail(f"pending[{tid:x}] holds task {spec.task_id:x}")
            if state not in HELD_TASK_STATES:
                fail(f"pending task {tid:x} is in state {state!r}")
            if (state == WAITING_ARGS) != (tid in blocked):
                fail(f"task {tid:x} is {state} but {'' if tid in blocked else 'not '}blocked")
            if spec.kind != ACTOR_METHOD:
                if state not in (WAITING_ARGS, SUBMITTED):
                    fail(f"task {tid:x} (not an actor call) is in state {state}")
                continue
            handle = self.actors.get(spec.actor_id)
            if handle is None:
                fail(f"actor call {tid:x} is for actor {spec.actor_id:x}, unknown here")
                continue
            unsent = sum(1 for s in handle.unsent or () if s is spec)
            inflight = handle.inflight is not None and handle.inflight.get(spec.seq) is spec
            where = (unsent, inflight)
            if where != ((0, True) if state == INFLIGHT else (1, False)):
                fail(f"actor call {tid:x} is {state} but {unsent}x unsent, inflight={inflight}")
        waits: Counter[int] = Counter()
        for obj in self.objects.values():
            if obj.dependents is not None:
                if obj.state != PENDING:
                    fail(f"an object in state {obj.state} still has dependents")
                waits.update(id(dep) for dep in obj.dependents)
        for tid, count in blocked.items():
            held = pending.get(tid)
            if held is None:
                fail(f"blocked task {tid:x} is not pending")
                continue
            if not 1 <= count <= waits[id(held)]:
                fail(f"task {tid:x} waits for {count} argument(s); {waits[id(held)]} hold it")

    def _check_actor_handles(self) -> None:
        pending, fail = self.pending, self._fail
        handles = {id(h): h for h in self.actors.values()}
        for handle in handles.values():
            for spec in handle.unsent or ():
                held = pending.get(spec.task_id) is spec
                if held and spec.owner_state not in (WAITING_ARGS, UNSENT):
                    fail(f"unsent actor call {spec.task_id:x} is {spec.owner_state}")
                if not held and spec.owner_state != ENDED:
                    fail(f"unsent call {spec.task_id:x} is not pending yet {spec.owner_state}")
            for seq, spec in (handle.inflight or {}).items():
                if pending.get(spec.task_id) is not spec or spec.owner_state != INFLIGHT:
                    fail(f"inflight call {spec.task_id:x} is {spec.owner_state}, not pending")
                if spec.seq != seq:
                    fail(f"inflight call {spec.task_id:x} has seq {spec.seq}, filed at {seq}")

    def _check_objects(self) -> None:
        objects, fail = self.objects, self._fail
        task_refs: Counter[ObjectId] = Counter()
        replaying = self.replaying
        for spec in self.pending.values():
            if spec.task_id not in replaying:  # a replay borrows its logged call's refs
                task_refs.update(spec.arg_refs)
                task_refs.update(spec.held_refs)
        for handle in {id(h): h for h in self.actors.values()}.values():  # aliases share
            for spec in handle.log or ():  # logged calls keep theirs (checkpoints)
                task_refs.update(spec.arg_refs)
                task_refs.update(spec.held_refs)
        lineage_refs: Counter[ObjectId] = Counter()
        contained: Counter[ObjectId] = Counter()
        for obj in objects.values():
            if obj.lineage is not None:
                lineage_refs.update(obj.lineage.arg_refs)
            if obj.contained:
                contained.update(obj.contained)
        for stream in self.streams.values():
            for refs in (stream.early or {}).values():
                contained.update(refs)
        for oid in task_refs.keys() - objects.keys():
            fail(f"pending tasks take object {oid:x}, which is not in the table")
        for oid, obj in objects.items():
            if obj.state not in OBJECT_TRANSITIONS:
                fail(f"object {oid:x} is in undeclared state {obj.state!r}")
            if min(obj.refs, obj.task_refs, obj.borrowers, obj.lineage_refs) < 0:
                fail(f"object {oid:x} has a negative count: {obj}")
            if obj.task_refs != task_refs[oid]:
                fail(f"object {oid:x}: task_refs {obj.task_refs}, {task_refs[oid]} tasks")
            if obj.lineage_refs != lineage_refs[oid]:
                fail(f"object {oid:x}: lineage_refs {obj.lineage_refs}, {lineage_refs[oid]} held")
            if obj.refs < contained[oid]:
                fail(f"object {oid:x}: {obj.refs} refs but {contained[oid]} containers")
            if obj.watchers is not None and obj.state != PENDING:
                fail(f"object {oid:x} in state {obj.state} still has watchers")
            if obj.owner >= 0:
                if obj.borrowers or obj.lineage is not None or obj.contained:
                    fail(f"borrowed object {oid:x} has borrowers, lineage or contents")
                if not (obj.refs or obj.task_refs):
                    fail(f"borrowed object {oid:x} is held by nothing and not released")
                continue
            if obj.state == FREED and (obj.stored or obj.lineage_refs == 0):
                fail(f"freed object {oid:x} is stored or kept for no lineage")
            idle = not (obj.refs or obj.task_refs or obj.borrowers or obj.lineage_refs)
            if idle and obj.state != PENDING:
                fail(f"object {oid:x} is referenced by nothing but still in the table")

    def _check_streams(self) -> None:
        for tid, stream in self.streams.items():
            if not stream.ended and tid not in self.pending:
                self._fail(f"stream {tid:x} is not ended but its task is not pending")
            if stream.ended and (stream.dropped or stream.dynamic):
                self._fail(f"stream {tid:x} ended and dropped (or dynamic) but still kept")

    # -- submission ---------------------------------------------------------------------

    def new_task_id(self) -> TaskId:
        """A fresh id for a task this owner will submit."""
        return self.ids.next()

    def submit(self, spec: TaskSpec, now: float, out: list[Command]) -> tuple[ObjectId, ...]:
        """Submit ``spec`` (its ``task_id`` from ``new_task_id``); return its return object ids.

        Every argument in ``spec.arg_refs`` must be in this owner's table, referenced by
        the caller: one of its own objects, or one it ``borrow``-ed. The task is sent to
        the local raylet once all of them are ready; if one has failed, the task fails with
        the same error without running.
        """
        spec.owner = self.addr
        spec.owner_node = self.node
        spec.submitted_at = now
        if spec.strategy is not None:
            apply_strategy(spec)
        default = self.speculation_default
        if default is not None and spec.speculation is None and eligible(spec) is None:
            spec.speculation = default
        tid = spec.task_id
        objects = self.objects
        returns = spec.return_ids()
        for oid in returns:
            objects[oid] = OwnedObject()
        self.pending[tid] = spec
        if spec.generator:
            self.streams[tid] = StreamState(dynamic=spec.generator == GEN_DYNAMIC)
        if spec.kind == ACTOR_METHOD:
            self._enlist_call(spec)
        self._track_args(spec, now, out)
        return returns

    # -- task events (the GCS task table) -----------------------------------------------

    def _arm_flush(self, out: list[Command]) -> None:
        self._flush_armed = True
        out.append(SetTimer(self.addr, self.config.report_interval, TASK_EVENTS_TIMER))

    def _on_timer(self, msg: TimerFired, now: float, out: list[Command]) -> None:
        if msg.key == SPECULATION_TIMER and self.speculator is not None:
            self.speculator.on_timer(now, out)
            return
        self._flush_armed = False
        self.flush_task_events(now, out)

    def flush_task_events(self, now: float, out: list[Command], pending: bool = False) -> None:
        """Send the GCS the task states decided here; with `pending`, also every pending task.

        Failures decided at the owner (cancelled, a failed dependency, a dead actor) are
        reported as ``FAILED`` by a timer armed when they happen. Pending tasks cost
        nothing until someone asks: a host that wants the table complete (the state API)
        calls this with ``pending=True``, and each task this owner still holds is reported
        ``PENDING_ARGS_AVAIL`` (held for its arguments) or ``PENDING_NODE_ASSIGNMENT`` (an
        actor call: ``SUBMITTED_TO_WORKER``); raylets' records supersede them.
        """
        records, self._failed_events = self._failed_events, []
        if pending:
            blocked = self._blocked
            for tid, spec in self.pending.items():
                if tid in blocked:
                    state = "PENDING_ARGS_AVAIL"
                elif spec.kind == ACTOR_METHOD:
                    state = "SUBMITTED_TO_WORKER"
                else:
                    state = "PENDING_NODE_ASSIGNMENT"
                records.append((tid, state, -1, spec.submitted_at, spec, spec.attempt, None, None))
        if records:
            out.append(Send(self.gcs_addr, TaskEvents(-1, records), 32 * len(records)))

    def _track_args(self, spec: TaskSpec, now: float, out: list[Command]) -> None:
        """Reference the task's arguments; send it, hold it until they are ready, or fail it."""
        spec.since = now
        if not spec.arg_refs and not spec.held_refs:
            self._send(spec, out)  # nothing to reference or wait for (hot path)
            return
        objects = self.objects
        blocked = 0
        failed: OwnedObject | None = None
        for ref in spec.arg_refs:
            obj = objects.get(ref)
            if obj is None:
                raise KeyError(f"argument {ref:x} is neither owned nor borrowed by {self.addr}")
            obj.task_refs += 1
            if obj.state == PENDING:
                if obj.dependents is None:
                    obj.dependents = []
                obj.dependents.append(spec)
                blocked += 1
            elif obj.state == FAILED:
                failed = obj
        for ref in spec.held_refs:
            obj = objects.get(ref)
            if obj is None:
                raise KeyError(f"nested ref {ref:x} is neither owned nor borrowed by {self.addr}")
            obj.task_refs += 1  # alive while the task may use it; neither awaited nor failed on
        if failed is not None:
            self._finish_failed(spec, failed.error_kind, failed.error, now, out)
        elif blocked:
            spec.owner_state = WAITING_ARGS
            self._blocked[spec.task_id] = blocked
        else:
            self._send(spec, out)

    def _send(self, spec: TaskSpec, out: list[Command]) -> None:
        if spec.generator:
            stream = self.streams.get(spec.task_id)
            spec.skip_items = stream.count if stream is not None else 0  # a re-run skips them
        if spec.kind == ACTOR_METHOD:
            spec.owner_state = UNSENT
            self._flush_actor(spec.actor_id, out)
            return
        spec.owner_state = SUBMITTED
        if spec.arg_refs:
            self._resolve_args(spec)
        out.append(Send(self.raylet_addr, SubmitTask(spec), spec.nbytes))

    def _resolve_args(self, spec: TaskSpec) -> None:
        """Describe the task's arguments: stored ones by location, small ones inline."""
        if spec.arg_refs:
            objects = self.objects
            deps: list[DepInfo] = []
            inlined: dict[ObjectId, Any] = {}
            nbytes = 256
            for ref in spec.arg_refs:
                obj = objects[ref]
                if obj.stored:
                    deps.append(DepInfo(ref, obj.size, (obj.node,)))
                else:
                    inlined[ref] = obj.payload
                    nbytes += obj.size
            spec.deps = tuple(deps)
            spec.inlined = inlined or None
            spec.nbytes = nbytes

    def new_put_id(self) -> ObjectId:
        """Reserve the id of a future ``put`` (so a program thread can hand out its ref at once)."""
        return object_id(self.ids.next(), 1)

    def put(
        self,
        size: int,
        payload: Any,
        stored: bool,
        now: float,
        out: list[Command],
        oid: ObjectId | None = None,
    ) -> ObjectId:
        """Register a value the program put: inline (``payload``) or already in the local store.

        ``oid`` is an id from ``new_put_id``; by default a fresh one is taken.
        """
        if oid is None:
            oid = self.new_put_id()
        self.objects[oid] = OwnedObject(READY, size, stored, self.node, None if stored else payload)
        if stored:
            out.append(Send(self.raylet_addr, PinObject(oid, size, self.addr), 96))
        return oid

    # -- references ---------------------------------------------------------------------

    def add_ref(self, oid: ObjectId) -> None:
        """The program made another handle to ``oid``."""
        self.objects[oid].refs += 1

    def remove_ref(self, oid: ObjectId, now: float, out: list[Command]) -> None:
        """The program dropped a handle to ``oid``; free it when nothing references it."""
        obj = self.objects.get(oid)
        if obj is None:
            return
        obj.refs -= 1
        self._maybe_free(oid, obj, out)

    def borrow(self, oid: ObjectId, owner: Address, now: float, out: list[Command]) -> None:
        """The program holds a handle to ``oid``, owned by ``owner``: track it here.

        A borrowed object can be waited on and passed to tasks like an owned one; the
        real owner keeps it alive until this owner releases it (when its last local
        reference goes). Borrowing one's own object just adds a reference.
        """
        obj = self.objects.get(oid)
        if obj is not None:
            obj.refs += 1
            return
        if owner == self.addr:
            error = f"object {oid:x} was already freed by its owner"
            out.append(ObjectReady(self.addr, oid, None, -1, ERR_OBJECT_LOST, error))
            return
        self.objects[oid] = OwnedObject(owner=owner)
        out.append(Send(owner, SubscribeObject(oid, self.addr), 64))

    def contain(
        self, outer: ObjectId, inner: ObjectId, inner_owner: Address, now: float, out: list[Command]
    ) -> None:
        """The value of ``outer`` holds a ref to ``inner``: keep ``inner`` while it lives.

        As in Ray, an object nested in another one stays alive as long as the outer
        object does, whoever dropped their own handles meanwhile. ``outer`` must be
        this owner's; ``inner_owner`` is the address of the owner of ``inner``. Nothing
        happens if ``outer`` is gone already.
        """
        obj = self.objects.get(outer)
        if obj is None and is_generator_item(outer):
            self._contain_early(outer, inner, inner_owner, now, out)
            return
        if obj is None or obj.owner >= 0 or obj.state == FREED:
            return
        self.borrow(inner, inner_owner, now, out)
        if obj.contained is None:
            obj.contained = []
        obj.contained.append(inner)

    def watch_free(self, oid: ObjectId) -> None:
        """Emit ``ObjectFreed`` when ``oid`` (one of this owner's) is dropped for good.

        A host uses it to tie something to an object's lifetime across processes, e.g.
        an actor to the token object its handles carry.
        """
        if oid in self.objects:
            self._watched.add(oid)

    def _dropped(self, oid: ObjectId, obj: OwnedObject, out: list[Command]) -> None:
        """``oid`` left the table: drop the refs its value held, tell a watching host."""
        if obj.contained:
            self._drop_contained(obj, out)
        if self._watched and oid in self._watched:
            self._watched.discard(oid)
            out.append(ObjectFreed(self.addr, oid))

    def _drop_contained(self, obj: OwnedObject, out: list[Command]) -> None:
        """``obj``'s value is gone: drop the references it held (see `contain`)."""
        inner, obj.contained = obj.contained, None
        if not inner:
            return
        if self._uncontain is not None:  # already draining, further up the stack
            self._uncontain.extend(inner)
            return
        work = self._uncontain = list(inner)
        try:
            while work:
                oid = work.pop()
                held = self.objects.get(oid)
                if held is not None:
                    held.refs -= 1
                    self._maybe_free(oid, held, out)
        finally:
            self._uncontain = None

    def _maybe_free(self, oid: ObjectId, obj: OwnedObject, out: list[Command]) -> None:
        """Drop ``oid`` once neither the program, nor a pending task, nor a borrower needs it."""
        if obj.refs > 0 or obj.task_refs > 0 or obj.borrowers > 0:
            return
        if self.objects.get(oid) is not obj:
            return  # already dropped (a failure cascade can reach an object twice)
        if obj.owner >= 0:  # a borrowed object, possibly still pending at its owner
            del self.objects[oid]
            out.append(Send(obj.owner, ReleaseBorrow(oid, self.addr), 64))
            return
        if obj.state == PENDING:
            return  # freed when its task reports
        if obj.lineage_refs > 0:
            if obj.stored and obj.state == READY:
                # the value goes; its lineage stays for objects computed from it
                obj.state, obj.stored = FREED, False
                out.append(Send(self.gcs_addr, FreeObjects([oid]), 72))
                if obj.contained:
                    self._drop_contained(obj, out)
            return  # an inline value is kept: it is small and cannot be lost
        del self.objects[oid]
        if obj.stored and obj.state == READY:
            out.append(Send(self.gcs_addr, FreeObjects([oid]), 72))
        if obj.lineage is not None:
            self._release_lineage(obj.lineage, out)
        self._dropped(oid, obj, out)

    def _release_lineage(self, spec: TaskSpec, out: list[Command]) -> None:
        """A stored object computed by ``spec`` is gone: its arguments' lineage may go too."""
        work = [spec]
        objects = self.objects
        while work:
            for ref in work.pop().arg_refs:
                arg = objects.get(ref)
                if arg is None:
                    continue
                arg.lineage_refs -= 1
                if arg.lineage_refs > 0 or arg.refs > 0 or arg.task_refs > 0 or arg.borrowers > 0:
                    continue
                if arg.state == PENDING or arg.owner >= 0:
                    continue
                del objects[ref]
                if arg.stored and arg.state == READY:
                    out.append(Send(self.gcs_addr, FreeObjects([ref]), 72))
                if arg.lineage is not None:
                    work.append(arg.lineage)
                self._dropped(ref, arg, out)

    def _release_args(self, spec: TaskSpec, out: list[Command]) -> None:
        if self.replaying and spec.task_id in self.replaying:
            return  # a replay borrows its logged call's references
        objects = self.objects
        for refs in (spec.arg_refs, spec.held_refs):
            for ref in refs:
                obj = objects.get(ref)
                if obj is None:
                    continue
                obj.task_refs -= 1
                self._maybe_free(ref, obj, out)

    def _on_subscribe_object(self, msg: SubscribeObject, now: float, out: list[Command]) -> None:
        obj = self.objects.get(msg.oid)
        if obj is None:
            error = f"object {msg.oid:x} was freed: no reference to it remained at its owner"
            out.append(Send(msg.reply_to, ObjectStatus(msg.oid, None, -1, ERR_OBJECT_LOST, error)))
            return
        obj.borrowers += 1
        if obj.state == PENDING:
            if obj.watchers is None:
                obj.watchers = []
            obj.watchers.append(msg.reply_to)
        else:
            self._tell(msg.reply_to, msg.oid, obj, out)

    def _tell(self, addr: Address, oid: ObjectId, obj: OwnedObject, out: list[Command]) -> None:
        if obj.state == READY:
            result = ResultInfo(oid, obj.size, obj.stored, obj.payload)
            status = ObjectStatus(oid, result, obj.node)
            nbytes = 96 if obj.stored else 96 + obj.size
        else:
            status = ObjectStatus(oid, None, -1, obj.error_kind, obj.error)
            nbytes = 256
        out.append(Send(addr, status, nbytes))

    def _on_object_status(self, msg: ObjectStatus, now: float, out: list[Command]) -> None:
        obj = self.objects.get(msg.oid)
        if obj is None or obj.state != PENDING:
            return  # released meanwhile
        if msg.result is not None:
            result = msg.result
            obj.state, obj.size, obj.stored = READY, result.size, result.stored
            obj.node, obj.payload = msg.node, result.payload
        else:
            obj.state, obj.error_kind, obj.error = FAILED, msg.error_kind, msg.error
        out.append(ObjectReady(self.addr, msg.oid, msg.result, msg.node, msg.error_kind, msg.error))
        self._resolved(msg.oid, obj, now, out)

    def _on_release_borrow(self, msg: ReleaseBorrow, now: float, out: list[Command]) -> None:
        obj = self.objects.get(msg.oid)
        if obj is None:
            return
        obj.borrowers -= 1
        self._maybe_free(msg.oid, obj, out)

    def _resolved(self, oid: ObjectId, obj: OwnedObject, now: float, out: list[Command]) -> None:
        """``oid`` just became ready or failed: wake or fail its dependents, tell borrowers."""
        dependents, obj.dependents = obj.dependents, None
        if dependents is not None:
            if obj.state == READY:
                self._wake(dependents, out)
            else:
                for dependent in dependents:
                    if dependent.task_id in self._blocked:
                        self._finish_failed(dependent, obj.error_kind, obj.error, now, out)
        watchers, obj.watchers = obj.watchers, None
        for addr in watchers or ():
            self._tell(addr, oid, obj, out)
        self._maybe_free(oid, obj, out)

    # -- failures of nodes: retries and lineage reconstruction -----------------------------

    def _on_node_removed(self, msg: NodeRemoved, now: float, out: list[Command]) -> None:
        """Tasks that were placed on the dead node will never report: retry or fail them."""
        self.dead_nodes.add(msg.node)
        if self.speculator is not None:
            self.speculator.node_removed(msg.node, now, out)
        for handle in self.actors.values():
            if handle.node == msg.node and handle.state == ACTOR_ALIVE:
                handle.state = ACTOR_RESTARTING  # hold its calls until the GCS says more
        lost = [s for s in self.pending.values() if s.node == msg.node]
        for spec in lost:
            if spec.task_id in self._blocked or spec.task_id not in self.pending:
                continue
            self._lost_with_node(spec, msg.node, now, out)

    def _lost_with_node(self, spec: TaskSpec, node: NodeId, now: float, out: list[Command]) -> None:
        """``spec`` was on ``node``, which died: retry it (within its budget) or fail it."""
        reason = f"node {node} died while it had task {spec.name or spec.task_id}"
        if spec.kind == ACTOR_METHOD:
            sent_to = self._call_ended(spec) if spec.max_retries != 0 else None
            retry = spec.max_retries != 0
            if not (retry and self._retry_call(spec, ERR_ACTOR_DIED, sent_to, out)):
                self._finish_failed(spec, ERR_ACTOR_DIED, reason, now, out)
        elif self._should_retry(spec, ERR_NODE_DIED):
            spec.attempt += 1
            spec.since = now
            spec.node = -1
            self.retries += 1
            self._send(spec, out)
        else:
            self._finish_failed(spec, ERR_NODE_DIED, reason, now, out)

    def _on_tasks_placed(self, msg: TasksPlaced, now: float, out: list[Command]) -> None:
        """The global scheduler says where these attempts of our tasks went.

        An attempt that already ended, or was retried since, is no longer ours to place.
        One placed on a node already known dead is lost with it (the batch of a dead node
        may come after its ``NodeRemoved``); otherwise the spec remembers the node, so a
        later ``NodeRemoved`` finds it.
        """
        pending, blocked, node = self.pending, self._blocked, msg.node
        dead = node in self.dead_nodes
        for task_id, attempt in msg.tasks:
            spec = pending.get(task_id)
            if spec is None or spec.attempt != attempt or task_id in blocked:
                continue
            if dead:
                if spec.node in (node, -1):  # not since seen alive elsewhere
                    self._lost_with_node(spec, node, now, out)
            elif spec.node == -1:
                spec.node = node

    def _on_tasks_held(self, msg: TasksHeld, now: float, out: list[Command]) -> None:
        owner_resume.on_tasks_held(self, msg, now, out)

    def _on_object_lost(self, msg: ObjectLost, now: float, out: list[Command]) -> None:
        for oid in msg.oids:
            obj = self.objects.get(oid)
            if obj is not None and obj.state == READY and obj.stored:
                self._reconstruct(oid, now, out)

    def _recover_inputs(self, spec: TaskSpec, now: float, out: list[Command]) -> bool:
        """A task could not fetch an input: recompute lost inputs and hold the task for them."""
        objects = self.objects
        lost = [
            ref
            for ref in spec.arg_refs
            if (obj := objects.get(ref)) is not None
            and obj.state == READY
            and obj.stored
            and obj.node in self.dead_nodes
        ]
        for ref in lost:
            self._reconstruct(ref, now, out)
        waiting = [ref for ref in spec.arg_refs if (o := objects.get(ref)) and o.state == PENDING]
        if not waiting:
            # every input is ready on a live node as far as this owner knows (the GCS may
            # not have registered a recomputed copy yet): send again with fresh locations
            ready = all(
                (o := objects.get(ref)) is not None and o.state == READY for ref in spec.arg_refs
            )
            if not ready or not self._should_retry(spec, ERR_NODE_DIED):
                return False
            spec.attempt += 1
            spec.since = now
            spec.node = -1
            self.retries += 1
            self._send(spec, out)
            return True
        for ref in waiting:
            obj = objects[ref]
            if obj.dependents is None:
                obj.dependents = []
            obj.dependents.append(spec)
        spec.node = -1
        spec.owner_state = WAITING_ARGS
        self._blocked[spec.task_id] = len(waiting)
        return True

    def _needs_recompute(self, obj: OwnedObject) -> bool:
        return obj.state == FREED or (
            obj.state == READY and obj.stored and obj.node in self.dead_nodes
        )

    def _reconstruct(self, oid: ObjectId, now: float, out: list[Command]) -> None:
        """Recompute a lost stored object from its lineage, and any lost inputs first."""
        objects = self.objects
        order: list[TaskSpec] = []
        seen: set[TaskId] = set()
        stack = [oid]
        while stack:
            obj = objects[stack.pop()]
            spec = obj.lineage
            budget_left = spec is not None and (
                spec.max_retries < 0 or spec.attempt < spec.max_retries
            )
            if spec is None or not budget_left:
                obj.state, obj.error_kind = FAILED, ERR_OBJECT_LOST
                obj.error = "every copy of the object was lost and it cannot be recomputed"
                ready = ObjectReady(self.addr, oid, None, -1, obj.error_kind, obj.error)
                out.append(ready)
                continue
            obj.state = PENDING
            if spec.task_id in seen or spec.task_id in self.pending:
                continue
            seen.add(spec.task_id)
            order.append(spec)
            for ref in spec.arg_refs:
                arg = objects.get(ref)
                if arg is not None and self._needs_recompute(arg):
                    stack.append(ref)
        for spec in reversed(order):  # producers before consumers
            self.reconstructions += 1
            spec.attempt += 1
            spec.node = -1
            self.pending[spec.task_id] = spec
            self._track_args(spec, now, out)

    def cancel(self, oid: ObjectId, force: bool, now: float, out: list[Command]) -> bool:
        """Cancel the task producing ``oid``; False when it already ended.

        Its returns fail at once with ``ERR_CANCELLED`` (so waiting callers wake up); a
        task already sent is also stopped where it is: dropped from a queue, or
        interrupted (``force``: its worker killed) if running.
        """
        tid = task_of(oid)
        spec = self.pending.get(tid)
        if spec is None:
            return False
        if force and spec.kind == ACTOR_METHOD:
            raise ValueError("force=True is not supported for actor method calls")
        was_sent = tid not in self._blocked
        backup = self.speculator.take_backup(tid, force) if self.speculator is not None else None
        self._finish_failed(spec, ERR_CANCELLED, f"task {spec.name or tid} was cancelled", now, out)
        if was_sent:
            target = self.raylet_addr
            if spec.kind == ACTOR_METHOD:
                handle = self.actors.get(spec.actor_id)
                target = handle.addr if handle is not None and handle.addr >= 0 else target
            out.append(Send(target, CancelTask(tid, force, spec.node), 64))
        if backup is not None:
            out.append(Send(self.raylet_addr, backup, 64))
        return True

    def _on_task_started(self, msg: TaskStarted, now: float, out: list[Command]) -> None:
        """A task that opted into speculation started: time it (`runtime.core.speculation`)."""
        spec = self.pending.get(msg.task_id)
        if spec is None or spec.speculation is None:
            return  # ended already (a late report of a losing copy)
        if self.speculator is None:
            self.speculator = Speculator(self.addr, self.raylet_addr)
        self.speculator.started(spec, msg.node, now, out)

    # -- completion ---------------------------------------------------------------------

    def _on_task_done(self, msg: TaskDone, now: float, out: list[Command]) -> None:
        speculator = self.speculator
        if speculator is not None and msg.task_id in speculator.tasks:
            ok = msg.error_kind is None
            if speculator.done(msg.task_id, msg.node, ok, now, out):
                return  # one copy failed, another runs on
        spec = self.pending.get(msg.task_id)
        if spec is None:
            if msg.error_kind is not None and msg.task_id in self.actors:
                # an actor's creation could not even be placed: it is dead, say why
                died = ActorDied(msg.task_id, msg.node, str(msg.error), killed=True)
                out.append(Send(self.gcs_addr, died, 128))
            return  # otherwise a duplicate report for a task already ended
        sent_to = self._call_ended(spec) if spec.kind == ACTOR_METHOD else None
        recover = msg.error_kind == ERR_OBJECT_LOST and spec.kind != ACTOR_METHOD  # a call's
        if recover and self._recover_inputs(spec, now, out):  # turn is gone: it fails
            return
        if msg.error_kind is not None:
            if spec.kind != ACTOR_METHOD and self._should_retry(spec, msg.error_kind):
                spec.attempt += 1
                spec.since = now
                self.retries += 1
                self._send(spec, out)
                return
            retry = spec.kind == ACTOR_METHOD and spec.max_retries != 0
            if retry and self._retry_call(spec, msg.error_kind, sent_to, out):
                return
            self._finish_failed(spec, msg.error_kind, msg.error, now, out)
            return
        del self.pending[msg.task_id]
        spec.owner_state = ENDED
        objects = self.objects
        for result in msg.results:
            obj = objects.get(result.oid)
            if obj is None:
                continue
            obj.state = READY
            obj.size = result.size
            obj.stored = result.stored
            obj.node = msg.node
            obj.payload = result.payload
            if result.stored and obj.lineage is None and self.config.lineage:
                obj.lineage = spec
                for ref in spec.arg_refs:
                    arg = objects.get(ref)
                    if arg is not None:
                        arg.lineage_refs += 1
            ready = ObjectReady(
                self.addr, result.oid, result, msg.node, None, None, spec.submitted_at
            )
            out.append(ready)
            self._resolved(result.oid, obj, now, out)
        if spec.generator:
            self._end_stream(spec.task_id, None, None, out)
        if spec.kind == ACTOR_METHOD and self._logged(spec):
            return  # kept for replay: its arguments stay referenced
        if spec.arg_refs or spec.held_refs:
            self._release_args(spec, out)

    def _logged(self, spec: TaskSpec) -> bool:
        handle = self.actors.get(spec.actor_id)
        return (
            handle is not None
            and handle.log is not None
            and checkpoints.log_call(self, handle, spec)
        )

    def release_call_args(self, spec: TaskSpec, out: list[Command]) -> None:
        """Drop the references a finished call held on its arguments (a replay log entry)."""
        self._release_args(spec, out)

    def _should_retry(self, spec: TaskSpec, error_kind: str) -> bool:
        retryable = error_kind in SYSTEM_ERRORS or (
            spec.retry_exceptions and error_kind == ERR_APPLICATION
        )
        return retryable and (spec.max_retries < 0 or spec.attempt < spec.max_retries)

    def _wake(self, dependents: list[TaskSpec], out: list[Command]) -> None:
        blocked = self._blocked
        for spec in dependents:
            tid = spec.task_id
            left = blocked.get(tid)
            if left is None:
                continue  # already failed because another argument failed
            if left <= 1:
                del blocked[tid]
                self._send(spec, out)
            else:
                blocked[tid] = left - 1

    def _finish_failed(
        self, spec: TaskSpec, error_kind: str | None, error: Any, now: float, out: list[Command]
    ) -> None:
        """End ``spec`` with an error: its returns fail, and so do tasks waiting on them."""
        if self.config.record_task_events and spec.task_id in self.pending:
            record = (spec.task_id, "FAILED", -1, now, spec, spec.attempt, error_kind, error)
            self._failed_events.append(record)
            if not self._flush_armed:
                self._arm_flush(out)
        self.pending.pop(spec.task_id, None)
        spec.owner_state = ENDED
        if self.speculator is not None:
            self.speculator.forget(spec.task_id, out)  # no longer watched
        if spec.kind == ACTOR_METHOD:
            self._call_ended(spec)
        self._blocked.pop(spec.task_id, None)
        objects = self.objects
        for oid in spec.return_ids():
            obj = objects.get(oid)
            if obj is None:
                continue
            obj.state = FAILED
            obj.error_kind = error_kind
            obj.error = error
            out.append(ObjectReady(self.addr, oid, None, -1, error_kind, error, spec.submitted_at))
            self._resolved(oid, obj, now, out)
        if spec.generator:
            self._end_stream(spec.task_id, error_kind, error, out)
        self._release_args(spec, out)

    # -- streaming generators ---------------------------------------------------------------

    def _on_generator_item(self, msg: GeneratorItem, now: float, out: list[Command]) -> None:
        """One item of a generator task: keep it for the program (or drop a late one)."""
        tid, index = msg.task_id, msg.index
        stream = self.streams.get(tid)
        if stream is not None and index < stream.count:
            return  # delivered by an earlier run already (re-runs skip them; never twice)
        if stream is None or stream.ended or stream.dropped:
            # nobody will consume it (the generator was dropped, or the task was
            # cancelled or failed meanwhile): free a stored copy at once
            if msg.result is not None and msg.result.stored:
                out.append(Send(self.gcs_addr, FreeObjects([msg.result.oid]), 72))
            return
        stream.count = index + 1
        oid = generator_item_id(tid, index)
        result = msg.result
        if result is None:
            obj = OwnedObject(FAILED, error_kind=msg.error_kind, error=msg.error)
        else:
            obj = OwnedObject(READY, result.size, result.stored, msg.node, result.payload)
        self.objects[oid] = obj  # its one reference is the stream's (or the container's)
        if stream.early:
            obj.contained = stream.early.pop(oid, None)
        if stream.dynamic:
            container = self.objects.get(object_id(tid, 1))
            if container is not None:
                if container.contained is None:
                    container.contained = []
                container.contained.append(oid)
            return
        out.append(
            ItemReady(self.addr, tid, index, oid, result, msg.node, msg.error_kind, msg.error)
        )

    def _contain_early(
        self, item: ObjectId, inner: ObjectId, inner_owner: Address, now: float, out: list[Command]
    ) -> None:
        """A ref inside an item still on its way: hold it now, hand it to the item on arrival."""
        stream = self.streams.get(generator_item_task(item))
        if stream is None or stream.ended or stream.dropped:
            return
        self.borrow(inner, inner_owner, now, out)
        if stream.early is None:
            stream.early = {}
        stream.early.setdefault(item, []).append(inner)

    def _drop_early(self, stream: StreamState, out: list[Command]) -> None:
        """Items that never arrived: drop the refs held for them (see `_contain_early`)."""
        early, stream.early = stream.early, None
        for inner in (oid for refs in (early or {}).values() for oid in refs):
            held = self.objects.get(inner)
            if held is not None:
                held.refs -= 1
                self._maybe_free(inner, held, out)

    def _end_stream(
        self, tid: TaskId, error_kind: str | None, error: Any, out: list[Command]
    ) -> None:
        stream = self.streams.get(tid)
        if stream is None or stream.ended:
            return
        stream.ended = True
        if stream.early:
            self._drop_early(stream, out)
        if stream.dropped or stream.dynamic:
            del self.streams[tid]
        if not stream.dynamic:
            out.append(StreamEnded(self.addr, tid, stream.count, error_kind, error))

    def drop_stream(self, task_id: TaskId, consumed: int, now: float, out: list[Command]) -> None:
        """The program dropped the generator of ``task_id`` after consuming ``consumed`` items.

        The items it never took are released (the refs it took stay with the program);
        items that arrive later are freed on arrival.
        """
        stream = self.streams.get(task_id)
        if stream is None or stream.dropped:
            return
        stream.dropped = True
        if stream.early:
            self._drop_early(stream, out)
        for index in range(consumed, stream.count):
            self.remove_ref(generator_item_id(task_id, index), now, out)
        if stream.ended:
            del self.streams[task_id]

    def stream_state(self, task_id: TaskId) -> StreamState | None:
        """What this owner knows of the items of generator task ``task_id`` (None: nothing)."""
        return self.streams.get(task_id)

    # -- actors -------------------------------------------------------------------------

    def create_actor(
        self,
        spec: TaskSpec,
        name: str,
        max_restarts: int,
        get_if_exists: bool,
        now: float,
        out: list[Command],
    ) -> int:
        """Ask the GCS to create an actor from ``spec``; return its id (``spec.task_id``).

        ``spec.resources`` is what placing the actor needs, ``spec.hold`` what it keeps
        while alive. The program learns how it went through ``ActorStateChanged`` commands.
        """
        spec.kind = ACTOR_CREATION
        spec.actor_id = spec.task_id
        if spec.strategy is not None:
            apply_strategy(spec)
        spec.owner = self.addr
        spec.owner_node = self.node
        spec.submitted_at = spec.since = now
        self._resolve_args(spec)
        handle = self.actors[spec.actor_id] = ActorHandleState()
        if spec.checkpoint is not None:
            handle.log = []
        out.append(Send(self.gcs_addr, RegisterActor(spec, name, max_restarts, get_if_exists)))
        return spec.actor_id

    # -- placement groups ---------------------------------------------------------------

    def create_placement_group(
        self,
        pg_id: int,
        bundles: list[dict[str, float]],
        strategy: str,
        name: str,
        lifetime: str | None,
        out: list[Command],
        creator_actor: int = 0,
    ) -> None:
        """Ask the GCS to reserve ``bundles`` (``pg_id`` from ``new_task_id``); all or nothing.

        ``creator_actor``: the actor creating it, if any (the group dies with it unless
        ``lifetime`` is ``"detached"``).
        """
        self.pg_states[pg_id] = PlacementGroupUpdate(pg_id, "PENDING", [-1] * len(bundles))
        msg = CreatePlacementGroup(
            pg_id, bundles, strategy, self.addr, name, lifetime, creator_actor
        )
        out.append(Send(self.gcs_addr, msg, 128 + 32 * len(bundles)))

    def remove_placement_group(self, pg_id: int, out: list[Command]) -> None:
        """Remove the group: its bundles are returned, its actors killed, its tasks failed."""
        out.append(Send(self.gcs_addr, RemovePlacementGroup(pg_id), 64))

    def placement_group_ready(
        self,
        pg_id: int,
        payload: Any,
        size: int,
        now: float,
        out: list[Command],
        oid: ObjectId | None = None,
    ) -> ObjectId:
        """A new object that becomes ``payload`` when the group is created (Ray's ``pg.ready()``).

        It fails with ``ERR_PG_REMOVED`` if the group is removed first. ``oid``: an id from
        ``new_put_id`` (by default a fresh one).
        """
        if oid is None:
            oid = self.new_put_id()
        self.objects[oid] = OwnedObject(size=size)
        waiting = self._pg_ready.get(pg_id)
        if waiting is None:
            waiting = self._pg_ready[pg_id] = []
        waiting.append((oid, payload))
        state = self.pg_states.get(pg_id)
        if state is not None and state.state in (PG_CREATED, PG_REMOVED):
            self._resolve_pg_ready(state, now, out)
        else:
            out.append(Send(self.gcs_addr, SubscribePlacementGroup(pg_id, self.addr), 64))
        return oid

    def _on_pg_update(self, msg: PlacementGroupUpdate, now: float, out: list[Command]) -> None:
        self.pg_states[msg.pg_id] = msg
        if msg.state in (PG_CREATED, PG_REMOVED) and msg.pg_id in self._pg_ready:
            self._resolve_pg_ready(msg, now, out)

    def _resolve_pg_ready(self, msg: PlacementGroupUpdate, now: float, out: list[Command]) -> None:
        for oid, payload in self._pg_ready.pop(msg.pg_id, ()):
            obj = self.objects.get(oid)
            if obj is None or obj.state != PENDING:
                continue
            if msg.state == PG_CREATED:
                obj.state, obj.payload, obj.node = READY, payload, self.node
                result = ResultInfo(oid, obj.size, False, payload)
                out.append(ObjectReady(self.addr, oid, result, self.node))
            else:
                error = msg.error or f"placement group {msg.pg_id:x} was removed"
                obj.state, obj.error_kind, obj.error = FAILED, ERR_PG_REMOVED, error
                out.append(ObjectReady(self.addr, oid, None, -1, ERR_PG_REMOVED, error))
            self._resolved(oid, obj, now, out)

    def attach_actor(self, actor_id: int, out: list[Command]) -> None:
        """Start calling an actor created elsewhere (a handle passed to this owner)."""
        if actor_id not in self.actors:
            self.actors[actor_id] = ActorHandleState()
            out.append(Send(self.gcs_addr, SubscribeActor(actor_id, self.addr), 64))

    def lookup_actor(self, name: str, request_id: int, out: list[Command]) -> None:
        """Ask the GCS for the actor named ``name``; answered by ``ActorStateChanged``."""
        out.append(Send(self.gcs_addr, LookupActor(name, self.addr, request_id), 96))

    def kill_actor(self, actor_id: int, no_restart: bool, out: list[Command]) -> None:
        """Terminate an actor (for good when ``no_restart``)."""
        out.append(Send(self.gcs_addr, KillActor(actor_id, no_restart), 64))

    def actor_state(self, actor_id: int) -> ActorHandleState | None:
        """What this owner knows of ``actor_id`` (None if it never used it)."""
        return self.actors.get(actor_id)

    def _enlist_call(self, spec: TaskSpec) -> None:
        handle = self.actors.get(spec.actor_id)
        if handle is None:
            raise KeyError(f"actor {spec.actor_id:x} is unknown to owner {self.addr}")
        handle.seq += 1
        spec.seq = handle.seq
        if self._aliases:
            spec.actor_id = self._aliases.get(spec.actor_id, spec.actor_id)
        if handle.unsent is None:
            handle.unsent = []
        handle.unsent.append(spec)

    def _flush_actor(self, actor_id: int, out: list[Command]) -> None:
        """Send an actor's calls in order, stopping at the first whose arguments are pending."""
        handle = self.actors[actor_id]
        unsent = handle.unsent
        resuming = self.resume_state
        if resuming is not None and actor_id in resuming.held_actors:
            return  # numbered once the nodes said what they hold (`owner_resume.settle`)
        if not unsent:
            return
        if handle.state == ACTOR_DEAD:
            handle.unsent = None
            for spec in unsent:
                self._fail_call(spec, handle, out)
            return
        if handle.state != ACTOR_ALIVE:
            return
        sent = 0
        for spec in unsent:
            tid = spec.task_id
            if tid in self._blocked:
                break
            sent += 1
            if tid not in self.pending:
                continue  # failed while waiting for an argument
            if handle.alias_of:
                spec.actor_id = handle.alias_of
            spec.owner_state = INFLIGHT
            spec.node = handle.node  # where it went: lost with that node if it dies
            self._resolve_args(spec)
            if handle.inflight is None:
                handle.inflight = {}
            handle.inflight[spec.seq] = spec
            if spec.max_retries:
                if handle.sent_to is None:
                    handle.sent_to = {}
                handle.sent_to[tid] = handle.restarts
            first = next(iter(handle.inflight))  # calls end in order: the oldest is first
            out.append(Send(handle.addr, SubmitActorTask(spec, first), spec.nbytes))
        del unsent[:sent]

    def _retry_call(
        self, spec: TaskSpec, kind: str, sent_to: int | None, out: list[Command]
    ) -> bool:
        """Resubmit an actor call that failed (Ray's ``max_task_retries``); False if not.

        A call is retried when the actor died under it (``ERR_ACTOR_DIED``) or, with
        ``retry_exceptions``, when it raised; -1 retries forever. The retry gets a new
        sequence number (the calls that failed with it are not all retried). If the call
        died with the incarnation this owner still believes alive, the owner holds calls
        back until the GCS says whether the actor restarted or is dead.
        """
        retryable = kind == ERR_ACTOR_DIED or (spec.retry_exceptions and kind == ERR_APPLICATION)
        if not retryable or (spec.max_retries >= 0 and spec.attempt >= spec.max_retries):
            return False
        handle = self.actors.get(spec.actor_id)
        if handle is None:
            return False
        stale = sent_to is None or sent_to == handle.restarts
        if kind == ERR_ACTOR_DIED and handle.state == ACTOR_ALIVE and stale:
            handle.state = ACTOR_RESTARTING  # until the GCS publishes what happened
        spec.attempt += 1
        self.retries += 1
        handle.seq += 1
        spec.seq = handle.seq
        spec.owner_state = UNSENT
        if handle.unsent is None:
            handle.unsent = []
        handle.unsent.append(spec)
        self._flush_actor(spec.actor_id, out)
        return True

    def _call_ended(self, spec: TaskSpec) -> int | None:
        """Forget a call in flight; return the incarnation a retriable one was sent to."""
        handle = self.actors.get(spec.actor_id)
        if handle is None:
            return None
        if handle.inflight is not None:
            handle.inflight.pop(spec.seq, None)
        return handle.sent_to.pop(spec.task_id, None) if handle.sent_to else None

    def _fail_call(self, spec: TaskSpec, handle: ActorHandleState, out: list[Command]) -> None:
        if spec.task_id in self.pending:
            error = handle.error or f"actor {spec.actor_id:x} is dead"
            error = not_started(error) if isinstance(error, str) else error  # ActorError: as is
            self._finish_failed(spec, ERR_ACTOR_DIED, error, spec.submitted_at, out)

    def _on_actor_update(self, msg: ActorUpdate, now: float, out: list[Command]) -> None:
        handle = self.actors.get(msg.actor_id)
        if handle is None:
            return
        actor_id = msg.actor_id
        if msg.alias_of:
            existing = self.actors.get(msg.alias_of)
            if existing is not None and existing is not handle:
                # this owner already calls that actor: share its sequence numbers
                self._merge_alias(actor_id, handle, msg.alias_of, existing, out)
                return
            # get_if_exists found a live actor under the name: calls go to that one
            handle.alias_of = msg.alias_of
            self.actors[msg.alias_of] = handle
            out.append(ActorStateChanged(actor_id, msg.state, alias_of=msg.alias_of))
        if handle.log and msg.restarts > handle.restarts:
            self._replay(handle)
        handle.state, handle.node, handle.addr = msg.state, msg.node, msg.addr
        handle.restarts = msg.restarts
        if msg.state == ACTOR_DEAD:
            handle.error = msg.error
        out.append(ActorStateChanged(actor_id, msg.state, msg.error))
        if msg.state in (ACTOR_ALIVE, ACTOR_DEAD):
            self._flush_actor(actor_id, out)

    def _replay(self, handle: ActorHandleState) -> None:
        """A new incarnation: its logged calls go first, then the calls not sent yet (all
        numbered again in that order; none of them was sent)."""
        copies = checkpoints.replays_for_restart(self, handle)
        self.replays += len(copies)
        for spec in copies:
            self.pending[spec.task_id] = spec
            spec.owner_state = UNSENT
        unsent = copies + (handle.unsent or [])
        for spec in unsent:
            handle.seq += 1
            spec.seq = handle.seq
        handle.unsent = unsent

    def _on_actor_checkpointed(
        self, msg: ActorCheckpointed, now: float, out: list[Command]
    ) -> None:
        checkpoints.owner_on_checkpointed(self, msg, now, out)

    def _merge_alias(
        self,
        actor_id: int,
        handle: ActorHandleState,
        alias_of: int,
        existing: ActorHandleState,
        out: list[Command],
    ) -> None:
        """Point ``actor_id`` at ``alias_of``'s state; its early calls join that actor's order."""
        for spec in handle.unsent or ():
            spec.actor_id = alias_of
            existing.seq += 1
            spec.seq = existing.seq
            if existing.unsent is None:
                existing.unsent = []
            existing.unsent.append(spec)
        self.actors[actor_id] = existing
        self._aliases[actor_id] = alias_of
        out.append(ActorStateChanged(actor_id, existing.state, alias_of=alias_of))
        self._flush_actor(alias_of, out)

    def _on_lookup_reply(self, msg: ActorLookupReply, now: float, out: list[Command]) -> None:
        if msg.actor_id:
            self.attach_actor(msg.actor_id, out)
        changed = ActorStateChanged(msg.actor_id, msg.state, None, msg.request_id, 0, msg.spec)
        out.append(changed)

    # -- introspection ------------------------------------------------------------------

    def waiting_arguments(self, task_id: TaskId) -> list[ObjectId] | None:
        """The arguments this owner holds ``task_id`` back for (None: not held back)."""
        if task_id not in self._blocked:
            return None
        spec = self.pending.get(task_id)
        if spec is None:
            return []
        objects = self.objects
        return [
            r for r in spec.arg_refs if (o := objects.get(r)) is not None and o.state == PENDING
        ]

    def explain(self, oid: ObjectId) -> str:
        """Say what this owner knows of ``oid``: pending (and on what), ready where, or failed."""
        obj = self.objects.get(oid)
        if obj is None:
            return f"object {oid:x} is not owned here or was freed"
        if obj.state == READY:
            where = f"stored on node {obj.node}" if obj.stored else "inline at its owner"
            return f"object {oid:x} is ready, {obj.size} bytes, {where}"
        if obj.state == FAILED:
            return f"object {oid:x} failed ({obj.error_kind}): {obj.error}"
        tid = task_of(oid)
        if tid in self._blocked:
            return f"its task waits for {self._blocked[tid]} argument(s) to become ready"
        spec = self.pending.get(tid)
        if spec is None:
            return f"object {oid:x} is pending"
        where = f"node {spec.node}" if spec.node >= 0 else "the scheduler"
        return f"its task was submitted and is with {where} ({spec.reason or 'no decision yet'})"

    # -- public queries (what hosts may read; see runtime.core.interface) ---------------

    def object_entry(self, oid: ObjectId) -> OwnedObject | None:
        """This owner's record of ``oid`` (owned or borrowed; read only), or None."""
        return self.objects.get(oid)

    def object_table(self) -> Mapping[ObjectId, OwnedObject]:
        """Every object this owner owns or borrows, id -> record (a read-only view)."""
        return MappingProxyType(self.objects)

    def pending_task(self, task_id: TaskId) -> TaskSpec | None:
        """The spec of ``task_id`` while it is submitted and not finished (read only)."""
        return self.pending.get(task_id)

    def pending_tasks(self) -> list[TaskSpec]:
        """The specs of every task submitted and not finished, in submission order (a copy)."""
        return list(self.pending.values())
