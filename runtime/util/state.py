"""Ray's `ray.util.state` API over twinray's GCS tables: list tasks, actors, objects, nodes, groups.

Every answer is read from the control plane's own tables, on the node's loop thread (so
it is one consistent snapshot): the GCS task table (`Gcs.tasks`, fed by raylets and
owners, which are asked to flush their pending task events first), the actor table
(`Gcs.actors`), the node table (`Gcs.nodes`), the object directory (`Gcs.objects`)
with the owners' reference tables (`Owner.objects`), and the placement-group table
(`Gcs.placement_groups`).

Rows are plain dicts with Ray's field names (`task_id`, `name`, `state`, `node_id`,
`actor_id`, `type`, `error_type`, ...); ids are hex strings as elsewhere in twinray.
`filters` take Ray's predicates, `(key, "=" | "!=", value)`, ANDed, matching strings
case-insensitively as Ray does; `limit` (Ray's default: 100) caps the rows returned.
A key that is not a filterable column, or another predicate, raises `StateApiError`
(a `ValueError`, as Ray raises).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from runtime.context import JOB_ID
from runtime.core.ids import task_of
from runtime.core.task import (
    ACTOR_CREATION,
    ACTOR_METHOD,
    ERR_ACTOR_DIED,
    ERR_APPLICATION,
    ERR_CANCELLED,
    ERR_DEPENDENCY,
    ERR_NODE_DIED,
    ERR_OBJECT_LOST,
    ERR_STORE_FULL,
    ERR_UNSCHEDULABLE,
    ERR_WORKER_DIED,
)

__all__ = [
    "DEFAULT_LIMIT",
    "ClusterView",
    "StateApiError",
    "list_actors",
    "list_nodes",
    "list_objects",
    "list_placement_groups",
    "list_tasks",
    "summarize_tasks",
]

DEFAULT_LIMIT = 100
"""Rows returned when `limit` is not given (Ray's default)."""

TASK_TYPES = {0: "NORMAL_TASK", ACTOR_CREATION: "ACTOR_CREATION_TASK", ACTOR_METHOD: "ACTOR_TASK"}
"""Core task kind -> Ray's task type name."""

ERROR_TYPES = {
    ERR_APPLICATION: "TASK_EXECUTION_EXCEPTION",
    ERR_WORKER_DIED: "WORKER_DIED",
    ERR_NODE_DIED: "NODE_DIED",
    ERR_UNSCHEDULABLE: "TASK_UNSCHEDULABLE_ERROR",
    ERR_STORE_FULL: "OUT_OF_MEMORY",
    ERR_DEPENDENCY: "DEPENDENCY_RESOLUTION_FAILED",
    ERR_CANCELLED: "TASK_CANCELLED",
    ERR_ACTOR_DIED: "ACTOR_DIED",
    ERR_OBJECT_LOST: "OBJECT_LOST",
}
"""Core error kind -> Ray's `error_type` name."""

TASK_COLUMNS = frozenset(
    {"task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type",
     "func_or_class_name", "parent_task_id", "node_id", "worker_id", "worker_pid",
     "error_type", "language", "placement_group_id"}
)  # fmt: skip
ACTOR_COLUMNS = frozenset(
    {"actor_id", "class_name", "state", "job_id", "name", "node_id", "pid", "ray_namespace",
     "placement_group_id", "repr_name"}
)  # fmt: skip
OBJECT_COLUMNS = frozenset(
    {"object_id", "object_size", "task_status", "attempt_number", "reference_type",
     "call_site", "type", "pid", "ip"}
)  # fmt: skip
NODE_COLUMNS = frozenset({"node_id", "node_ip", "is_head_node", "state", "node_name"})
PLACEMENT_GROUP_COLUMNS = frozenset(
    {"placement_group_id", "name", "creator_job_id", "state", "is_detached"}
)
"""Filterable columns per resource (Ray's `filterable=True` state columns)."""

Filter = tuple[str, str, Any]
T = TypeVar("T")


class StateApiError(ValueError):
    """A state API call was given a filter or limit it cannot apply."""


@dataclass(slots=True)
class ClusterView:
    """What the state API reads: the core components, plus host facts the core does not hold.

    `owners` maps an owner's address to its `Owner` and `owner_pids` to the process it
    belongs to (the driver or a worker); `actor_pids` maps an actor id to its worker's pid.
    """

    gcs: Any
    raylets: Sequence[Any]
    owners: dict[int, Any]
    now: float
    owner_pids: dict[int, int] = field(default_factory=dict)
    driver_addr: int = -1
    actor_pids: dict[int, int] = field(default_factory=dict)
    actor_tokens: dict[int, int] = field(default_factory=dict)
    """Objects an actor's handles keep alive (token object id -> actor id)."""
    ip: str = "127.0.0.1"


# -- filters --------------------------------------------------------------------------------


def _equal(value: Any, wanted: Any) -> bool:
    if isinstance(value, str) and isinstance(wanted, str):
        return value.lower() == wanted.lower()
    if isinstance(value, bool) and isinstance(wanted, str):
        return value == (wanted.strip().lower() in ("true", "1", "yes"))
    if isinstance(value, int) and isinstance(wanted, str):
        try:
            return value == int(wanted)
        except ValueError:
            return False
    return bool(value == wanted)


def _not_equal(value: Any, wanted: Any) -> bool:
    return not _equal(value, wanted)


_PREDICATES: dict[str, Callable[[Any, Any], bool]] = {"=": _equal, "!=": _not_equal}


def _check(filters: Iterable[Filter] | None, columns: frozenset[str], what: str) -> list[Filter]:
    """Validate `filters` against the filterable `columns` of `what`; return them normalised."""
    checked: list[Filter] = []
    for item in filters or ():
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise StateApiError(f"a {what} filter is a (key, predicate, value) tuple, got {item!r}")
        key, predicate, value = item
        if predicate not in _PREDICATES:
            raise StateApiError(
                f"Unsupported filter predicate {predicate!r} is given. Available predicates: =, !="
            )
        column = str(key).lower()
        if column not in columns:
            raise StateApiError(
                f"The given filter column {key!r} is not supported for {what}. "
                f"Supported filter columns: {sorted(columns)}"
            )
        checked.append((column, predicate, value))
    return checked


def _check_limit(limit: Any) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise StateApiError(f"limit must be a non-negative integer, got {limit!r}")


def _select(
    rows: Iterable[dict[str, Any]], filters: list[Filter], limit: int
) -> list[dict[str, Any]]:
    chosen: list[dict[str, Any]] = []
    for row in rows:
        if len(chosen) >= limit:
            break
        if all(k in row and _PREDICATES[p](row[k], v) for k, p, v in filters):
            chosen.append(row)
    return chosen


# -- rows from the core's tables ---------------------------------------------------------------


def _hex(value: int, width: int = 32) -> str:
    return f"{value:0{width}x}"


def _node_hex(node: int) -> str | None:
    return _hex(node, 56) if node >= 0 else None


def ray_name(name: str) -> str:
    """Ray's name for a function or method: without the `<locals>` path of a qualname."""
    return name.rsplit("<locals>.", 1)[-1]


def task_rows(view: ClusterView) -> list[dict[str, Any]]:
    """One row per task in the GCS task table (most recently updated last)."""
    rows = []
    for task_id, rec in view.gcs.task_table().items():
        name = ray_name(rec.name)
        if rec.kind == ACTOR_CREATION and "." not in name:
            name += ".__init__"  # Ray names a constructor's task after the method
        rows.append(
            {
                "task_id": _hex(task_id),
                "attempt_number": rec.attempt,
                "name": name,
                "state": rec.state,
                "job_id": JOB_ID,
                "actor_id": _hex(rec.actor_id) if rec.actor_id else None,
                "type": TASK_TYPES.get(rec.kind, "NORMAL_TASK"),
                "func_or_class_name": name,
                "parent_task_id": None,
                "node_id": _node_hex(rec.node),
                "worker_id": None,
                "worker_pid": view.actor_pids.get(rec.actor_id) if rec.actor_id else None,
                "error_type": ERROR_TYPES.get(rec.error_kind) if rec.error_kind else None,
                "error_message": rec.error or None,
                "language": "PYTHON",
                "required_resources": dict(rec.resources or {}),
                "placement_group_id": None,
                "creation_time_ms": round(rec.created_at * 1000),
                "start_time_ms": round(rec.started_at * 1000) if rec.started_at >= 0 else None,
                "end_time_ms": round(rec.ended_at * 1000) if rec.ended_at >= 0 else None,
            }
        )
    return rows


_ACTOR_STATES = {"PENDING": "PENDING_CREATION"}
"""Core actor state -> Ray's name where they differ (ALIVE, RESTARTING, DEAD are shared)."""


def actor_rows(view: ClusterView) -> list[dict[str, Any]]:
    """One row per actor in the GCS actor table."""
    rows = []
    for actor_id, rec in view.gcs.actor_table().items():
        class_name = rec.spec.name  # Ray shows the class's qualified name
        rows.append(
            {
                "actor_id": _hex(actor_id),
                "class_name": class_name,
                "state": _ACTOR_STATES.get(rec.state, rec.state),
                "job_id": JOB_ID,
                "name": rec.name or "",
                "node_id": _node_hex(rec.node),
                "pid": view.actor_pids.get(actor_id),
                "ray_namespace": None,
                "required_resources": dict(rec.spec.resources),
                "death_cause": {"error_message": str(rec.error)} if rec.error else None,
                "is_detached": False,
                "placement_group_id": None,
                "repr_name": "",
                "num_restarts": rec.restarts,
            }
        )
    return rows


def node_rows(view: ClusterView) -> list[dict[str, Any]]:
    """One row per node in the GCS node table."""
    rows = []
    for node, info in sorted(view.gcs.node_table().items()):
        resources = dict(info.resources)
        resources["object_store_memory"] = float(info.store_capacity)
        rows.append(
            {
                "node_id": _hex(node, 56),
                "node_ip": view.ip,
                "is_head_node": node == 0,
                "state": "ALIVE" if info.alive else "DEAD",
                "state_message": None,
                "node_name": view.ip,
                "resources_total": resources,
                "labels": {},
                "start_time_ms": round(info.registered_at * 1000),
                "end_time_ms": None,
            }
        )
    return rows


_TASK_STATUS = {1: "FINISHED", 2: "FAILED", 3: "FINISHED"}
"""Owner object state (READY, FAILED, FREED) -> Ray's `task_status` of an object's task."""


def reference_types(obj: Any, contained: set[int], oid: int, token: bool = False) -> list[str]:
    """Ray's reference types an owner's entry for one object stands for."""
    if token:
        return ["ACTOR_HANDLE"]
    kinds = []
    if obj.refs > 0:
        kinds.append("LOCAL_REFERENCE")
    if obj.task_refs > 0:
        kinds.append("USED_BY_PENDING_TASK")
    if oid in contained:
        kinds.append("CAPTURED_IN_OBJECT")
    return kinds or ["UNKNOWN_STATUS"]


def object_rows(view: ClusterView) -> list[dict[str, Any]]:
    """One row per (object, kind of reference) held by an owner, sized from the directory.

    An owner's own objects and the ones it borrowed both appear, each under the process
    holding the reference, as in Ray (`type` DRIVER or WORKER).
    """
    directory = view.gcs.object_table()
    rows = []
    for addr, owner in sorted(view.owners.items()):
        objects = owner.object_table()
        contained = {i for o in objects.values() if o.contained for i in o.contained}
        pid = view.owner_pids.get(addr)
        kind = "DRIVER" if addr == view.driver_addr else "WORKER"
        for oid, obj in list(objects.items()):
            entry = directory.get(oid)
            size = entry.size if entry is not None else obj.size
            if obj.state == 0:
                held = owner.waiting_arguments(task_of(oid)) is not None
                status = "WAITING_FOR_DEPENDENCIES" if held else "SCHEDULED"
            else:
                status = _TASK_STATUS.get(obj.state, "NIL")
            spec = owner.pending_task(task_of(oid))
            attempt = spec.attempt if spec is not None else 0
            token = oid in view.actor_tokens
            for ref_type in reference_types(obj, contained, oid, token):
                rows.append(
                    {
                        "object_id": _hex(oid),
                        "object_size": size if obj.state != 0 else -1,
                        "task_status": status,
                        "attempt_number": attempt,
                        "reference_type": ref_type,
                        "call_site": "disabled",
                        "type": kind,
                        "pid": pid,
                        "ip": view.ip,
                        "owner_id": _hex(addr),
                        "borrowed": obj.owner >= 0,
                        "stored": obj.stored,
                        "node_id": _node_hex(obj.node) if obj.stored else None,
                    }
                )
    return rows


def placement_group_rows(view: ClusterView) -> list[dict[str, Any]]:
    """One row per placement group in the GCS placement-group table (`Gcs.placement_groups`).

    Removed groups stay in the table (state REMOVED) for a while, as in Ray; `stats`
    carries the scheduling state and, for a PENDING group, why it is not placed.
    """
    rows = []
    for pg_id, rec in sorted(view.gcs.placement_group_table().items()):
        nodes = list(rec.bundle_nodes) or [-1] * len(rec.bundles)
        bundles = [
            {"bundle_id": f"{pg_id:x}:{i}", "unit_resources": dict(b), "node_id": _node_hex(n)}
            for i, (b, n) in enumerate(zip(rec.bundles, nodes, strict=False))
        ]
        infeasible = rec.state == "PENDING" and rec.reason.startswith("infeasible")
        rows.append(
            {
                "placement_group_id": f"{pg_id:x}",  # as `PlacementGroupID.hex()` and Ray's table
                "name": rec.name or "",
                "creator_job_id": JOB_ID,
                "state": rec.state,
                "bundles": bundles,
                "is_detached": rec.lifetime == "detached",
                "stats": {
                    "scheduling_state": "INFEASIBLE" if infeasible else rec.state,
                    "scheduling_attempt": rec.attempts,
                    "reason": rec.reason,
                },
                "strategy": rec.strategy,
            }
        )
    return rows


# -- the public API ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Resource:
    """One listable table: how to build its rows, what filters and plain listings show."""

    what: str
    build: Callable[[ClusterView], list[dict[str, Any]]]
    filterable: frozenset[str]
    base: tuple[str, ...]
    """The columns of a listing without `detail` (Ray's base columns), in order."""


_TASKS = _Resource(
    "tasks", task_rows, TASK_COLUMNS,
    ("task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type",
     "func_or_class_name", "parent_task_id", "node_id", "worker_id", "worker_pid",
     "error_type"),
)  # fmt: skip
_ACTORS = _Resource(
    "actors", actor_rows, ACTOR_COLUMNS,
    ("actor_id", "class_name", "state", "job_id", "name", "node_id", "pid", "ray_namespace"),
)  # fmt: skip
_OBJECTS = _Resource(
    "objects", object_rows, OBJECT_COLUMNS,
    ("object_id", "object_size", "task_status", "attempt_number", "reference_type",
     "call_site", "type", "pid", "ip"),
)  # fmt: skip
_NODES = _Resource(
    "nodes", node_rows, NODE_COLUMNS,
    ("node_id", "node_ip", "is_head_node", "state", "state_message", "node_name",
     "resources_total", "labels"),
)  # fmt: skip
_GROUPS = _Resource(
    "placement groups", placement_group_rows, PLACEMENT_GROUP_COLUMNS,
    ("placement_group_id", "name", "creator_job_id", "state"),
)  # fmt: skip


def _read(build: Callable[[ClusterView], T]) -> T:
    """Run `build` on the running node's loop thread, over fresh task events."""
    from runtime.api import _require_node

    return _require_node().inspect(build)  # type: ignore[no-any-return]


def _check_address(address: str | None) -> None:
    if address not in (None, "auto", "local"):
        raise StateApiError(
            f"twinray's state API reads the runtime of this process; address={address!r} "
            "cannot be reached (use None)"
        )


def _list(
    resource: _Resource,
    filters: Iterable[Filter] | None,
    limit: int,
    detail: bool,
    address: str | None,
) -> list[dict[str, Any]]:
    _check_address(address)
    checked = _check(filters, resource.filterable, resource.what)
    _check_limit(limit)
    rows = _select(_read(resource.build), checked, limit)
    if detail:
        return rows
    return [{k: row[k] for k in resource.base} for row in rows]


def list_tasks(
    address: str | None = None,
    filters: Sequence[Filter] | None = None,
    limit: int = DEFAULT_LIMIT,
    detail: bool = False,
) -> list[dict[str, Any]]:
    """Tasks in the GCS task table, e.g. `list_tasks(filters=[("state", "=", "RUNNING")])`.

    States are Ray's: PENDING_ARGS_AVAIL (waiting for arguments at the owner),
    PENDING_NODE_ASSIGNMENT (waiting for a node / resources), SUBMITTED_TO_WORKER (an
    actor call on its way to the actor), RUNNING, FINISHED, FAILED (`error_type` says
    why). `detail=True` adds Ray's detail columns (`error_message`, `required_resources`,
    times in ms). `address` must be None: the state read is this process's runtime.
    """
    return _list(_TASKS, filters, limit, detail, address)


def list_actors(
    address: str | None = None,
    filters: Sequence[Filter] | None = None,
    limit: int = DEFAULT_LIMIT,
    detail: bool = False,
) -> list[dict[str, Any]]:
    """Actors in the GCS actor table (state PENDING_CREATION, ALIVE, RESTARTING or DEAD)."""
    return _list(_ACTORS, filters, limit, detail, address)


def list_objects(
    address: str | None = None,
    filters: Sequence[Filter] | None = None,
    limit: int = DEFAULT_LIMIT,
    detail: bool = False,
) -> list[dict[str, Any]]:
    """Objects referenced by the driver and workers, one row per kind of reference.

    `reference_type` is Ray's: LOCAL_REFERENCE (a program handle), USED_BY_PENDING_TASK
    (an argument of a task not finished), CAPTURED_IN_OBJECT (a ref inside another
    object's value), ACTOR_HANDLE (the object an actor's handles keep alive).
    """
    return _list(_OBJECTS, filters, limit, detail, address)


def list_nodes(
    address: str | None = None,
    filters: Sequence[Filter] | None = None,
    limit: int = DEFAULT_LIMIT,
    detail: bool = False,
) -> list[dict[str, Any]]:
    """Nodes in the GCS node table."""
    return _list(_NODES, filters, limit, detail, address)


def list_placement_groups(
    address: str | None = None,
    filters: Sequence[Filter] | None = None,
    limit: int = DEFAULT_LIMIT,
    detail: bool = False,
) -> list[dict[str, Any]]:
    """Placement groups in the GCS placement-group table."""
    return _list(_GROUPS, filters, limit, detail, address)


def summarize_tasks(address: str | None = None) -> dict[str, Any]:
    """Task counts per function (or method) name and state, in Ray's shape.

    `{"cluster": {"summary": {name: {"func_or_class_name", "type", "state_counts"}},
    "total_tasks", "total_actor_tasks", "total_actor_scheduled", "summary_by"}}`.
    """
    _check_address(address)
    summary: dict[str, dict[str, Any]] = {}
    totals = {"NORMAL_TASK": 0, "ACTOR_TASK": 0, "ACTOR_CREATION_TASK": 0}
    for row in _read(task_rows):
        key = row["name"] or row["func_or_class_name"]
        entry = summary.setdefault(
            key, {"func_or_class_name": key, "type": row["type"], "state_counts": {}}
        )
        counts = entry["state_counts"]
        counts[row["state"]] = counts.get(row["state"], 0) + 1
        totals[row["type"]] += 1
    return {
        "cluster": {
            "summary": summary,
            "total_tasks": totals["NORMAL_TASK"],
            "total_actor_tasks": totals["ACTOR_TASK"],
            "total_actor_scheduled": totals["ACTOR_CREATION_TASK"],
            "summary_by": "func_name",
        }
    }
