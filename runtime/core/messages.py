"""The whole protocol in one place: messages between components, events from the host, commands to it.

Three kinds of plain slotted dataclasses, each deriving from exactly one base:

* **Messages** (`Message`) travel between components. A component asks for one to be
  delivered by appending ``Send(dst, msg, nbytes)``; the host delivers it (after a
  simulated network delay, or by a direct call on the event-loop thread) to ``dst.handle``.
* **Host events** (`HostEvent`) report what the world did: a task body finished, an object
  transfer completed, a timer fired. The host hands them to a component's ``handle``.
* **Commands** (`Command`) are what components ask the world to do: send, dispatch a task
  to a worker, move an object between nodes, free store memory, set a timer, complete a
  future, record a trace. ``handle(msg, now, out)`` appends them to ``out: list[Command]``;
  every host has one table from command type to the code that carries it out
  (``tests/core/test_protocol.py`` checks that each covers every command).

A few commands are named like events (``ObjectReady``, ``ObjectFreed``, ``ItemReady``,
``StreamEnded``, ``ActorStateChanged``): they tell the host, which completes the program's
futures, what the owner decided; they are commands all the same.

Instances are treated as immutable once built (they are not ``frozen=True`` only because
frozen dataclasses cost about twice as much to construct, and the simulator builds
several per task; see docs/design.md). The bases have empty ``__slots__``, so deriving
from them costs nothing per instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from runtime.core.ids import Address, NodeId, ObjectId, TaskId
from runtime.core.resources import Resources
from runtime.core.task import ResultInfo, TaskSpec


class Message:
    """Core to core: carried by ``Send`` from one component to another's ``handle``."""

    __slots__ = ()


class HostEvent:
    """Host to core: something the world did, handed to one component's ``handle``."""

    __slots__ = ()


class Command:
    """Core to host: something a component asks the world to do (appended to ``out``)."""

    __slots__ = ()


# ---------------------------------------------------------------------------------------
# Messages between components
# ---------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class SubmitTask(Message):
    """Owner -> its local raylet: schedule this task (bottom-up: try here first)."""

    spec: TaskSpec

    def __init__(self, spec: TaskSpec) -> None:
        """Written out, not generated: mypyc compiles it (a dataclass's generated
        ``__init__`` stays interpreted Python even in a compiled module)."""
        self.spec = spec


@dataclass(slots=True, eq=False)
class SpillTask(Message):
    """Raylet -> global scheduler: this node will not run the task; place it elsewhere.

    The spiller's current load rides along (``queued``, ``running``; -1 when unknown), so
    the global scheduler's view of it is fresh exactly when it matters.
    """

    spec: TaskSpec
    from_node: NodeId
    queued: int = -1
    running: int = -1


@dataclass(slots=True, eq=False)
class ScheduleTask(Message):
    """Global scheduler -> raylet: run this task here (a placement decision, not a request)."""

    spec: TaskSpec


@dataclass(slots=True, eq=False)
class TaskDone(Message):
    """Raylet (or the global scheduler, for an unschedulable task) -> owner: the task ended."""

    task_id: TaskId
    node: NodeId
    results: list[ResultInfo]
    error_kind: str | None = None
    error: Any = None

    def __init__(
        self,
        task_id: TaskId,
        node: NodeId,
        results: list[ResultInfo],
        error_kind: str | None = None,
        error: Any = None,
    ) -> None:
        """Written out, not generated: mypyc compiles it (a dataclass's generated
        ``__init__`` stays interpreted Python even in a compiled module)."""
        self.task_id = task_id
        self.node = node
        self.results = results
        self.error_kind = error_kind
        self.error = error


@dataclass(slots=True, eq=False)
class RegisterNode(Message):
    """Raylet -> GCS: a node joined with these resources and this store capacity."""

    node: NodeId
    addr: Address
    resources: Resources
    store_capacity: int


@dataclass(slots=True, eq=False)
class Subscribe(Message):
    """Any component -> GCS: publish node-table changes to ``addr``.

    ``joins`` False subscribes to removals only (owners need to hear of deaths, not births).
    """

    addr: Address
    joins: bool = True


@dataclass(slots=True, eq=False)
class NodeAdded(Message):
    """GCS -> subscribers: a node joined the cluster."""

    node: NodeId
    addr: Address
    resources: Resources


@dataclass(slots=True, eq=False)
class NodeRemoved(Message):
    """GCS -> subscribers: a node died; whatever ran or was stored there is gone."""

    node: NodeId


@dataclass(slots=True, eq=False)
class TasksPlaced(Message):
    """Global scheduler -> owner, batched: these attempts of its tasks were placed on ``node``.

    ``tasks`` holds ``(task_id, attempt)`` pairs. The scheduler gathers them per node and
    sends a node's batch when it grows to ``CoreConfig.placement_batch`` or at once when
    the node dies, so an owner in another process than the scheduler still finds the
    tasks it lost with a node (see docs/design.md, "Owners told where their tasks went").
    """

    node: NodeId
    tasks: list[tuple[TaskId, int]]


@dataclass(slots=True, eq=False)
class ObjectLost(Message):
    """GCS -> owner: the last copy of each of these objects was on a node that died."""

    oids: list[ObjectId]


@dataclass(slots=True, eq=False)
class LocateObject(Message):
    """Raylet -> GCS: where are the copies of ``oid`` now? Answered by ``ObjectLocations``."""

    oid: ObjectId
    reply_to: Address


@dataclass(slots=True, eq=False)
class ObjectLocations(Message):
    """GCS -> raylet: the live nodes holding ``oid`` (empty when it is lost or freed)."""

    oid: ObjectId
    locations: list[NodeId]


@dataclass(slots=True, eq=False)
class ResourceReport(Message):
    """Raylet -> global scheduler, periodically: what is free and how much is queued."""

    node: NodeId
    available: Resources
    queued: int
    running: int


@dataclass(slots=True, eq=False)
class ObjectAdded(Message):
    """Raylet -> GCS: a copy of ``oid`` (``size`` bytes) now lives on ``node``.

    ``primary`` is True for the first copy (a task output or a put), False for a pulled one.
    """

    oid: ObjectId
    node: NodeId
    size: int
    owner: Address
    primary: bool = True


@dataclass(slots=True, eq=False)
class ObjectRemoved(Message):
    """Raylet -> GCS: the copy of ``oid`` on ``node`` is gone (evicted or freed)."""

    oid: ObjectId
    node: NodeId


@dataclass(slots=True, eq=False)
class FreeObjects(Message):
    """Owner -> GCS: no reference to these objects remains; drop every copy."""

    oids: list[ObjectId]


@dataclass(slots=True, eq=False)
class EvictObjects(Message):
    """GCS -> raylet: delete your copies of these objects."""

    oids: list[ObjectId]


@dataclass(slots=True, eq=False)
class PinObject(Message):
    """Owner -> its local raylet: ``put`` wrote ``oid`` into this node's store; account for it."""

    oid: ObjectId
    size: int
    owner: Address


@dataclass(slots=True, eq=False)
class TaskEvents(Message):
    """Raylet or owner -> GCS, batched: task state changes.

    Each record is ``(task_id, state, node, time, spec, attempt, error_kind, error)``:
    ``state`` one of Ray's task states (``gcs.TASK_STATE_RANK``), ``spec`` the task's
    ``TaskSpec`` (the GCS copies what it shows: name, kind, actor, owner, resources) and
    ``attempt`` its attempt number when the state was observed. ``node`` is -1 for
    records of the owner (the task is not on a node yet, or failed before reaching one).
    """

    node: NodeId
    records: list[tuple[Any, ...]]


@dataclass(slots=True, eq=False)
class SubscribeObject(Message):
    """Borrower -> owner: tell ``reply_to`` when ``oid`` is ready, and keep it alive for it."""

    oid: ObjectId
    reply_to: Address


@dataclass(slots=True, eq=False)
class ObjectStatus(Message):
    """Owner -> borrower: ``oid`` is ready (where, how big) or failed (why)."""

    oid: ObjectId
    result: ResultInfo | None
    node: NodeId
    error_kind: str | None = None
    error: Any = None


@dataclass(slots=True, eq=False)
class ReleaseBorrow(Message):
    """Borrower -> owner: ``borrower`` holds no more references to ``oid``."""

    oid: ObjectId
    borrower: Address


@dataclass(slots=True, eq=False)
class CancelTask(Message):
    """Owner -> raylet (forwarded through the global scheduler to ``node``): stop this task."""

    task_id: TaskId
    force: bool
    node: NodeId
    exact: bool = False
    """Only the copy on ``node`` (a speculative copy: another node may run the same task)."""


# ---------------------------------------------------------------------------------------
# Events from the host
# ---------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class TaskFinished(HostEvent):
    """Host -> raylet: the task body ended.

    ``outputs`` holds one ``(size, payload)`` pair per return value on success. On
    failure ``error_kind`` is one of the ``ERR_*`` constants of ``runtime.core.task`` and
    ``error`` an opaque description (a serialized exception in the real world).
    ``stored`` tells which outputs the worker already placed in the node's store (the
    real world decides by size); ``None`` lets the raylet decide by its inline threshold.
    """

    task_id: TaskId
    outputs: list[tuple[int, Any]] = field(default_factory=list)
    error_kind: str | None = None
    error: Any = None
    stored: list[bool] | None = None
    started: TaskId = 0
    """The prefetched task (``Dispatch.ahead``) the same worker started next, if any: it
    takes over the finished task's resources."""

    def __init__(
        self,
        task_id: TaskId,
        outputs: list[tuple[int, Any]] | None = None,
        error_kind: str | None = None,
        error: Any = None,
        stored: list[bool] | None = None,
        started: TaskId = 0,
    ) -> None:
        """Written out, not generated: mypyc compiles it (a dataclass's generated
        ``__init__`` stays interpreted Python even in a compiled module)."""
        self.task_id = task_id
        self.outputs = [] if outputs is None else outputs
        self.error_kind = error_kind
        self.error = error
        self.stored = stored
        self.started = started


@dataclass(slots=True, eq=False)
class WorkerBlocked(HostEvent):
    """Host -> raylet: the worker running ``task_id`` waits for objects (a nested ``get``).

    Its resources are lent back to the node until ``WorkerUnblocked``, so that the tasks
    it waits for can run (Ray releases a blocked worker's CPU the same way); instance
    resources (GPUs) stay with it, so no other task is given the same instance ids.
    """

    task_id: TaskId


@dataclass(slots=True, eq=False)
class WorkerUnblocked(HostEvent):
    """Host -> raylet: the worker running ``task_id`` resumed; it takes its resources back."""

    task_id: TaskId


@dataclass(slots=True, eq=False)
class TransferDone(HostEvent):
    """Host -> destination raylet: a copy of ``oid`` arrived from ``src``."""

    oid: ObjectId
    size: int
    src: NodeId


@dataclass(slots=True, eq=False)
class TransferFailed(HostEvent):
    """Host -> destination raylet: the copy of ``oid`` from ``src`` cannot complete (src died)."""

    oid: ObjectId
    src: NodeId


@dataclass(slots=True, eq=False)
class Unassigned(HostEvent):
    """Host -> raylet: prefetched ``task_id`` was not started and is back with the raylet."""

    task_id: TaskId


@dataclass(slots=True, eq=False)
class MakeRoom(HostEvent):
    """Host -> raylet: the world's store has no room for ``nbytes``; spill if allowed.

    The raylet answers with ``Spill`` commands (LRU primary copies no running task pins)
    or with none when spilling is off or nothing can be spilled: the host then fails the
    allocation with its store-full error.
    """

    nbytes: int


@dataclass(slots=True, eq=False)
class Spilled(HostEvent):
    """Host -> raylet: the bytes of ``oid`` were written to disk (``ok``) and freed from memory."""

    oid: ObjectId
    ok: bool = True


@dataclass(slots=True, eq=False)
class Restored(HostEvent):
    """Host -> raylet: spilled ``oid`` is back in memory, or ``error`` says why it is not.

    ``no_room``: the error is only that memory is short now (the raylet retries the
    restore when room appears); any other error is final for the tasks waiting on it.
    """

    oid: ObjectId
    error: str | None = None
    no_room: bool = False


@dataclass(slots=True, eq=False)
class NodeDied(HostEvent):
    """Host -> GCS: ``node`` is gone (its raylet, workers, store and resident owners)."""

    node: NodeId


@dataclass(slots=True, eq=False)
class TimerFired(HostEvent):
    """Host -> component: the timer set with ``key`` expired."""

    key: str


@dataclass(slots=True, eq=False)
class ActorWorkerDied(HostEvent):
    """Host -> raylet: the worker process of ``actor_id`` exited unexpectedly."""

    actor_id: int
    reason: str = "the actor's worker process died"


# ---------------------------------------------------------------------------------------
# Commands to the host
# ---------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Send(Command):
    """Deliver ``msg`` to the component at ``dst``; ``nbytes`` models its wire size."""

    dst: Address
    msg: Message
    nbytes: int = 128

    def __init__(self, dst: Address, msg: Message, nbytes: int = 128) -> None:
        """Written out, not generated: mypyc compiles it (a dataclass's generated
        ``__init__`` stays interpreted Python even in a compiled module)."""
        self.dst = dst
        self.msg = msg
        self.nbytes = nbytes


@dataclass(slots=True, eq=False)
class Dispatch(Command):
    """Run ``spec`` on a worker of ``node``; its resources are already reserved."""

    node: NodeId
    spec: TaskSpec
    ahead: bool = False
    """A prefetched task: no resources are reserved yet; queue it behind a running task of
    a busy worker (it becomes running when ``TaskFinished.started`` names it), or hand it
    back with ``Unassigned``."""

    def __init__(self, node: NodeId, spec: TaskSpec, ahead: bool = False) -> None:
        """Written out, not generated: mypyc compiles it (a dataclass's generated
        ``__init__`` stays interpreted Python even in a compiled module)."""
        self.node = node
        self.spec = spec
        self.ahead = ahead


@dataclass(slots=True, eq=False)
class Transfer(Command):
    """Copy object ``oid`` (``nbytes``) from node ``src`` to node ``dst``; then TransferDone."""

    oid: ObjectId
    src: NodeId
    dst: NodeId
    nbytes: int


@dataclass(slots=True, eq=False)
class Free(Command):
    """Release the store memory of object ``oid`` on ``node``."""

    node: NodeId
    oid: ObjectId


@dataclass(slots=True, eq=False)
class ObjectFreed(Command):
    """Owner -> host: ``owner`` dropped object ``oid``, which its host asked to hear of
    (``Owner.watch_free``): no reference to it is left anywhere.

    A command named like an event: the host carries it out by ending what it tied to the
    object (e.g. the actor its handles keep alive)."""

    owner: Address
    oid: ObjectId


@dataclass(slots=True, eq=False)
class SetTimer(Command):
    """Deliver ``TimerFired(key)`` to ``addr`` after ``delay`` seconds."""

    addr: Address
    delay: float
    key: str


@dataclass(slots=True, eq=False)
class Spill(Command):
    """Write object ``oid`` (``nbytes``) of ``node``'s store to disk, free its memory; then Spilled."""

    node: NodeId
    oid: ObjectId
    nbytes: int


@dataclass(slots=True, eq=False)
class Restore(Command):
    """Read spilled ``oid`` (``nbytes``) of ``node`` back into memory; then Restored."""

    node: NodeId
    oid: ObjectId
    nbytes: int


@dataclass(slots=True, eq=False)
class ObjectReady(Command):
    """Owner -> host: the future of ``oid`` is resolved (value or error).

    A command named like an event: the host carries it out by completing the program's
    future of ``oid`` (and waking what waits on it).

    On success ``result`` says where the value is (inline payload, or stored at ``node``).
    On failure ``error_kind``/``error`` carry the reason; ``result`` is None.
    """

    owner: Address
    oid: ObjectId
    result: ResultInfo | None
    node: NodeId
    error_kind: str | None = None
    error: Any = None
    submitted_at: float = 0.0

    def __init__(
        self,
        owner: Address,
        oid: ObjectId,
        result: ResultInfo | None,
        node: NodeId,
        error_kind: str | None = None,
        error: Any = None,
        submitted_at: float = 0.0,
    ) -> None:
        """Written out, not generated: mypyc compiles it (a dataclass's generated
        ``__init__`` stays interpreted Python even in a compiled module)."""
        self.owner = owner
        self.oid = oid
        self.result = result
        self.node = node
        self.error_kind = error_kind
        self.error = error
        self.submitted_at = submitted_at


@dataclass(slots=True, eq=False)
class CancelRunning(Command):
    """Interrupt the running task ``task_id`` on ``node`` (``force``: kill its worker)."""

    node: NodeId
    task_id: TaskId
    force: bool


@dataclass(slots=True, eq=False)
class Trace(Command):
    """A decision worth explaining (placement, spill, retry), for traces and logs."""

    kind: str
    task_id: TaskId
    node: NodeId
    detail: str


@dataclass(slots=True, eq=False)
class KillWorker(Command):
    """Raylet -> host: terminate the worker process that hosts ``actor_id`` on ``node``."""

    node: NodeId
    actor_id: int


@dataclass(slots=True, eq=False)
class ActorStateChanged(Command):
    """Owner -> host: what the program may need to know of an actor it created or looked up.

    A command named like an event: the host carries it out by updating the program's actor
    handles (and answering a pending lookup, ``request_id``)."""

    actor_id: int
    state: str
    error: Any = None
    request_id: int = 0
    alias_of: int = 0
    spec: TaskSpec | None = None


# ---------------------------------------------------------------------------------------
# Actors (messages between components; the actor host event and commands are filed above)
# ---------------------------------------------------------------------------------------

ACTOR_PENDING: Final = "PENDING"
ACTOR_ALIVE: Final = "ALIVE"
ACTOR_RESTARTING: Final = "RESTARTING"
ACTOR_DEAD: Final = "DEAD"


@dataclass(slots=True, eq=False)
class RegisterActor(Message):
    """Owner -> GCS: create an actor from ``spec`` (an ACTOR_CREATION task).

    With a ``name`` already taken, the GCS answers ``ActorUpdate`` with ``alias_of`` set when
    ``get_if_exists``, and with a DEAD state and an error otherwise.
    """

    spec: TaskSpec
    name: str = ""
    max_restarts: int = 0
    get_if_exists: bool = False


@dataclass(slots=True, eq=False)
class SubscribeActor(Message):
    """Component -> GCS: send ``addr`` the state changes of ``actor_id`` (and its current state)."""

    actor_id: int
    addr: Address


@dataclass(slots=True, eq=False)
class ActorUpdate(Message):
    """GCS -> owner and subscribers: an actor's state changed (or is being reported)."""

    actor_id: int
    state: str
    node: NodeId = -1
    addr: Address = -1
    error: Any = None
    alias_of: int = 0
    name: str = ""
    restarts: int = 0
    """How many times the actor was restarted (its incarnation)."""


@dataclass(slots=True, eq=False)
class LookupActor(Message):
    """Component -> GCS: which actor is registered under ``name``? Answered by ``ActorUpdate``."""

    name: str
    reply_to: Address
    request_id: int


@dataclass(slots=True, eq=False)
class ActorLookupReply(Message):
    """GCS -> component: the answer to ``LookupActor`` (``actor_id`` 0 when no such name)."""

    request_id: int
    actor_id: int
    state: str
    node: NodeId = -1
    addr: Address = -1
    spec: TaskSpec | None = None


@dataclass(slots=True, eq=False)
class SubmitActorTask(Message):
    """Caller's owner -> the raylet hosting the actor: run this method call in order.

    ``first_unfinished`` is the lowest sequence number of the caller's calls to this actor
    that have not ended: a restarted actor, meeting the caller for the first time, starts
    its expected sequence there (Ray's ``client_processed_up_to``).
    """

    spec: TaskSpec
    first_unfinished: int = 1


@dataclass(slots=True, eq=False)
class ActorStarted(Message):
    """Raylet -> GCS: the actor's constructor finished on ``node``; it takes calls at ``addr``."""

    actor_id: int
    node: NodeId
    addr: Address


@dataclass(slots=True, eq=False)
class ActorDied(Message):
    """Raylet -> GCS: the actor's worker is gone (``killed`` when on purpose); global
    scheduler -> GCS: its creation attempt ``attempt`` was sent to ``node``, now dead."""

    actor_id: int
    node: NodeId
    reason: Any
    """A message, or an `ActorError` carrying the constructor's error."""
    killed: bool = False
    attempt: int = -1
    """The creation attempt the report is about (-1: whatever runs now); a report about an
    earlier attempt is stale and ignored."""


@dataclass(slots=True, eq=False)
class KillActor(Message):
    """Owner -> GCS -> hosting raylet: terminate the actor (``no_restart``: never bring it back)."""

    actor_id: int
    no_restart: bool = True


# ---------------------------------------------------------------------------------------
# Placement groups (see runtime/core/placement.py and docs/design.md)
# ---------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class CreatePlacementGroup(Message):
    """Owner -> GCS: reserve ``bundles`` by ``strategy``, all or nothing (gang scheduling)."""

    pg_id: int
    bundles: list[Resources]
    strategy: str
    owner: Address
    name: str = ""
    lifetime: str | None = None
    creator_actor: int = 0
    """The actor that created it (0: the job): the group dies with it unless detached."""


@dataclass(slots=True, eq=False)
class RemovePlacementGroup(Message):
    """Owner -> GCS: remove the group: return its bundles, kill its actors, fail its tasks."""

    pg_id: int


@dataclass(slots=True, eq=False)
class SubscribePlacementGroup(Message):
    """Component -> GCS: send ``addr`` the group's state changes (and its current state)."""

    pg_id: int
    addr: Address


@dataclass(slots=True, eq=False)
class PlacementGroupUpdate(Message):
    """GCS -> subscribers: a placement group's state (``error`` says why when REMOVED)."""

    pg_id: int
    state: str
    bundle_nodes: list[NodeId] = field(default_factory=list)
    error: str = ""


@dataclass(slots=True, eq=False)
class SchedulePlacementGroup(Message):
    """GCS -> global scheduler: place the bundles not in ``placed`` (index -> node)."""

    pg_id: int
    bundles: list[Resources]
    strategy: str
    placed: dict[int, NodeId] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class PlacementGroupPlaced(Message):
    """Global scheduler -> GCS: every bundle is committed; ``bundle_nodes[i]`` holds bundle i."""

    pg_id: int
    bundle_nodes: list[NodeId]


@dataclass(slots=True, eq=False)
class PlacementGroupPending(Message):
    """Global scheduler -> GCS: the group cannot be placed now; ``reason`` is the decision record."""

    pg_id: int
    reason: str
    infeasible: bool = False


@dataclass(slots=True, eq=False)
class CancelPlacementGroup(Message):
    """GCS -> global scheduler: the group was removed: return its bundles, fail its queued tasks."""

    pg_id: int
    reason: str


@dataclass(slots=True, eq=False)
class PrepareBundles(Message):
    """Global scheduler -> raylet: phase one: set these bundles' resources aside (index, bundle)."""

    pg_id: int
    attempt: int
    bundles: list[tuple[int, Resources]]


@dataclass(slots=True, eq=False)
class BundlesPrepared(Message):
    """Raylet -> global scheduler: the answer to ``PrepareBundles`` (``reason`` when refused)."""

    pg_id: int
    attempt: int
    node: NodeId
    ok: bool
    reason: str = ""


@dataclass(slots=True, eq=False)
class CommitBundles(Message):
    """Global scheduler -> raylet: phase two: the prepared bundles are the group's now."""

    pg_id: int
    attempt: int


@dataclass(slots=True, eq=False)
class ReturnBundles(Message):
    """Global scheduler -> raylet: give the group's bundles back (prepared or committed).

    Committed bundles take down what runs in them: queued tasks fail, running tasks are
    killed, actors die for good, as when Ray removes a placement group.
    """

    pg_id: int
    reason: str
    attempt: int = -1
    """Only the bundles prepared in this attempt (-1: every bundle of the group here)."""


# ---------------------------------------------------------------------------------------
# Streaming generators (one host event, one message, two commands; each says which)
# ---------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class GeneratorYielded(HostEvent):
    """Host -> raylet: the running generator task ``task_id`` yielded item ``index`` (from 0).

    ``size``/``payload``/``stored`` describe the value like one output of ``TaskFinished``
    (``stored`` None: the raylet decides by its inline threshold). With ``error_kind`` set
    the body raised at this item instead (Ray reports a generator's exception as an item).
    """

    task_id: TaskId
    index: int
    size: int = 0
    payload: Any = None
    stored: bool | None = None
    error_kind: str | None = None
    error: Any = None


@dataclass(slots=True, eq=False)
class GeneratorItem(Message):
    """Raylet -> owner: item ``index`` of generator task ``task_id`` exists (or failed)."""

    task_id: TaskId
    index: int
    node: NodeId
    result: ResultInfo | None
    error_kind: str | None = None
    error: Any = None


@dataclass(slots=True, eq=False)
class ItemReady(Command):
    """Owner -> host: item ``index`` (object ``oid``) of stream ``task_id`` can be consumed.

    As ``ObjectReady``: ``result`` says where the value is; on failure ``error_kind``/
    ``error`` say why. The owner holds one reference to the item for the stream until the
    program consumes it or drops the generator (``Owner.drop_stream``).
    """

    owner: Address
    task_id: TaskId
    index: int
    oid: ObjectId
    result: ResultInfo | None
    node: NodeId
    error_kind: str | None = None
    error: Any = None


@dataclass(slots=True, eq=False)
class StreamEnded(Command):
    """Owner -> host: stream ``task_id`` has all its ``count`` items; no more will come.

    ``error_kind`` is set when the task itself failed (a system error, cancellation, a
    failed argument): the program then sees the task's return 1 as a last item, as in Ray.
    """

    owner: Address
    task_id: TaskId
    count: int
    error_kind: str | None = None
    error: Any = None


# ---------------------------------------------------------------------------------------
# Interruptions (the raylet decides how an interrupted body ends)
# ---------------------------------------------------------------------------------------

INTERRUPT_CANCELLED: Final = "cancelled"
"""The host stopped a running body as a ``CancelRunning`` asked (KeyboardInterrupt)."""
INTERRUPT_UNSTARTED: Final = "unstarted"
"""A ``CancelRunning`` reached a task the host held but had not started."""
INTERRUPT_KILLED: Final = "killed"
"""The host killed the body's worker (an injected fault, ``WorkerInterrupted.reason``)."""


@dataclass(slots=True, eq=False)
class WorkerInterrupted(HostEvent):
    """Host -> raylet: the body of ``task_id`` was stopped (``cause``: ``INTERRUPT_*``).

    A host that interrupts bodies itself (the simulator, the tests' fake host) reports
    only what it did; the raylet decides how the task ends: a cancelled body fails with
    a KeyboardInterrupt application error, an unstarted one is cancelled, a killed plain
    task's worker died (its owner may retry it) and a killed actor's worker died (its GCS
    may restart the actor). ``reason`` describes a kill.
    """

    task_id: TaskId
    cause: str
    reason: str = ""
    actor_id: int = 0
    """For a kill: the actor whose worker it was (its calls all fail); 0 for a task's."""


# ---------------------------------------------------------------------------------------
# Actor checkpoints (runtime.core.checkpoints)
# ---------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class SaveCheckpoint(Command):
    """Have the actor's worker on ``node`` save its state (no call of it is running);
    the host answers ``CheckpointSaved``. ``spec`` is the actor's creation spec."""

    node: NodeId
    actor_id: int
    spec: TaskSpec


@dataclass(slots=True, eq=False)
class CheckpointSaved(HostEvent):
    """Host -> raylet: the actor's state was saved (``state``, opaque; ``size`` bytes),
    or could not be (``error``: the hook raised; the previous checkpoint stays)."""

    actor_id: int
    state: Any = None
    size: int = 0
    error: str | None = None


@dataclass(slots=True, eq=False)
class ActorCheckpointed(Message):
    """Raylet -> GCS (with ``state``), GCS -> the actor's callers (without): a checkpoint
    includes every call up to ``covered[caller]``; callers drop those from their replay logs."""

    actor_id: int
    covered: dict[Address, int]
    state: Any = None
    size: int = 0


@dataclass(slots=True, eq=False)
class TaskStarted(Message):
    """Raylet -> owner: a task that opted into speculative execution started on ``node``
    (only such tasks report it; ``runtime.core.speculation`` times them from here)."""

    task_id: TaskId
    node: NodeId


@dataclass(slots=True, eq=False)
class CheckActorPlacement(Message):
    """GCS -> global scheduler: ``node`` died while creation attempt ``attempt`` of the actor
    was on its way to a node; if it was sent to ``node``, say so (``ActorDied``)."""

    actor_id: int
    attempt: int
    node: NodeId


# ---------------------------------------------------------------------------------------
# Heartbeats and the GCS's failure detector (runtime.core.health)
# ---------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Heartbeat(Message):
    """Raylet -> GCS, every ``heartbeat_period_s``: node ``node`` is alive."""

    node: NodeId


@dataclass(slots=True, eq=False)
class FenceNode(Command):
    """GCS -> host: ``node`` is declared dead (silent for ``node_timeout_s``, or heard
    from after it was declared dead). The host cuts it off for good (nothing it sends is
    delivered any more; it is stopped where the host can) and, the first time, hands the
    GCS ``NodeDied`` for it: the path a closed connection takes."""

    node: NodeId
    reason: str


# ---------------------------------------------------------------------------------------
# GCS persistence (the head can restart: `runtime.core.gcs_persistence`)
# ---------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Persist(Command):
    """GCS -> host: row ``key`` of durable table ``table`` is now ``value`` (None: deleted).

    Emitted only by a GCS whose persistence is enabled (`Gcs.enable_persistence`); the
    host writes the rows in order (the last one of a key wins) and gives them back to
    `Gcs.restore` after a restart. ``value`` is the live record: a host that writes later
    (batched) writes the record's state at that time, still the latest one.
    """

    table: str
    key: Any
    value: Any


# ---------------------------------------------------------------------------------------
# A connected driver's owner resumed after the head restarted (`runtime.core.owner_resume`)
# ---------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class TasksHeld(Message):
    """Raylet -> owner, once when a node rejoins a restarted head: what it holds of that
    owner's (`Raylet.tasks_held`).

    ``tasks`` holds ``(task_id, attempt, seq)`` for every task and actor call of the owner
    the raylet holds (queued, fetching, running); ``next_seqs`` maps each actor living on
    the node to the sequence number of the owner's next call it will accept (0: none
    accepted yet). A resumed owner (`runtime.core.owner_resume`) waits for these before it
    decides which of its tasks were lost with the head.
    """

    node: NodeId
    tasks: list[tuple[TaskId, int, int]]
    next_seqs: dict[int, int]
