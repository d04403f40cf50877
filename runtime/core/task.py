"""Plain data describing a task: what it runs, what it needs, what it returns, and why it is where it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from runtime.core.ids import RETURN_BITS, Address, NodeId, ObjectId, TaskId, object_id
from runtime.core.resources import Resources, ShapeKey

# Error kinds a task can end with. System failures are retried up to max_retries;
# application errors only when retry_exceptions is set.
ERR_APPLICATION: Final = "application"
"""The task body raised an exception."""
ERR_APPLICATION_FINAL: Final = "application_final"
"""The task body raised an exception that its ``retry_exceptions`` list of exception
classes does not cover (the host decides; never retried)."""
ERR_WORKER_DIED: Final = "worker_died"
"""The worker process running the task died (system failure, retried)."""
ERR_NODE_DIED: Final = "node_died"
"""The node running the task died (system failure, retried)."""
ERR_UNSCHEDULABLE: Final = "unschedulable"
"""No node in the cluster can ever satisfy the task's resource request."""
ERR_STORE_FULL: Final = "store_full"
"""A return value did not fit in the object store."""
ERR_DEPENDENCY: Final = "dependency_failed"
"""An argument of the task is the output of a task that failed."""
ERR_CANCELLED: Final = "cancelled"
"""The task was cancelled before it finished."""
ERR_ACTOR_DIED: Final = "actor_died"
"""The actor that should run this method call is dead (or died while running it)."""
CALL_NOT_STARTED: Final = "the call had not reached the actor's worker"
"""Ends an ``ERR_ACTOR_DIED`` error text when the call died unsent or queued, before the
actor's worker got it (so it had no effects there; Serve retries such a request)."""


def not_started(error: str) -> str:
    """``error`` marked as the death of a call that never reached the actor's worker."""
    return f"{error}; {CALL_NOT_STARTED}"


ERR_OBJECT_LOST: Final = "object_lost"
"""The object is gone: freed by its owner, or every copy was lost."""
ERR_PG_REMOVED: Final = "placement_group_removed"
"""The placement group the task was to run in was removed (Ray's TaskPlacementGroupRemoved)."""

# What a task is.
TASK: Final = 0
"""A plain remote function call."""
ACTOR_CREATION: Final = 1
"""The constructor of an actor: placed like a task, then its worker stays with the actor."""
ACTOR_METHOD: Final = 2
"""A method call on an actor: runs on the actor's worker, in order, up to the actor's
``max_concurrency`` at once."""

# What a task's body returns.
GEN_NONE: Final = 0
"""Plain returns: ``num_returns`` values at the end."""
GEN_STREAMING: Final = 1
"""A streaming generator (Ray's ``num_returns="streaming"``): each yielded item is sent to
the owner as it is produced; return 1 completes when the task ends (None, or the error)."""
GEN_DYNAMIC: Final = 2
"""Ray's ``num_returns="dynamic"``: items are streamed the same way, but the program sees
them only through return 1, whose value holds their refs once the task has ended."""

SYSTEM_ERRORS = frozenset({ERR_WORKER_DIED, ERR_NODE_DIED})


@dataclass(slots=True, eq=False)
class DepInfo:
    """Where a plasma-stored argument lives, as known to the owner at submission."""

    oid: ObjectId
    size: int
    locations: tuple[NodeId, ...]


@dataclass(slots=True, eq=False)
class TaskSpec:
    """One task invocation.

    ``function`` and ``args`` are opaque to the core: in the simulator ``function`` is a
    workload label and ``duration`` is the drawn run time; in the real world they carry
    a function id and serialized arguments. ``deps`` are the arguments that live in an
    object store and must be local before the task runs; small arguments travel inline
    in ``inlined`` (object id -> owner-held payload).
    """

    task_id: TaskId
    owner: Address
    owner_node: NodeId
    function: Any = None
    args: Any = None
    resources: Resources = field(default_factory=lambda: {"CPU": 1.0})
    """What the task needs while it runs (placing it, and reserved on its node)."""
    num_returns: int = 1
    max_retries: int = 3
    """Retries after a system failure (-1: forever); actor calls: Ray's ``max_task_retries``."""
    retry_exceptions: bool = False
    """Also retry when the body raised (``ERR_APPLICATION``)."""
    name: str = ""
    duration: float = 0.0
    output_sizes: tuple[int, ...] = ()
    arg_refs: tuple[ObjectId, ...] = ()
    held_refs: tuple[ObjectId, ...] = ()
    """Refs nested inside argument values: kept alive until the task ends but not waited
    for, and passed as they are (Ray does not resolve nested refs)."""
    deps: tuple[DepInfo, ...] = ()
    """The stored arguments, where the owner knew them to be when it sent the task."""
    inlined: dict[ObjectId, Any] | None = None
    """The small arguments' values, carried with the task (object id -> payload)."""
    nbytes: int = 256
    """The task's wire size (spec plus inlined arguments), for the network model."""
    attempt: int = 0
    """0 for the first run, +1 for each retry or reconstruction."""
    submitted_at: float = 0.0
    """When its owner submitted it."""
    started_at: float = 0.0
    """When the raylet last dispatched it (for the task table)."""
    since: float = 0.0
    """When it entered its current wait (for the wait breakdown, ``Raylet.waited``)."""
    spills: int = 0
    """Times the global scheduler placed it (a raylet spilled it, or it creates an actor)."""
    reason: str = ""
    """The last placement decision, in words (for traces and ``explain``)."""
    node: NodeId = -1
    """The node it was placed on (-1: not placed yet, or placed again after a failure)."""
    shape: ShapeKey | None = None
    """``shape_key(resources)``, computed once (hosts may preset it for a whole workload)."""
    kind: int = TASK
    """TASK, ACTOR_CREATION or ACTOR_METHOD."""
    actor_id: int = 0
    """The actor this task creates or calls (0 for plain tasks)."""
    seq: int = 0
    """For actor methods: the caller's sequence number for this actor, from 1."""
    owner_state: str = "NEW"
    """Where the task is in its owner's lifecycle (``runtime.core.owner.TASK_TRANSITIONS``)."""
    hold: Resources | None = None
    """For actor creation: what the actor keeps while alive (None: same as ``resources``)."""
    instances: dict[str, tuple[int, ...]] | None = None
    """The instance ids of unit-instance resources (GPU) the raylet gave the task when it
    dispatched it (for an actor: for its lifetime); None when it asked for none."""
    runtime_env: Any = None
    """Opaque to the core: the environment the host sets up in the worker for the body."""
    max_concurrency: int = 1
    """For actor creation: how many of the actor's calls may run at once (Ray's
    ``max_concurrency``); the raylet dispatches that many (plus its pipeline depth)."""
    actor_options: Any = None
    """For actor creation: host-defined options that travel with the actor record (handed
    back by actor lookups); the core never reads them."""
    strategy: Any = None
    """A scheduling strategy from ``runtime.core.placement`` (placement group bundle, node
    affinity, SPREAD); None: the default bottom-up placement."""
    generator: int = GEN_NONE
    """GEN_STREAMING or GEN_DYNAMIC for a generator task (its items: ``GeneratorYielded``)."""
    skip_items: int = 0
    """For a generator re-run after a failure: items already delivered, not to send again."""
    rstate: str = ""
    """Its lifecycle state at the raylet that holds it (``runtime.core.raylet``'s table);
    "" until a raylet takes it."""
    checkpoint: CheckpointPlan | None = None
    """For actor creation: the actor's checkpoint plan (None: Ray's semantics, a restart
    starts from the constructor and no finished call is replayed)."""
    speculation: Any = None
    """A ``runtime.core.speculation.SpeculationPolicy`` when the task opted into speculative
    execution (a backup copy on another node if it straggles); None: never speculated."""

    def __init__(
        self,
        task_id: TaskId,
        owner: Address,
        owner_node: NodeId,
        function: Any = None,
        args: Any = None,
        resources: Resources | None = None,
        num_returns: int = 1,
        max_retries: int = 3,
        retry_exceptions: bool = False,
        name: str = "",
        duration: float = 0.0,
        output_sizes: tuple[int, ...] = (),
        arg_refs: tuple[ObjectId, ...] = (),
        held_refs: tuple[ObjectId, ...] = (),
        deps: tuple[DepInfo, ...] = (),
        inlined: dict[ObjectId, Any] | None = None,
        nbytes: int = 256,
        attempt: int = 0,
        submitted_at: float = 0.0,
        started_at: float = 0.0,
        since: float = 0.0,
        spills: int = 0,
        reason: str = "",
        node: NodeId = -1,
        shape: ShapeKey | None = None,
        kind: int = TASK,
        actor_id: int = 0,
        seq: int = 0,
        owner_state: str = "NEW",
        hold: Resources | None = None,
        instances: dict[str, tuple[int, ...]] | None = None,
        runtime_env: Any = None,
        max_concurrency: int = 1,
        actor_options: Any = None,
        strategy: Any = None,
        generator: int = GEN_NONE,
        skip_items: int = 0,
        rstate: str = "",
        checkpoint: CheckpointPlan | None = None,
        speculation: Any = None,
    ) -> None:
        """Written out, not generated: mypyc compiles it (a dataclass's generated
        ``__init__`` stays interpreted Python even in a compiled module)."""
        self.task_id = task_id
        self.owner = owner
        self.owner_node = owner_node
        self.function = function
        self.args = args
        self.resources = {"CPU": 1.0} if resources is None else resources
        self.num_returns = num_returns
        self.max_retries = max_retries
        self.retry_exceptions = retry_exceptions
        self.name = name
        self.duration = duration
        self.output_sizes = output_sizes
        self.arg_refs = arg_refs
        self.held_refs = held_refs
        self.deps = deps
        self.inlined = inlined
        self.nbytes = nbytes
        self.attempt = attempt
        self.submitted_at = submitted_at
        self.started_at = started_at
        self.since = since
        self.spills = spills
        self.reason = reason
        self.node = node
        self.shape = shape
        self.kind = kind
        self.actor_id = actor_id
        self.seq = seq
        self.owner_state = owner_state
        self.hold = hold
        self.instances = instances
        self.runtime_env = runtime_env
        self.max_concurrency = max_concurrency
        self.actor_options = actor_options
        self.strategy = strategy
        self.generator = generator
        self.skip_items = skip_items
        self.rstate = rstate
        self.checkpoint = checkpoint
        self.speculation = speculation

    def return_ids(self) -> tuple[ObjectId, ...]:
        """The object ids of this task's return values."""
        tid = self.task_id
        if self.num_returns == 1:
            return ((tid << RETURN_BITS) | 1,)
        return tuple(object_id(tid, i) for i in range(1, self.num_returns + 1))


@dataclass(slots=True, eq=False)
class CheckpointPlan:
    """An actor's checkpoints (`runtime.core.checkpoints`): how often, and the last one.

    ``every`` >= 1: the raylet hosting the actor has it save its state after every
    ``every`` finished calls; 0: never saved (a restart replays every call since the
    constructor, the Ray paper's lineage replay). ``state`` is the last saved state
    (opaque to the core, None until the first save) and ``covered`` the last sequence
    number per caller that it includes; a restart restores it and replays the later calls.
    """

    every: int
    state: Any = None
    size: int = 0
    """The saved state's size in bytes (the host's measure)."""
    covered: dict[Address, int] = field(default_factory=dict)
    saves: int = 0
    """Checkpoints saved so far."""
    cost_s: float = 0.0
    """Simulator only: the modelled time of one save (real mode measures its own)."""


@dataclass(slots=True, eq=False)
class ActorError:
    """Why an actor died, when the cause is a task error: ``cause`` is the host's encoded
    error of the constructor (opaque to the core); ``str()`` gives the message."""

    message: str
    cause: Any = None

    def __str__(self) -> str:
        if self.cause is None or not isinstance(self.cause, str):
            return self.message
        return f"{self.message}: {self.cause}"


@dataclass(slots=True, eq=False)
class ResultInfo:
    """One return value of a finished task, as reported to its owner."""

    oid: ObjectId
    size: int
    stored: bool
    """True when the value lives in the object store of the reporting node."""
    payload: Any = None
    """The inline value (opaque) when not stored."""

    def __init__(self, oid: ObjectId, size: int, stored: bool, payload: Any = None) -> None:
        """Written out, not generated: mypyc compiles it (a dataclass's generated
        ``__init__`` stays interpreted Python even in a compiled module)."""
        self.oid = oid
        self.size = size
        self.stored = stored
        self.payload = payload
