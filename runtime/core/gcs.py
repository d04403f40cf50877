"""The global control store: node table, object directory, bounded task table and node pub/sub."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NoReturn

from runtime.core import checkpoints, gcs_persistence
from runtime.core.component import Component
from runtime.core.config import CoreConfig
from runtime.core.health import FailureDetector, check_health_config
from runtime.core.ids import Address, NodeId, ObjectId, TaskId
from runtime.core.invariants import InvariantError
from runtime.core.messages import (
    ACTOR_ALIVE,
    ACTOR_DEAD,
    ACTOR_PENDING,
    ACTOR_RESTARTING,
    ActorCheckpointed,
    ActorDied,
    ActorLookupReply,
    ActorStarted,
    ActorUpdate,
    CancelPlacementGroup,
    CheckActorPlacement,
    Command,
    CreatePlacementGroup,
    EvictObjects,
    FreeObjects,
    Heartbeat,
    HostEvent,
    KillActor,
    LocateObject,
    LookupActor,
    Message,
    NodeAdded,
    NodeDied,
    NodeRemoved,
    ObjectAdded,
    ObjectLocations,
    ObjectLost,
    ObjectRemoved,
    PlacementGroupPending,
    PlacementGroupPlaced,
    PlacementGroupUpdate,
    RegisterActor,
    RegisterNode,
    RemovePlacementGroup,
    SchedulePlacementGroup,
    Send,
    SpillTask,
    Subscribe,
    SubscribeActor,
    SubscribePlacementGroup,
    TaskEvents,
    TimerFired,
)
from runtime.core.placement import (
    PG_CREATED,
    PG_PENDING,
    PG_REMOVED,
    PG_RESCHEDULING,
    PlacementGroupRecord,
    PlacementGroupStrategy,
)
from runtime.core.resources import Resources
from runtime.core.task import TaskSpec

REMOVED_PGS_KEPT: Final = 1000
"""Removed placement groups the table keeps (the oldest go first), as Ray's GCS does."""

# ---------------------------------------------------------------------------------------
# Lifecycles the GCS holds (h11 style: every legal transition and its cause). `Gcs.check`
# verifies that the tables agree with the states.
# ---------------------------------------------------------------------------------------

ACTOR_TRANSITIONS: dict[str, dict[str, str]] = {
    ACTOR_PENDING: {
        ACTOR_ALIVE: "ActorStarted: its constructor finished on a node",
        ACTOR_RESTARTING: "ActorDied before it started, with restarts left",
        ACTOR_DEAD: "killed before it started, or its creation failed for good",
    },
    ACTOR_ALIVE: {
        ACTOR_RESTARTING: "ActorDied (or its node died) with restarts left",
        ACTOR_DEAD: "killed, or died with no restart left (its groups are removed with it)",
    },
    ACTOR_RESTARTING: {
        ACTOR_ALIVE: "ActorStarted: the new incarnation's constructor finished",
        ACTOR_RESTARTING: "died again before it started, with restarts left",
        ACTOR_DEAD: "killed, or died with no restart left",
    },
    ACTOR_DEAD: {},
}
"""An actor record's ``state``. Only a non-DEAD actor holds its name in ``actor_names``;
only an ALIVE one has a ``node`` and ``addr``."""

PG_TRANSITIONS: dict[str, dict[str, str]] = {
    PG_PENDING: {
        PG_CREATED: "PlacementGroupPlaced: every bundle is committed",
        PG_REMOVED: "removed (or its name was taken: refused at creation)",
    },
    PG_CREATED: {
        PG_RESCHEDULING: "a node holding some of its bundles died",
        PG_REMOVED: "removed, or its creating actor died",
    },
    PG_RESCHEDULING: {
        PG_CREATED: "PlacementGroupPlaced: the lost bundles are placed again",
        PG_RESCHEDULING: "another node holding its bundles died",
        PG_REMOVED: "removed, or its creating actor died",
    },
    PG_REMOVED: {},
}
"""A placement group record's ``state``: CREATED holds every bundle on a live node,
REMOVED none; only a group not REMOVED holds its name."""


@dataclass(slots=True)
class NodeInfo:
    """A row of the node table."""

    node: NodeId
    addr: Address
    resources: Resources
    store_capacity: int
    alive: bool = True
    registered_at: float = 0.0


@dataclass(slots=True)
class DirectoryEntry:
    """A row of the object directory: an object's size, owner and the nodes holding a copy."""

    size: int
    owner: Address
    locations: list[NodeId] = field(default_factory=list)


TASK_STATE_RANK: dict[str, int] = {  # the task table's lifecycle: ranks only ever go up
    "PENDING_ARGS_AVAIL": 0,
    "PENDING_NODE_ASSIGNMENT": 1,
    "SUBMITTED_TO_WORKER": 2,
    "RUNNING": 3,
    "FINISHED": 4,
    "FAILED": 4,
}
"""Task states (Ray's names) in the order an attempt goes through them: owner and raylet
report on their own schedules, so a record only ever moves a task forward (a later
attempt, or a later state of the same attempt)."""


@dataclass(slots=True)
class TaskRecord:
    """A row of the task table: the latest known state of a task, and what it is."""

    state: str
    node: NodeId
    updated_at: float
    name: str = ""
    kind: int = 0
    """TASK, ACTOR_CREATION or ACTOR_METHOD (``runtime.core.task``)."""
    actor_id: int = 0
    attempt: int = 0
    owner: Address = -1
    error_kind: str | None = None
    error: str = ""
    created_at: float = 0.0
    """When its owner submitted it."""
    started_at: float = -1.0
    """When it last started running (-1: never, as far as the GCS heard)."""
    ended_at: float = -1.0
    resources: Resources | None = None
    reason: str = ""
    """The placement decision that put it on ``node`` (``TaskSpec.reason``)."""
    spills: int = 0


@dataclass(slots=True)
class ActorRecord:
    """A row of the actor table: where an actor lives, its state and who wants to know."""

    spec: TaskSpec
    name: str
    state: str
    max_restarts: int
    subscribers: list[Address]
    restarts: int = 0
    node: NodeId = -1
    addr: Address = -1
    no_restart: bool = False
    error: Any = None


class Gcs(Component):
    """The global control store, as one component (sharding comes with the simulated cluster).

    Besides its tables it schedules actors, as Ray's GCS does: it sends an actor's creation
    task to the global scheduler, and again (up to ``max_restarts``) when the actor dies.
    """

    def __init__(
        self, addr: Address, config: CoreConfig | None = None, gs_addr: Address = -1
    ) -> None:
        self.addr = addr
        self.gs_addr = gs_addr
        self.config = config or CoreConfig()
        self.nodes: dict[NodeId, NodeInfo] = {}
        """The node table (dead nodes stay, ``alive`` False)."""
        self.objects: dict[ObjectId, DirectoryEntry] = {}
        """The object directory: every stored object not freed, and the live nodes holding it."""
        self.tasks: dict[TaskId, TaskRecord] = {}
        """The task table, least recently updated first (bounded by ``task_table_max``)."""
        self.tasks_dropped = 0
        """Task records dropped from the table to keep it bounded."""
        self.subscribers: list[Address] = []
        """Hear of nodes joining (and leaving)."""
        self.death_subscribers: list[Address] = []
        """Hear of nodes leaving."""
        self.actors: dict[int, ActorRecord] = {}
        """The actor table, by actor id (dead actors stay, state DEAD)."""
        self.actor_names: dict[str, int] = {}
        """Names of the actors not dead -> their ids."""
        self.placement_groups: dict[int, PlacementGroupRecord] = {}
        """The placement-group table, by group id (removed groups stay, state REMOVED)."""
        self.placement_group_names: dict[str, int] = {}
        """Names of the groups not removed."""
        self._pgs_of_actor: dict[int, list[int]] = {}
        """Per creating actor: its groups that are not detached (removed when it dies)."""
        self._removed_pgs: deque[int] = deque()
        """Removed groups, oldest first: the table keeps the last ``REMOVED_PGS_KEPT``."""
        self.freed_early: set[ObjectId] = set()
        """Objects freed before their primary copy registered (a race between paths)."""
        self.rejoining: dict[NodeId, NodeInfo] = {}
        """Nodes alive before a restart (`restore`) whose raylet has not registered again."""
        self._handlers: dict[type, Callable[[Any, float, list[Command]], None]] = {
            RegisterNode: self._on_register_node,
            Subscribe: self._on_subscribe,
            ObjectAdded: self._on_object_added,
            ObjectRemoved: self._on_object_removed,
            FreeObjects: self._on_free_objects,
            TaskEvents: self._on_task_events,
            RegisterActor: self._on_register_actor,
            SubscribeActor: self._on_subscribe_actor,
            LookupActor: self._on_lookup_actor,
            ActorStarted: self._on_actor_started,
            ActorDied: self._on_actor_died,
            ActorCheckpointed: self._on_actor_checkpointed,
            KillActor: self._on_kill_actor,
            NodeDied: self._on_node_died,
            LocateObject: self._on_locate_object,
            CreatePlacementGroup: self._on_create_pg,
            RemovePlacementGroup: self._on_remove_pg,
            SubscribePlacementGroup: self._on_subscribe_pg,
            PlacementGroupPlaced: self._on_pg_placed,
            PlacementGroupPending: self._on_pg_pending,
        }
        self._persisted = False
        """Whether `enable_persistence` was called (each message is then followed by its
        `Persist` commands)."""
        self.health: FailureDetector | None = None
        """The failure detector, with heartbeats on (``heartbeat_period_s`` > 0)."""
        self._init_health()

    def handle(self, msg: Message | HostEvent, now: float, out: list[Command]) -> None:
        """React to one message, appending commands to ``out``."""
        if self._persisted:
            gcs_persistence.handle_persisted(self, msg, now, out)
            return
        self._handlers[type(msg)](msg, now, out)

    # -- persistence (the head can restart; see runtime.core.gcs_persistence) -------------

    def enable_persistence(self) -> None:
        """From now on, follow every message with a `Persist` command per durable row it
        changed (off by default: the simulator and the embedded node pay nothing)."""
        self._persisted = True

    def snapshot(self) -> list[tuple[str, Any, Any]]:
        """Every durable row now, as ``(table, key, value)`` (what a fresh store starts from)."""
        return gcs_persistence.snapshot(self)

    def restore(
        self,
        rows: Iterable[tuple[str, Any, Any]],
        now: float,
        out: list[Command],
        lost_nodes: Iterable[NodeId] = (),
    ) -> None:
        """Rebuild the durable tables from persisted rows; ``lost_nodes`` die now (see
        `runtime.core.gcs_persistence.restore`)."""
        gcs_persistence.restore(self, rows, now, out, lost_nodes)

    # -- invariants (tests and debug runs only: never called on the hot path) ------------

    def check(self) -> None:
        """Verify the GCS's tables agree; raise ``InvariantError`` naming the first broken one.

        Actor names map to live records and back; each actor's and group's state is a
        declared one and its fields match it (an ALIVE actor has a node, a CREATED group
        every bundle on a live node); the object directory names only live nodes, once.
        """
        self._check_nodes()
        self._check_actors()
        self._check_placement_groups()

    def _fail(self, what: str) -> NoReturn:
        raise InvariantError(f"GCS {self.addr}: {what}")

    def _check_nodes(self) -> None:
        fail = self._fail
        for node, info in self.nodes.items():
            if info.node != node:
                fail(f"nodes[{node}] describes node {info.node}")
        for oid, entry in self.objects.items():
            if len(set(entry.locations)) != len(entry.locations):
                fail(f"object {oid:x} lists a location twice: {entry.locations}")
            for node in entry.locations:
                where = self.nodes.get(node)
                if where is not None and not where.alive:
                    fail(f"object {oid:x} is located on dead node {node}")
        for subs in (self.subscribers, self.death_subscribers):
            if len(set(subs)) != len(subs):
                fail(f"a subscriber is listed twice: {subs}")
        unknown = {r.state for r in self.tasks.values()} - TASK_STATE_RANK.keys()
        if unknown:
            fail(f"task records in undeclared states {sorted(unknown)}")
        if len(self.tasks) > self.config.task_table_max:
            fail(f"the task table holds {len(self.tasks)} records, over its bound")

    def _check_actors(self) -> None:
        fail = self._fail
        for name, actor_id in self.actor_names.items():
            rec = self.actors.get(actor_id)
            if rec is None or rec.name != name or rec.state == ACTOR_DEAD:
                fail(f"the name {name!r} maps to actor {actor_id:x}, not a live actor of it")
        for actor_id, rec in self.actors.items():
            if rec.state not in ACTOR_TRANSITIONS:
                fail(f"actor {actor_id:x} is in undeclared state {rec.state!r}")
            if rec.spec.actor_id != actor_id:
                fail(f"actors[{actor_id:x}] holds the spec of actor {rec.spec.actor_id:x}")
            live = rec.state != ACTOR_DEAD
            if live and rec.name and self.actor_names.get(rec.name) != actor_id:
                fail(f"live actor {actor_id:x} does not hold its name {rec.name!r}")
            placed = rec.node >= 0 and rec.addr >= 0
            if placed != (rec.state == ACTOR_ALIVE):
                fail(f"actor {actor_id:x} is {rec.state} at node {rec.node}, addr {rec.addr}")
            if rec.max_restarts >= 0 and rec.restarts > rec.max_restarts:
                fail(f"actor {actor_id:x} restarted {rec.restarts} > {rec.max_restarts} times")

    def _check_placement_groups(self) -> None:
        fail = self._fail
        for name, pg_id in self.placement_group_names.items():
            rec = self.placement_groups.get(pg_id)
            if rec is None or rec.name != name or rec.state == PG_REMOVED:
                fail(f"the group name {name!r} maps to {pg_id:x}, not a live group of it")
        for pg_id, rec in self.placement_groups.items():
            if rec.state not in PG_TRANSITIONS:
                fail(f"group {pg_id:x} is in undeclared state {rec.state!r}")
            if rec.pg_id != pg_id or len(rec.bundle_nodes) != len(rec.bundles):
                fail(f"group {pg_id:x}: record {rec.pg_id:x}, bundle nodes {rec.bundle_nodes}")
            if rec.state == PG_REMOVED:
                if any(n >= 0 for n in rec.bundle_nodes):
                    fail(f"removed group {pg_id:x} keeps bundles on {rec.bundle_nodes}")
                continue
            if rec.name and self.placement_group_names.get(rec.name) != pg_id:
                fail(f"live group {pg_id:x} does not hold its name {rec.name!r}")
            if rec.state == PG_CREATED:
                for node in rec.bundle_nodes:
                    info = self.nodes.get(node) or self.rejoining.get(node)
                    if info is None or not info.alive:
                        fail(f"created group {pg_id:x} has a bundle on node {node}, not alive")
        for pg_id in self._removed_pgs:
            rec = self.placement_groups.get(pg_id)
            if rec is not None and rec.state != PG_REMOVED:
                fail(f"group {pg_id:x} is listed as removed but is {rec.state}")
        for actor_id, groups in self._pgs_of_actor.items():
            for pg_id in groups:
                rec = self.placement_groups.get(pg_id)
                if rec is not None and rec.creator_actor != actor_id:
                    fail(f"group {pg_id:x} is filed under actor {actor_id:x}, not its creator")

    # -- failure detection (runtime.core.health) ------------------------------------------

    def _init_health(self) -> None:
        """Own a failure detector when raylets send heartbeats; the default has none."""
        config = self.config
        check_health_config(config.heartbeat_period_s, config.node_timeout_s)
        self._handlers[Heartbeat] = self._on_heartbeat
        if config.heartbeat_period_s:
            self.health = FailureDetector(
                self.addr, config.node_timeout_s, config.heartbeat_period_s
            )
            self._handlers[TimerFired] = self._on_health_timer

    def _on_heartbeat(self, msg: Heartbeat, now: float, out: list[Command]) -> None:
        if self.health is None:  # raylets and GCS share one config: a wiring error
            self._fail(f"node {msg.node} sends heartbeats, but heartbeat_period_s is 0 here")
        self.health.on_heartbeat(msg.node, now, out)

    def _on_health_timer(self, msg: TimerFired, now: float, out: list[Command]) -> None:
        assert self.health is not None
        self.health.on_timer(now, out)

    def _died_unseen(self, node: NodeId, now: float, out: list[Command]) -> None:
        """A fresh raylet registers as ``node`` while its table row is alive: with
        heartbeats on, the previous incarnation died before the detector noticed (a node
        restarted within the timeout). Its death is handled first, as a ``NodeDied``."""
        self._on_node_died(NodeDied(node), now, out)

    # -- node table and pub/sub ---------------------------------------------------------

    def _on_register_node(self, msg: RegisterNode, now: float, out: list[Command]) -> None:
        if self.rejoining:
            self.rejoining.pop(msg.node, None)  # back after the GCS restarted
        if self.health is not None:
            known = self.nodes.get(msg.node)
            if known is not None and known.alive:
                self._died_unseen(msg.node, now, out)
            self.health.on_registered(msg.node)
        self.nodes[msg.node] = NodeInfo(
            msg.node, msg.addr, dict(msg.resources), msg.store_capacity, True, now
        )
        for sub in self.subscribers:
            out.append(Send(sub, NodeAdded(msg.node, msg.addr, dict(msg.resources)), 256))

    def _on_subscribe(self, msg: Subscribe, now: float, out: list[Command]) -> None:
        # a restarted node's raylet subscribes again from the same address: once is enough
        if msg.addr not in self.death_subscribers:
            self.death_subscribers.append(msg.addr)
        if not msg.joins:
            return
        if msg.addr not in self.subscribers:
            self.subscribers.append(msg.addr)
        for info in self.nodes.values():
            if info.alive:
                out.append(Send(msg.addr, NodeAdded(info.node, info.addr, dict(info.resources))))

    def _on_node_died(self, msg: NodeDied, now: float, out: list[Command]) -> None:
        """Forget a dead node: tell subscribers, report objects it took with it, move actors.

        The directory and actor table are scanned once per death (a rare event).
        """
        if msg.node in self.rejoining:  # it did not come back after the GCS restarted
            self.nodes[msg.node] = self.rejoining.pop(msg.node)
        if self.health is not None:
            self.health.on_died(msg.node)
        info = self.nodes.get(msg.node)
        if info is None or not info.alive:
            return
        info.alive = False
        for sub in self.death_subscribers:
            out.append(Send(sub, NodeRemoved(msg.node), 64))
        lost: dict[Address, list[ObjectId]] = {}
        for oid, entry in self.objects.items():
            if msg.node in entry.locations:
                entry.locations.remove(msg.node)
                if not entry.locations and entry.owner >= 0:
                    lost.setdefault(entry.owner, []).append(oid)
        for owner in sorted(lost):
            out.append(Send(owner, ObjectLost(lost[owner]), 64 + 8 * len(lost[owner])))
        for actor_id, rec in list(self.actors.items()):
            on_node = rec.node == msg.node or (rec.node < 0 and rec.spec.node == msg.node)
            if on_node and rec.state != ACTOR_DEAD:
                reason = f"the node {msg.node} hosting the actor died"
                self._on_actor_died(ActorDied(actor_id, msg.node, reason), now, out)
            elif rec.node < 0 and rec.state != ACTOR_DEAD:
                self._check_placement(actor_id, rec, msg.node, out)
        self._reschedule_groups(msg.node, out)

    def _on_locate_object(self, msg: LocateObject, now: float, out: list[Command]) -> None:
        entry = self.objects.get(msg.oid)
        locations = list(entry.locations) if entry is not None else []
        out.append(Send(msg.reply_to, ObjectLocations(msg.oid, locations), 64))

    # -- object directory ---------------------------------------------------------------

    def _on_object_added(self, msg: ObjectAdded, now: float, out: list[Command]) -> None:
        info = self.nodes.get(msg.node)
        if info is not None and not info.alive:
            return  # a registration that left a node just before it died
        entry = self.objects.get(msg.oid)
        if entry is None:
            # A copy of an object nobody references any more: the owner's free overtook
            # the primary's registration, or a pull finished after the free. Drop it.
            if not msg.primary or msg.oid in self.freed_early:
                self.freed_early.discard(msg.oid)
                info = self.nodes.get(msg.node)
                if info is not None:
                    out.append(Send(info.addr, EvictObjects([msg.oid]), 72))
                return
            entry = self.objects[msg.oid] = DirectoryEntry(msg.size, msg.owner)
        if msg.node not in entry.locations:
            entry.locations.append(msg.node)

    def _on_object_removed(self, msg: ObjectRemoved, now: float, out: list[Command]) -> None:
        entry = self.objects.get(msg.oid)
        if entry is not None and msg.node in entry.locations:
            entry.locations.remove(msg.node)

    def _on_free_objects(self, msg: FreeObjects, now: float, out: list[Command]) -> None:
        by_node: dict[NodeId, list[ObjectId]] = {}
        for oid in msg.oids:
            entry = self.objects.pop(oid, None)
            if entry is None:
                self.freed_early.add(oid)
                continue
            for node in entry.locations:
                by_node.setdefault(node, []).append(oid)
        for node in sorted(by_node):
            info = self.nodes.get(node)
            if info is not None and info.alive:
                oids = by_node[node]
                out.append(Send(info.addr, EvictObjects(oids), 64 + 8 * len(oids)))

    def locations(self, oid: ObjectId) -> list[NodeId]:
        """The nodes known to hold a copy of ``oid`` (empty when unknown)."""
        entry = self.objects.get(oid)
        return list(entry.locations) if entry is not None else []

    # -- task table ---------------------------------------------------------------------

    def _on_task_events(self, msg: TaskEvents, now: float, out: list[Command]) -> None:
        tasks = self.tasks
        for task_id, state, node, at, spec, attempt, error_kind, error in msg.records:
            record = tasks.pop(task_id, None)
            if record is None:
                fn = spec.function
                name = spec.name or (fn if isinstance(fn, str) else "")
                record = TaskRecord(
                    state, node, at, name, spec.kind, spec.actor_id, attempt, spec.owner,
                    created_at=spec.submitted_at, resources=spec.resources,
                )  # fmt: skip
            elif (attempt, TASK_STATE_RANK[state]) < (
                record.attempt, TASK_STATE_RANK[record.state]
            ):  # fmt: skip
                tasks[task_id] = record  # stale: the table knows a later state already
                continue
            else:
                record.state, record.updated_at, record.attempt = state, at, attempt
                if node >= 0:  # an owner's record (-1) never hides where the task ran
                    record.node = node
            if node >= 0:
                record.reason, record.spills = spec.reason, spec.spills
            if state == "RUNNING":
                record.started_at = at
            elif state == "FINISHED" or state == "FAILED":
                record.ended_at = at
                record.error_kind = error_kind
                record.error = "" if error is None else str(error)
                if record.started_at < 0 and spec.started_at > 0 and node >= 0:
                    record.started_at = spec.started_at
            tasks[task_id] = record  # most recently updated last
        excess = len(tasks) - self.config.task_table_max
        if excess > 0:
            for task_id in self._oldest(excess):
                del tasks[task_id]
            self.tasks_dropped += excess

    def _oldest(self, n: int) -> list[TaskId]:
        it = iter(self.tasks)
        return [next(it) for _ in range(n)]

    # -- actor table --------------------------------------------------------------------

    def _publish(self, actor_id: int, rec: ActorRecord, out: list[Command]) -> None:
        for sub in rec.subscribers:
            update = ActorUpdate(
                actor_id, rec.state, rec.node, rec.addr, rec.error, 0, rec.name, rec.restarts
            )
            out.append(Send(sub, update, 128))

    def _on_register_actor(self, msg: RegisterActor, now: float, out: list[Command]) -> None:
        spec = msg.spec
        owner = spec.owner
        if msg.name:
            existing_id = self.actor_names.get(msg.name)
            existing = self.actors.get(existing_id) if existing_id else None
            if existing is not None and existing_id is not None and existing.state != ACTOR_DEAD:
                if msg.get_if_exists:
                    existing.subscribers.append(owner)
                    update = ActorUpdate(
                        spec.actor_id, existing.state, existing.node, existing.addr,
                        None, existing_id, msg.name,
                    )  # fmt: skip
                    out.append(Send(owner, update, 128))
                else:
                    error = f"an actor named {msg.name!r} already exists"
                    out.append(Send(owner, ActorUpdate(spec.actor_id, ACTOR_DEAD, error=error)))
                return
            self.actor_names[msg.name] = spec.actor_id
        rec = ActorRecord(spec, msg.name, ACTOR_PENDING, msg.max_restarts, [owner])
        self.actors[spec.actor_id] = rec
        if self.config.record_task_events:
            pending = (
                spec.task_id,
                "PENDING_NODE_ASSIGNMENT",
                -1,
                now,
                spec,
                spec.attempt,
                None,
                None,
            )
            self._on_task_events(TaskEvents(-1, [pending]), now, out)
        out.append(Send(self.gs_addr, SpillTask(spec, -1), spec.nbytes))

    def _on_subscribe_actor(self, msg: SubscribeActor, now: float, out: list[Command]) -> None:
        rec = self.actors.get(msg.actor_id)
        if rec is None:
            error = f"no actor {msg.actor_id:x} is known to the GCS"
            out.append(Send(msg.addr, ActorUpdate(msg.actor_id, ACTOR_DEAD, error=error)))
            return
        if msg.addr not in rec.subscribers:
            rec.subscribers.append(msg.addr)
        update = ActorUpdate(
            msg.actor_id, rec.state, rec.node, rec.addr, rec.error, 0, rec.name, rec.restarts
        )
        out.append(Send(msg.addr, update, 128))

    def _on_lookup_actor(self, msg: LookupActor, now: float, out: list[Command]) -> None:
        actor_id = self.actor_names.get(msg.name, 0)
        rec = self.actors.get(actor_id)
        if rec is None or rec.state == ACTOR_DEAD:
            out.append(Send(msg.reply_to, ActorLookupReply(msg.request_id, 0, ACTOR_DEAD)))
            return
        reply = ActorLookupReply(msg.request_id, actor_id, rec.state, rec.node, rec.addr, rec.spec)
        out.append(Send(msg.reply_to, reply, 256))

    def _on_actor_started(self, msg: ActorStarted, now: float, out: list[Command]) -> None:
        rec = self.actors.get(msg.actor_id)
        if rec is None or rec.state == ACTOR_DEAD:
            out.append(Send(msg.addr, KillActor(msg.actor_id, True), 64))  # killed meanwhile
            return
        rec.state, rec.node, rec.addr = ACTOR_ALIVE, msg.node, msg.addr
        self._publish(msg.actor_id, rec, out)

    def _check_placement(
        self, actor_id: int, rec: ActorRecord, dead: NodeId, out: list[Command]
    ) -> None:
        """An actor not started yet whose creation may be on its way to the `dead` node:
        the global scheduler placed it before it heard of the death, or will (its creation
        is not placed on a live node yet). It answers after its own ``NodeRemoved``, so
        a creation sent to the dead node is restarted (`_on_actor_died`), not lost."""
        placed = rec.spec.node
        info = self.nodes.get(placed)
        if placed >= 0 and info is not None and info.alive:
            return  # on its way to a live node
        check = CheckActorPlacement(actor_id, rec.spec.attempt, dead)
        out.append(Send(self.gs_addr, check, 64))

    def _on_actor_died(self, msg: ActorDied, now: float, out: list[Command]) -> None:
        rec = self.actors.get(msg.actor_id)
        if rec is None or rec.state == ACTOR_DEAD:
            return
        if msg.attempt >= 0 and (msg.attempt != rec.spec.attempt or rec.node >= 0):
            return  # about an earlier creation attempt, or it started since
        can_restart = rec.max_restarts < 0 or rec.restarts < rec.max_restarts
        if msg.killed or rec.no_restart or not can_restart:
            self._mark_dead(msg.actor_id, rec, msg.reason, out)
            return
        rec.restarts += 1
        rec.state, rec.node, rec.addr = ACTOR_RESTARTING, -1, -1
        self._publish(msg.actor_id, rec, out)
        rec.spec.attempt += 1
        rec.spec.since = now
        out.append(Send(self.gs_addr, SpillTask(rec.spec, -1), rec.spec.nbytes))

    def _on_actor_checkpointed(
        self, msg: ActorCheckpointed, now: float, out: list[Command]
    ) -> None:
        checkpoints.gcs_on_checkpointed(self, msg, now, out)

    def _on_kill_actor(self, msg: KillActor, now: float, out: list[Command]) -> None:
        rec = self.actors.get(msg.actor_id)
        if rec is None or rec.state == ACTOR_DEAD:
            return
        rec.no_restart = rec.no_restart or msg.no_restart
        if rec.state == ACTOR_ALIVE:
            out.append(Send(rec.addr, KillActor(msg.actor_id, msg.no_restart), 64))
        elif msg.no_restart:
            self._mark_dead(msg.actor_id, rec, "the actor was killed before it started", out)

    def _mark_dead(self, actor_id: int, rec: ActorRecord, reason: Any, out: list[Command]) -> None:
        rec.state, rec.node, rec.addr, rec.error = ACTOR_DEAD, -1, -1, reason
        if rec.name and self.actor_names.get(rec.name) == actor_id:
            del self.actor_names[rec.name]
        self._publish(actor_id, rec, out)
        for pg_id in self._pgs_of_actor.pop(actor_id, ()):  # its groups fate-share with it
            self._on_remove_pg(RemovePlacementGroup(pg_id), 0.0, out)

    # -- placement groups ---------------------------------------------------------------

    def _on_create_pg(self, msg: CreatePlacementGroup, now: float, out: list[Command]) -> None:
        rec = PlacementGroupRecord(
            msg.pg_id, msg.name, [dict(b) for b in msg.bundles], msg.strategy, msg.lifetime,
            msg.owner, PG_PENDING, [-1] * len(msg.bundles), "waiting to be scheduled", now,
            creator_actor=msg.creator_actor, subscribers=[msg.owner],
        )  # fmt: skip
        self.placement_groups[msg.pg_id] = rec
        if msg.name and msg.name in self.placement_group_names:  # names are unique, as in Ray
            rec.state, rec.reason = PG_REMOVED, f"name {msg.name!r} already exists"
            rec.bundle_nodes = [-1] * len(rec.bundles)
            self._publish_pg(rec, out)
            return
        if msg.name:
            self.placement_group_names[msg.name] = msg.pg_id
        if msg.creator_actor and msg.lifetime != "detached":
            self._pgs_of_actor.setdefault(msg.creator_actor, []).append(msg.pg_id)
        rec.attempts += 1
        schedule = SchedulePlacementGroup(msg.pg_id, rec.bundles, msg.strategy)
        out.append(Send(self.gs_addr, schedule, 128 + 32 * len(rec.bundles)))

    def _on_remove_pg(self, msg: RemovePlacementGroup, now: float, out: list[Command]) -> None:
        """Remove a group: the global scheduler returns its bundles; its actors die for good."""
        rec = self.placement_groups.get(msg.pg_id)
        if rec is None or rec.state == PG_REMOVED:
            return
        reason = f"placement group {msg.pg_id:x} was removed"
        rec.state, rec.reason = PG_REMOVED, reason
        rec.bundle_nodes = [-1] * len(rec.bundles)
        if rec.name and self.placement_group_names.get(rec.name) == msg.pg_id:
            del self.placement_group_names[rec.name]
        for actor in self.actors.values():
            strategy = actor.spec.strategy
            if isinstance(strategy, PlacementGroupStrategy) and strategy.pg_id == msg.pg_id:
                actor.no_restart = True  # the raylets kill them as they return the bundles
        out.append(Send(self.gs_addr, CancelPlacementGroup(msg.pg_id, reason), 64))
        self._publish_pg(rec, out)
        rec.subscribers = []
        self._removed_pgs.append(msg.pg_id)
        if len(self._removed_pgs) > REMOVED_PGS_KEPT:
            self.placement_groups.pop(self._removed_pgs.popleft(), None)

    def _on_subscribe_pg(
        self, msg: SubscribePlacementGroup, now: float, out: list[Command]
    ) -> None:
        rec = self.placement_groups.get(msg.pg_id)
        if rec is None:
            error = f"no placement group {msg.pg_id:x} is known to the GCS"
            out.append(Send(msg.addr, PlacementGroupUpdate(msg.pg_id, PG_REMOVED, [], error)))
            return
        if msg.addr not in rec.subscribers:
            rec.subscribers.append(msg.addr)
        update = PlacementGroupUpdate(msg.pg_id, rec.state, list(rec.bundle_nodes), rec.reason)
        out.append(Send(msg.addr, update, 128))

    def _on_pg_placed(self, msg: PlacementGroupPlaced, now: float, out: list[Command]) -> None:
        rec = self.placement_groups.get(msg.pg_id)
        if rec is None or rec.state == PG_REMOVED:
            return
        rec.state, rec.bundle_nodes, rec.reason = PG_CREATED, list(msg.bundle_nodes), ""
        if rec.placed_at < 0:
            rec.placed_at = now
        self._publish_pg(rec, out)

    def _on_pg_pending(self, msg: PlacementGroupPending, now: float, out: list[Command]) -> None:
        rec = self.placement_groups.get(msg.pg_id)
        if rec is not None and rec.state != PG_REMOVED:
            rec.reason = ("infeasible: " if msg.infeasible else "waiting for resources: ") + (
                msg.reason
            )

    def _reschedule_groups(self, node: int, out: list[Command]) -> None:
        """Bundles on a dead node are placed again; the others stay where they are."""
        for rec in self.placement_groups.values():
            if rec.state in (PG_PENDING, PG_REMOVED) or node not in rec.bundle_nodes:
                continue
            placed = {i: n for i, n in enumerate(rec.bundle_nodes) if n >= 0 and n != node}
            rec.bundle_nodes = [n if n != node else -1 for n in rec.bundle_nodes]
            rec.state = PG_RESCHEDULING
            rec.reason = f"node {node} holding some of its bundles died"
            rec.attempts += 1
            schedule = SchedulePlacementGroup(rec.pg_id, rec.bundles, rec.strategy, placed)
            out.append(Send(self.gs_addr, schedule, 128 + 32 * len(rec.bundles)))
            self._publish_pg(rec, out)

    def _publish_pg(self, rec: PlacementGroupRecord, out: list[Command]) -> None:
        error = rec.reason if rec.state == PG_REMOVED else ""
        for sub in rec.subscribers:
            update = PlacementGroupUpdate(rec.pg_id, rec.state, list(rec.bundle_nodes), error)
            out.append(Send(sub, update, 128))

    # -- public queries (what hosts may read; see runtime.core.interface) ---------------

    def actor_record(self, actor_id: int) -> ActorRecord | None:
        """The actor table's record of ``actor_id`` (read only), or None."""
        return self.actors.get(actor_id)

    def actor_named(self, name: str) -> int:
        """The id of the live actor registered under ``name`` (0: none)."""
        return self.actor_names.get(name, 0)

    def placement_group_named(self, name: str) -> int | None:
        """The id of the group named ``name`` that is not removed, or None."""
        return self.placement_group_names.get(name)

    def actor_table(self) -> Mapping[int, ActorRecord]:
        """The actor table, id -> record (a read-only view)."""
        return MappingProxyType(self.actors)

    def task_table(self) -> Mapping[TaskId, TaskRecord]:
        """The task table fed by the raylets' task events (a read-only view)."""
        return MappingProxyType(self.tasks)

    def node_table(self) -> Mapping[NodeId, NodeInfo]:
        """The node table, live and dead nodes (a read-only view)."""
        return MappingProxyType(self.nodes)

    def object_table(self) -> Mapping[ObjectId, DirectoryEntry]:
        """The object directory: where each stored object lives (a read-only view)."""
        return MappingProxyType(self.objects)

    def placement_group_table(self) -> Mapping[int, PlacementGroupRecord]:
        """The placement-group table, removed groups included (a read-only view)."""
        return MappingProxyType(self.placement_groups)
