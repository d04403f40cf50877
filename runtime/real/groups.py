"""Placement groups on the node: create, remove, wait for and describe groups (driver and workers).

Everything is decided by the core (GCS table, global scheduler, raylet bundles); program
threads queue operations, and worker requests are answered on the loop thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.core.placement import PlacementGroupRecord, PlacementGroupStrategy
from runtime.object_ref import ObjectRef
from runtime.real import requests as rq
from runtime.real.futures import Future, ObjectEntry
from runtime.real.nested import NestedOwners

__all__ = ["PlacementGroupApi", "PlacementGroups"]


def _row(rec: PlacementGroupRecord) -> dict[str, Any]:
    """A snapshot of a GCS row as plain data (safe to hand to another thread or process)."""
    return {
        "pg_id": rec.pg_id,
        "name": rec.name,
        "bundles": [dict(b) for b in rec.bundles],
        "bundle_nodes": list(rec.bundle_nodes),
        "strategy": rec.strategy,
        "state": rec.state,
        "reason": rec.reason,
        "lifetime": rec.lifetime,
        "created_at": rec.created_at,
        "placed_at": rec.placed_at,
        "attempts": rec.attempts,
    }


class PlacementGroups:
    """The loop-thread side of placement groups: GCS rows, a worker's group, workers' requests."""

    def __init__(
        self, gcs: Any, raylet: Any, out: list[Any], execute: Callable[[float], None]
    ) -> None:
        self.gcs = gcs
        self.raylet = raylet
        self.out = out
        self.execute = execute
        """Run the queued commands now (a create queued earlier must reach the GCS first)."""
        self.nested: Any = None
        """The nested owners whose workers' requests this part answers (see `serve`)."""

    def serve(self, nested: NestedOwners) -> None:
        """Answer the workers' placement-group requests through `nested` (their owners)."""
        self.nested = nested
        nested.request_ops.update(
            {
                rq.PG_CREATE: self._req_pg_create,
                rq.PG_REMOVE: self._req_pg_remove,
                rq.PG_READY: self._req_pg_ready,
                rq.PG_ROWS: self._req_pg_rows,
                rq.PG_CURRENT: self._req_pg_current,
            }
        )

    def rows(self, pg_id: int | None, name: str | None) -> list[dict[str, Any]]:
        """Snapshots of GCS rows: one group by id, the live group named ``name``, or all."""
        table = self.gcs.placement_group_table()
        if name is not None:
            found = self.gcs.placement_group_named(name)
            return [_row(table[found])] if found in table else []
        if pg_id is not None:
            rec = table.get(pg_id)
            return [_row(rec)] if rec is not None else []
        return [_row(rec) for rec in table.values()]

    def worker_group(self, w: Any) -> tuple[int, list[dict[str, float]], bool] | None:
        """The group of the task or actor running on worker ``w`` (None: none)."""
        spec = w.spec
        if w.actor_id:
            created = self.raylet.actor_spec(w.actor_id)
            spec = created if created is not None else spec
        strategy = spec.strategy if spec is not None else None
        if not isinstance(strategy, PlacementGroupStrategy):
            return None
        rec = self.gcs.placement_group_table().get(strategy.pg_id)
        bundles = [dict(b) for b in rec.bundles] if rec is not None else []
        return strategy.pg_id, bundles, strategy.capture_child_tasks

    # -- requests from workers (the loop thread) -----------------------------------------------

    def _req_pg_create(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        bundles, strategy, name, lifetime = payload
        owner = self.nested.owner_of(w)
        pg_id = owner.new_task_id()
        owner.create_placement_group(
            pg_id, bundles, strategy, name, lifetime, self.out, creator_actor=w.actor_id
        )
        self.nested.reply(w, req_id, True, pg_id)

    def _req_pg_remove(self, w: Any, req_id: int, pg_id: int, now: float) -> None:
        self.nested.owner_of(w).remove_placement_group(pg_id, self.out)
        self.nested.reply(w, req_id, True, None)

    def _req_pg_ready(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        pg_id, data = payload
        oid = self.nested.owner_of(w).placement_group_ready(pg_id, data, len(data), now, self.out)
        self.nested.reply(w, req_id, True, oid)

    def _req_pg_rows(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        if self.out:  # a create from the same batch must reach the GCS first
            self.execute(now)
        self.nested.reply(w, req_id, True, self.rows(*payload))

    def _req_pg_current(self, w: Any, req_id: int, payload: Any, now: float) -> None:
        self.nested.reply(w, req_id, True, self.worker_group(w))


class PlacementGroupApi:
    """The program-thread API of placement groups (the loop-thread side: `PlacementGroups`).

    It holds no state of its own: program threads queue operations on the node's queue
    (`ops`, then `kick` or `wake`), ids come from the driver's owner under `ids_lock`, and
    a ready-ref's entry goes into the object table; the refs it makes belong to `node`.
    """

    def __init__(
        self,
        *,
        node: Any,
        ops: Any,
        kick: Callable[[], None],
        wake: Callable[[], None],
        check_open: Callable[[], None],
        ids_lock: Any,
        owner: Any,
        objects: Any,
        out: list[Any],
        execute: Callable[[float], None],
        groups: PlacementGroups,
    ) -> None:
        self.node = node
        """The node the refs made here belong to (`runtime._session.NodeLike`)."""
        self.ops = ops
        self.kick = kick
        self.wake = wake
        self.check_open = check_open
        self.ids_lock = ids_lock
        self.owner = owner
        self.objects = objects
        self.out = out
        self.execute = execute
        self.groups = groups

    # -- program threads (the driver) ------------------------------------------------------

    def create_placement_group(
        self, bundles: list[dict[str, float]], strategy: str, name: str, lifetime: str | None
    ) -> int:
        """Ask the core to reserve ``bundles``; return the group's id at once (as Ray does)."""
        self.check_open()
        with self.ids_lock:
            pg_id = self.owner.new_task_id()
        self.ops.append((self._op_pg_create, (pg_id, bundles, strategy, name, lifetime)))
        self.kick()
        return pg_id

    def _op_pg_create(self, item: tuple, now: float) -> None:
        pg_id, bundles, strategy, name, lifetime = item
        self.owner.create_placement_group(pg_id, bundles, strategy, name, lifetime, self.out)

    def remove_placement_group(self, pg_id: int) -> None:
        """Remove the group (asynchronously)."""
        self.check_open()
        self.ops.append((self._op_pg_remove, pg_id))
        self.kick()

    def _op_pg_remove(self, pg_id: int, now: float) -> None:
        self.owner.remove_placement_group(pg_id, self.out)

    def placement_group_ready(self, pg_id: int, payload: bytes) -> ObjectRef:
        """A new ref that resolves to ``payload`` (the pickled handle) once the group exists."""
        self.check_open()
        with self.ids_lock:
            oid = self.owner.new_put_id()
        with self.objects.lock:
            self.objects.entries[oid] = ObjectEntry()
        self.ops.append((self._op_pg_ready, (pg_id, payload, oid)))
        self.kick()
        return ObjectRef(oid, self.node)

    def _op_pg_ready(self, item: tuple, now: float) -> None:
        pg_id, payload, oid = item
        self.owner.placement_group_ready(pg_id, payload, len(payload), now, self.out, oid=oid)

    def placement_group_rows(self, pg_id: int | None, name: str | None) -> list[dict[str, Any]]:
        """Snapshots of GCS rows: one group by id, the live group named ``name``, or all."""
        self.check_open()
        slot: list[Any] = [Future(1), None]
        self.ops.append((self._op_pg_rows, (pg_id, name, slot)))
        self.wake()
        slot[0].wait(None)
        return slot[1]

    def _op_pg_rows(self, item: tuple, now: float) -> None:
        pg_id, name, slot = item
        if self.out:  # a create queued in the same step must reach the GCS first
            self.execute(now)
        slot[1] = self.groups.rows(pg_id, name)
        slot[0].hit()
