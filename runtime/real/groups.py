"""The placement-group mixin of the node: create, remove, wait for and describe groups (driver and workers).

Everything is decided by the core (GCS table, global scheduler, raylet bundles); program
threads queue operations, and worker requests are answered on the loop thread.
"""

from __future__ import annotations

from typing import Any

from runtime.core.placement import PlacementGroupRecord, PlacementGroupStrategy
from runtime.object_ref import ObjectRef
from runtime.real.futures import Future, ObjectEntry

__all__ = ["PlacementGroupMixin"]


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


class PlacementGroupMixin:
    """Program-thread API and worker requests for placement groups."""

    def _pg_request_ops(self) -> dict[str, Any]:
        """The worker requests this mixin answers (merged into the node's request table)."""
        return {
            "pg_create": self._req_pg_create,
            "pg_remove": self._req_pg_remove,
            "pg_ready": self._req_pg_ready,
            "pg_rows": self._req_pg_rows,
            "pg_current": self._req_pg_current,
        }

    # -- program threads (the driver) ------------------------------------------------------

    def create_placement_group(
        self, bundles: list[dict[str, float]], strategy: str, name: str, lifetime: str | None
    ) -> int:
        """Ask the core to reserve ``bundles``; return the group's id at once (as Ray does)."""
        self._check_open()
        with self._ids_lock:
            pg_id = self.owner.new_task_id()
        self._ops.append((self._op_pg_create, (pg_id, bundles, strategy, name, lifetime)))
        self._kick()
        return pg_id

    def _op_pg_create(self, item: tuple, now: float) -> None:
        pg_id, bundles, strategy, name, lifetime = item
        self.owner.create_placement_group(pg_id, bundles, strategy, name, lifetime, self._out)

    def remove_placement_group(self, pg_id: int) -> None:
        """Remove the group (asynchronously)."""
        self._check_open()
        self._ops.append((self._op_pg_remove, pg_id))
        self._kick()

    def _op_pg_remove(self, pg_id: int, now: float) -> None:
        self.owner.remove_placement_group(pg_id, self._out)

    def placement_group_ready(self, pg_id: int, payload: bytes) -> ObjectRef:
        """A new ref that resolves to ``payload`` (the pickled handle) once the group exists."""
        self._check_open()
        with self._ids_lock:
            oid = self.owner.new_put_id()
        with self._lock:
            self.table[oid] = ObjectEntry()
        self._ops.append((self._op_pg_ready, (pg_id, payload, oid)))
        self._kick()
        return ObjectRef(oid, self)

    def _op_pg_ready(self, item: tuple, now: float) -> None:
        pg_id, payload, oid = item
        self.owner.placement_group_ready(pg_id, payload, len(payload), now, self._out, oid=oid)

    def placement_group_rows(self, pg_id: int | None, name: str | None) -> list[dict[str, Any]]:
        """Snapshots of GCS rows: one group by id, the live group named ``name``, or all."""
        self._check_open()
        slot: list[Any] = [Future(1), None]
        self._ops.append((self._op_pg_rows, (pg_id, name, slot)))
        self._wake()
        slot[0].wait(None)
        return slot[1]

    def _op_pg_rows(self, item: tuple, now: float) -> None:
        pg_id, name, slot = item
        if self._out:  # a create queued in the same step must reach the GCS first
            self._execute(now)
        slot[1] = self._pg_rows(pg_id, name)
        slot[0].hit()

    def current_placement_group(self) -> tuple[int, list[dict[str, float]], bool] | None:
        """The driver runs in no placement group."""
        return None

    # -- the loop thread --------------------------------------------------------------------

    def _pg_rows(self, pg_id: int | None, name: str | None) -> list[dict[str, Any]]:
        table = self.gcs.placement_group_table()
        if name is not None:
            found = self.gcs.placement_group_named(name)
            return [_row(table[found])] if found in table else []
        if pg_id is not None:
            rec = table.get(pg_id)
            return [_row(rec)] if rec is not None else []
        return [_row(rec) for rec in table.values()]

    def _worker_group(self, w: Any) -> tuple[int, list[dict[str, float]], bool] | None:
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
        owner = self._owner_of(w)
        pg_id = owner.new_task_id()
        owner.create_placement_group(
            pg_id, bundles, strategy, name, lifetime, self._out, creator_actor=w.actor_id
        )
        self._reply(w, req_id, True, pg_id)

    def _req_pg_remove(self, w: Any, req_id: int, pg_id: int, now: float) -> None:
        self._owner_of(w).remove_placement_group(pg_id, self._out)
        self._reply(w, req_id, True, None)

    def _req_pg_ready(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        pg_id, data = payload
        oid = self._owner_of(w).placement_group_ready(pg_id, data, len(data), now, self._out)
        self._reply(w, req_id, True, oid)

    def _req_pg_rows(self, w: Any, req_id: int, payload: tuple, now: float) -> None:
        if self._out:  # a create from the same batch must reach the GCS first
            self._execute(now)
        self._reply(w, req_id, True, self._pg_rows(*payload))

    def _req_pg_current(self, w: Any, req_id: int, payload: Any, now: float) -> None:
        self._reply(w, req_id, True, self._worker_group(w))
