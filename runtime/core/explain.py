"""Why a task, object, actor or placement group is where it is, from the core's own records.

`explain_task` combines what the task's owner knows (holding it for arguments or for its
actor, or its result), where its raylet keeps it (running, pulling inputs, queued for
resources, in an actor's queue), the global scheduler (spilled, not placed yet) and the
GCS task table (where a finished task ran and why: the reason of the placement decision,
`TaskSpec.reason`, and how many times it was spilled). The answer is an `Explanation`:
a readable sentence (`str(e)`, `e.text`) and the same facts as fields (`e.as_dict()`).
The real host (`runtime.explain`) and the simulator (`Simulation.explain`) both call
these functions, so a decision is explained the same way wherever it was made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from runtime.core.ids import RETURN_BITS, NodeId, ObjectId, TaskId
from runtime.core.raylet import ACTOR_FETCHING as ST_ACTOR_FETCHING
from runtime.core.raylet import ACTOR_QUEUED as ST_ACTOR_QUEUED
from runtime.core.raylet import ACTOR_RUNNING as ST_ACTOR_RUNNING
from runtime.core.raylet import AHEAD as ST_AHEAD
from runtime.core.raylet import AHEAD_CANCELLED as ST_AHEAD_CANCELLED
from runtime.core.raylet import BLOCKED as ST_BLOCKED
from runtime.core.raylet import FETCHING as ST_FETCHING
from runtime.core.raylet import QUEUED as ST_QUEUED
from runtime.core.raylet import RUNNING as ST_RUNNING
from runtime.core.resources import Resources, describe, fits
from runtime.core.task import ACTOR_METHOD, ERR_UNSCHEDULABLE, TaskSpec

__all__ = [
    "CAUSES",
    "Explanation",
    "explain_actor",
    "explain_object",
    "explain_placement_group",
    "explain_task",
]

WAITING_FOR_ARGUMENTS: Final = "waiting_for_arguments"
WAITING_FOR_ACTOR: Final = "waiting_for_actor"
IN_TRANSIT: Final = "in_transit"
AT_GLOBAL_SCHEDULER: Final = "at_global_scheduler"
FETCHING_ARGUMENTS: Final = "fetching_arguments"
QUEUED_FOR_RESOURCES: Final = "queued_for_resources"
ACTOR_QUEUE: Final = "actor_queue"
PREFETCHED: Final = "prefetched"
RUNNING: Final = "running"
FINISHED: Final = "finished"
FAILED: Final = "failed"
INFEASIBLE: Final = "infeasible"
UNKNOWN: Final = "unknown"
CAUSES = (
    WAITING_FOR_ARGUMENTS, WAITING_FOR_ACTOR, IN_TRANSIT, AT_GLOBAL_SCHEDULER,
    FETCHING_ARGUMENTS, QUEUED_FOR_RESOURCES, ACTOR_QUEUE, PREFETCHED, RUNNING, FINISHED,
    FAILED, INFEASIBLE, UNKNOWN,
)  # fmt: skip
"""Every `Explanation.cause`: why a task is pending, or that it runs or ended."""


@dataclass(slots=True)
class Explanation:
    """The answer to "why is this pending / why did it run there", readable and structured.

    `kind` is "task", "object", "actor" or "placement_group"; `state` Ray's state name
    (PENDING_ARGS_AVAIL, PENDING_NODE_ASSIGNMENT, RUNNING, FINISHED, FAILED for tasks;
    the actor or group state otherwise); `cause` one of `CAUSES`. `node` is where it
    runs or ran (-1: nowhere yet); `reason` the placement decision (e.g. "local: fits
    now", "spill: policy bottom_up"), `spills` how often it went to the global scheduler.
    """

    kind: str
    id: str
    name: str
    state: str
    cause: str
    text: str
    node: NodeId = -1
    reason: str = ""
    spills: int = 0
    attempt: int = 0
    waiting_for: list[str] = field(default_factory=list)
    """Objects (hex ids) it waits for: arguments not computed, or bytes not local yet."""
    needs: Resources | None = None
    available: Resources | None = None
    missing: Resources | None = None
    """What the node lacks for it now (needs minus available, where positive)."""
    ahead: int = 0
    """Tasks (or actor calls) ahead of it in its queue."""
    error_kind: str | None = None
    error: str = ""
    task: Explanation | None = None
    """For an object or actor: the explanation of its task (creation task for an actor)."""

    def __str__(self) -> str:
        return self.text

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain data (nested explanations included)."""
        return asdict(self)


def _hex(value: int) -> str:
    return f"{value:032x}"


def _label(spec_or_name: Any, task_id: int) -> str:
    if isinstance(spec_or_name, str):
        name = spec_or_name
    else:  # a simulated task's function is its workload label
        fn = spec_or_name.function
        name = spec_or_name.name or (fn if isinstance(fn, str) else "")
    return f"task {name or '?'} ({task_id:x})"


def _deficit(needs: Resources, available: Resources) -> Resources:
    return {k: v - available.get(k, 0.0) for k, v in needs.items() if v > available.get(k, 0.0)}


def _placed(spec: TaskSpec) -> str:
    parts = []
    if spec.reason:
        parts.append(spec.reason)
    if spec.spills:
        parts.append(f"spilled {spec.spills} time(s)")
    return f" ({'; '.join(parts)})" if parts else ""


# -- on a raylet ------------------------------------------------------------------------------


def _at_raylet(raylet: Any, spec: TaskSpec) -> Explanation | None:
    """Where `raylet` keeps `spec` (read from its lifecycle state), or None if it does not hold it."""
    tid, node = spec.task_id, raylet.node
    state = raylet.task_state(tid)
    if state is None:
        return None
    label = _label(spec, tid)
    base: dict[str, Any] = {"kind": "task", "id": _hex(tid), "name": spec.name, "node": node,
            "reason": spec.reason, "spills": spec.spills, "attempt": spec.attempt}  # fmt: skip
    if state in (ST_RUNNING, ST_BLOCKED, ST_ACTOR_RUNNING):
        lent = " (blocked in get/wait: its resources are lent out)" if tid in raylet.blocked else ""
        text = f"{label} is running on node {node}{_placed(spec)}{lent}"
        return Explanation(state="RUNNING", cause=RUNNING, text=text, **base)
    if state in (ST_AHEAD, ST_AHEAD_CANCELLED):
        text = (
            f"{label} was handed to a busy worker of node {node} ahead of free resources "
            f"and starts when that worker's current task ends{_placed(spec)}"
        )
        return Explanation(state="PENDING_NODE_ASSIGNMENT", cause=PREFETCHED, text=text, **base)
    if state in (ST_FETCHING, ST_ACTOR_FETCHING):
        missing = sorted(raylet.waiting[tid][1])
        ids = ", ".join(f"{oid:x}" for oid in missing)
        text = (
            f"{label} is on node {node}{_placed(spec)}, waiting for {len(missing)} argument(s) "
            f"to be fetched or restored into its object store: {ids}"
        )
        return Explanation(
            state="PENDING_NODE_ASSIGNMENT", cause=FETCHING_ARGUMENTS, text=text,
            waiting_for=[_hex(o) for o in missing], **base,
        )  # fmt: skip
    if state == ST_QUEUED:
        position = raylet.queues[raylet._shape(spec)].index(spec)
        available = {k: max(0.0, v) for k, v in raylet.available.items()}
        short = _deficit(spec.resources, available)
        why = (
            f"short of {describe(short)}"
            if short
            else "its resources are free but earlier tasks of its shape go first"
        )
        text = (
            f"{label} is queued on node {node} for resources{_placed(spec)}: needs "
            f"{describe(spec.resources)}, available {describe(available)} ({why}); "
            f"{position} task(s) ahead of it"
        )
        return Explanation(
            state="PENDING_NODE_ASSIGNMENT", cause=QUEUED_FOR_RESOURCES, text=text,
            needs=dict(spec.resources), available=available, missing=short,
            ahead=position, **base,
        )  # fmt: skip
    actor = raylet.actors[spec.actor_id]
    if state == ST_ACTOR_QUEUED:
        position = actor.queue.index(spec)
        text = (
            f"{label} is in the queue of actor {spec.actor_id:x} on node {node}: "
            f"{len(actor.inflight)} call(s) running or sent, {position} queued "
            "ahead of it (an actor runs its calls in order)"
        )
        return Explanation(
            state="SUBMITTED_TO_WORKER", cause=ACTOR_QUEUE, text=text,
            ahead=position + len(actor.inflight), **base,
        )  # fmt: skip
    text = (  # ACTOR_EARLY
        f"{label} reached actor {spec.actor_id:x} on node {node} before an "
        "earlier call of the same caller; it waits for that call to arrive"
    )
    return Explanation(state="SUBMITTED_TO_WORKER", cause=ACTOR_QUEUE, text=text, **base)


# -- tasks ------------------------------------------------------------------------------------


def explain_task(
    task_id: TaskId,
    owners: Iterable[Any],
    raylets: Mapping[NodeId, Any],
    gcs: Any = None,
    global_scheduler: Any = None,
) -> Explanation:
    """Explain task `task_id` from its owner, its raylet, the global scheduler and the GCS.

    `owners` are the core owners to look in (the task's owner among them), `raylets`
    the raylets by node. Works for tasks pending (on what), running (where and why
    there) and ended (how, and where they ran, from the GCS task table).
    """
    tid = task_id
    for owner in owners:
        spec = owner.pending.get(tid)
        if spec is not None:
            return _pending(owner, spec, raylets, global_scheduler)
    for owner in owners:
        found = _ended_at_owner(owner, tid, gcs)
        if found is not None:
            return found
    record = gcs.tasks.get(tid) if gcs is not None else None
    if record is not None:
        return _from_record(tid, record)
    text = f"task {tid:x} is unknown: not pending at any owner, and not in the GCS task table"
    return Explanation("task", _hex(tid), "", "NIL", UNKNOWN, text)


def _pending(
    owner: Any, spec: TaskSpec, raylets: Mapping[NodeId, Any], global_scheduler: Any
) -> Explanation:
    tid, label = spec.task_id, _label(spec, spec.task_id)
    base: dict[str, Any] = {
        "kind": "task",
        "id": _hex(tid),
        "name": spec.name,
        "attempt": spec.attempt,
    }
    waiting = owner.waiting_arguments(tid)
    if waiting is not None:
        ids = ", ".join(f"{oid:x}" for oid in waiting)
        text = f"{label} is held by its owner until {len(waiting)} argument(s) are computed: {ids}"
        return Explanation(
            state="PENDING_ARGS_AVAIL", cause=WAITING_FOR_ARGUMENTS, text=text,
            waiting_for=[_hex(o) for o in waiting], **base,
        )  # fmt: skip
    if spec.kind == ACTOR_METHOD:
        handle = owner.actor_state(spec.actor_id)
        if handle is not None and handle.unsent and any(s is spec for s in handle.unsent):
            text = (
                f"{label} waits at its owner for actor {spec.actor_id:x} to start "
                f"(actor state {handle.state}) or for an earlier call's arguments"
            )
            return Explanation(
                state="PENDING_ARGS_AVAIL", cause=WAITING_FOR_ACTOR, text=text, **base
            )
        node = handle.node if handle is not None else -1
        raylet = raylets.get(node)
        found = _at_raylet(raylet, spec) if raylet is not None else None
        if found is not None:
            return found
        text = f"{label} was sent to actor {spec.actor_id:x} on node {node} and is on its way"
        return Explanation(
            state="SUBMITTED_TO_WORKER", cause=IN_TRANSIT, text=text, node=node, **base
        )
    raylet = raylets.get(spec.node)
    if raylet is not None:
        found = _at_raylet(raylet, spec)
        if found is not None:
            return found
    parked = global_scheduler is not None and any(s is spec for s in global_scheduler.parked)
    if parked:
        text = f"{label} waits at the global scheduler for a node to register"
        return Explanation(
            state="PENDING_NODE_ASSIGNMENT", cause=INFEASIBLE, text=text,
            reason=spec.reason, spills=spec.spills, **base,
        )  # fmt: skip
    if spec.reason.startswith("spill"):
        spills = spec.spills + 1  # the one in progress counts
        text = (
            f"{label} was spilled by node {spec.node if spec.node >= 0 else owner.node} "
            f"({spec.reason}) and waits for the global scheduler to place it"
            + (f" (spill {spills})" if spills > 1 else "")
        )
        return Explanation(
            state="PENDING_NODE_ASSIGNMENT", cause=AT_GLOBAL_SCHEDULER, text=text,
            reason=spec.reason, spills=spills, **base,
        )  # fmt: skip
    where = f"node {spec.node}" if spec.node >= 0 else "its local raylet"
    text = f"{label} was submitted and is on its way to {where} (no placement decision yet)"
    return Explanation(
        state="PENDING_NODE_ASSIGNMENT", cause=IN_TRANSIT, text=text, node=spec.node,
        reason=spec.reason, spills=spec.spills, **base,
    )  # fmt: skip


def _ended_at_owner(owner: Any, tid: TaskId, gcs: Any) -> Explanation | None:
    """A task of `owner` that ended: its first return value's state says how."""
    obj = owner.objects.get((tid << RETURN_BITS) | 1)
    if obj is None or obj.owner >= 0 or obj.state == 0:
        return None
    record = gcs.tasks.get(tid) if gcs is not None else None
    spec = obj.lineage
    name = spec.name if spec is not None else (record.name if record is not None else "")
    if obj.state == 2:  # FAILED
        return _failed(tid, name, obj.error_kind, obj.error, record)
    node = record.node if record is not None and record.node >= 0 else obj.node
    reason = spec.reason if spec is not None else (record.reason if record is not None else "")
    spills = spec.spills if spec is not None else (record.spills if record is not None else 0)
    where = f"stored on node {obj.node}" if obj.stored else "held inline by its owner"
    ran = f" on node {node}" if node >= 0 else ""
    why = f" ({reason}" + (f"; spilled {spills} time(s))" if spills else ")") if reason else ""
    text = f"{_label(name, tid)} finished{ran}{why}; its result is {obj.size} bytes, {where}"
    return Explanation("task", _hex(tid), name, "FINISHED", FINISHED, text, node, reason, spills)


def _failed(tid: TaskId, name: str, kind: Any, error: Any, record: Any) -> Explanation:
    node = record.node if record is not None else -1
    cause = INFEASIBLE if kind == ERR_UNSCHEDULABLE else FAILED
    first = str(error).strip().splitlines()[0] if error else ""
    if cause == INFEASIBLE:
        text = f"{_label(name, tid)} is infeasible: {first}"
    else:
        text = f"{_label(name, tid)} failed ({kind}): {first}"
    return Explanation(
        "task", _hex(tid), name, "FAILED", cause, text, node, error_kind=kind, error=first
    )


def _from_record(tid: TaskId, record: Any) -> Explanation:
    if record.state == "FAILED":
        return _failed(tid, record.name, record.error_kind, record.error, record)
    where = f" on node {record.node}" if record.node >= 0 else ""
    why = f" ({record.reason})" if record.reason else ""
    state = record.state
    if state == "FINISHED":
        text = f"{_label(record.name, tid)} finished{where}{why}"
    else:
        text = f"{_label(record.name, tid)} is {state}{where}{why} (from the GCS task table)"
    cause = {"FINISHED": FINISHED, "RUNNING": RUNNING}.get(state, UNKNOWN)
    return Explanation(
        "task", _hex(tid), record.name, state, cause, text, record.node, record.reason,
        record.spills, record.attempt,
    )  # fmt: skip


# -- objects, actors, placement groups ----------------------------------------------------------


def explain_object(
    oid: ObjectId,
    owners: Iterable[Any],
    raylets: Mapping[NodeId, Any],
    gcs: Any = None,
    global_scheduler: Any = None,
) -> Explanation:
    """Explain object `oid` through the task computing it (a `put` value is just stored)."""
    owners = list(owners)
    tid = oid >> RETURN_BITS
    known = tid in gcs_tasks(gcs) or any(tid in o.pending for o in owners)
    for owner in owners:
        obj = owner.objects.get(oid)
        if obj is None or obj.owner >= 0 or known or obj.state != 1 or obj.lineage is not None:
            continue
        # ready, and no task of that id is known: a value the program put
        where = f"stored on node {obj.node}" if obj.stored else "held inline by its owner"
        text = f"object {oid:x} is ready ({obj.size} bytes, {where})"
        node = obj.node if obj.stored else -1
        return Explanation("object", _hex(oid), "", "FINISHED", FINISHED, text, node)
    task = explain_task(oid >> RETURN_BITS, owners, raylets, gcs, global_scheduler)
    text = f"object {oid:x}: {task.text}"
    return Explanation(
        "object", _hex(oid), task.name, task.state, task.cause, text, task.node, task.reason,
        task.spills, task.attempt, list(task.waiting_for), task.needs, task.available,
        task.missing, task.ahead, task.error_kind, task.error, task,
    )  # fmt: skip


def gcs_tasks(gcs: Any) -> Mapping[TaskId, Any]:
    """The GCS task table, or an empty one without a GCS."""
    return gcs.tasks if gcs is not None else {}


def explain_actor(
    actor_id: int,
    owners: Iterable[Any],
    raylets: Mapping[NodeId, Any],
    gcs: Any,
    global_scheduler: Any = None,
) -> Explanation:
    """Explain an actor from the GCS actor table: pending (why), alive where, or dead (why)."""
    rec = gcs.actors.get(actor_id)
    ident = _hex(actor_id)
    if rec is None:
        if any(o.actor_state(actor_id) is not None for o in owners):
            text = (
                f"actor {actor_id:x} is being registered with the GCS (its request is on the way)"
            )
            return Explanation("actor", ident, "", "PENDING_CREATION", IN_TRANSIT, text)
        text = f"actor {actor_id:x} is not in the GCS actor table"
        return Explanation("actor", ident, "", "NIL", UNKNOWN, text)
    spec = rec.spec
    label = f"actor {spec.name or '?'} ({actor_id:x})"
    if rec.state == "DEAD":
        first = str(rec.error).strip().splitlines()[0] if rec.error else "no reason recorded"
        cause = INFEASIBLE if "no node" in first or "unschedulable" in first else FAILED
        text = f"{label} is dead: {first}"
        return Explanation("actor", ident, spec.name, "DEAD", cause, text, error=first)
    if rec.state == "ALIVE":
        placed = f" ({spec.reason})" if spec.reason else ""  # actors are placed by the GCS
        text = f"{label} is alive on node {rec.node}{placed}"
        if rec.restarts:
            text += f", after {rec.restarts} restart(s)"
        return Explanation(
            "actor", ident, spec.name, "ALIVE", RUNNING, text, rec.node, spec.reason, spec.spills
        )
    creation = _creation(spec, raylets, global_scheduler)
    state = "PENDING_CREATION" if rec.state == "PENDING" else rec.state
    text = f"{label} is {state.lower().replace('_', ' ')}: {creation.text}"
    return Explanation(
        "actor", ident, spec.name, state, creation.cause, text, creation.node, spec.reason,
        spec.spills, spec.attempt, list(creation.waiting_for), creation.needs,
        creation.available, creation.missing, creation.ahead, task=creation,
    )  # fmt: skip


def _creation(spec: TaskSpec, raylets: Mapping[NodeId, Any], global_scheduler: Any) -> Explanation:
    """Where an actor's creation task is (it travels GCS -> global scheduler -> raylet)."""
    raylet = raylets.get(spec.node)
    if raylet is not None:
        found = _at_raylet(raylet, spec)
        if found is not None:
            if found.cause == RUNNING:
                found.text = found.text.replace("is running", "runs its constructor", 1)
            return found
    label = _label(spec, spec.task_id)
    if global_scheduler is not None and any(s is spec for s in global_scheduler.parked):
        text = f"{label} waits at the global scheduler for a node to register"
        return Explanation("task", _hex(spec.task_id), spec.name, "PENDING_NODE_ASSIGNMENT",
                           INFEASIBLE, text)  # fmt: skip
    feasible = [n for n, r in raylets.items() if fits(spec.resources, r.total)]
    if raylets and not feasible:
        text = f"no node can ever fit its request {describe(spec.resources)}"
        return Explanation("task", _hex(spec.task_id), spec.name, "PENDING_NODE_ASSIGNMENT",
                           INFEASIBLE, text, needs=dict(spec.resources))  # fmt: skip
    text = (
        f"its creation task {describe(spec.resources)} is with the GCS / global scheduler, "
        "waiting to be placed"
    )
    return Explanation("task", _hex(spec.task_id), spec.name, "PENDING_NODE_ASSIGNMENT",
                       AT_GLOBAL_SCHEDULER, text, needs=dict(spec.resources))  # fmt: skip


def explain_placement_group(pg_id: int, gcs: Any) -> Explanation:
    """Explain a placement group from the GCS placement-group table (`Gcs.placement_groups`).

    A PENDING group says which bundle could not be placed and why (the record's `reason`,
    e.g. infeasible: no node set can ever hold it); a CREATED one where its bundles are.
    """
    rec = gcs.placement_groups.get(pg_id)
    ident = f"{pg_id:x}"
    if rec is None:
        text = f"placement group {ident} is not in the GCS placement-group table"
        return Explanation("placement_group", ident, "", "NIL", UNKNOWN, text)
    label = f"placement group {rec.name or ident}"
    bundles = ", ".join(describe(dict(b)) for b in rec.bundles)
    parts = [f"{label} ({rec.strategy}, bundles {bundles}) is {rec.state}"]
    if rec.state == "CREATED" and rec.bundle_nodes:
        parts.append(f"its bundles are on nodes {list(rec.bundle_nodes)}")
    if rec.reason:
        parts.append(rec.reason)
    cause = {"CREATED": RUNNING, "REMOVED": FINISHED, "PENDING": QUEUED_FOR_RESOURCES,
             "RESCHEDULING": QUEUED_FOR_RESOURCES}.get(rec.state, UNKNOWN)  # fmt: skip
    if rec.state == "PENDING" and rec.reason.startswith("infeasible"):
        cause = INFEASIBLE
    nodes = list(rec.bundle_nodes)
    node = nodes[0] if nodes and all(n == nodes[0] for n in nodes) else -1
    return Explanation(
        "placement_group", ident, rec.name or "", rec.state, cause, "; ".join(parts), node,
        rec.reason, attempt=rec.attempts,
    )  # fmt: skip
