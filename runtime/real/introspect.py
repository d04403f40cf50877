"""Introspection, a part of the node: cancel, state reads, resources, runtime context and the task timeline."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

from runtime.core.task import ACTOR_CREATION, ACTOR_METHOD
from runtime.exceptions import RayError
from runtime.object_ref import ObjectRef
from runtime.real.addresses import NODE_ID, OWNER_ADDR
from runtime.real.futures import Future

__all__ = ["Introspection"]

T = TypeVar("T")

_KIND_NAMES = {0: "task", ACTOR_CREATION: "actor_creation", ACTOR_METHOD: "actor_method"}


class Introspection:
    """Program-thread calls that ask about or steer the node rather than run work.

    It owns the job's namespace; everything else it reads is passed in: the program
    threads' operation queue (`ops`, `wake`, `check_open`, `stopped`), the loop thread's
    core components and command list, and the parts whose workers it describes.
    """

    def __init__(
        self,
        *,
        ops: Any,
        wake: Callable[[], None],
        check_open: Callable[[], None],
        stopped: Callable[[], bool],
        plane: Any,
        out: list[Any],
        execute: Callable[[float], None],
        arena: Any,
        pool: Any,
        nested: Any,
        actor_workers: Any,
        actor_tokens: dict[int, int],
        t0: float,
    ) -> None:
        self.ops = ops
        """The program threads' operation queue (run in order on the loop thread)."""
        self.wake = wake
        self.check_open = check_open
        self.stopped = stopped
        """True once the node stopped or its loop failed (a read will never be answered)."""
        self.gcs = plane.gcs
        self.gs = plane.global_scheduler
        self.raylet = plane.raylets[NODE_ID]
        self.owner = plane.owners[0]
        self.out = out
        self.execute = execute
        self.arena = arena
        self.pool = pool
        self.nested = nested
        self.actor_workers = actor_workers
        self.actor_tokens = actor_tokens
        """Token object id -> the actor it keeps alive (shared with the actor API)."""
        self.t0 = t0
        """The loop clock's origin (`time.monotonic()` at start): timeline times are relative to it."""
        self.job_namespace: str | None = None
        """The namespace `init(namespace=)` gave the job (None: anonymous)."""

    def cancel(self, ref: ObjectRef, force: bool) -> None:
        """Cancel the task producing `ref`; `get` on it raises `TaskCancelledError`."""
        self.check_open()
        if not isinstance(ref, ObjectRef):
            raise TypeError(f"cancel() expects an ObjectRef, got {type(ref).__name__}")
        slot: list[Any] = [Future(1), None]
        self.ops.append((self.op_cancel, (ref._oid, force, slot)))
        self.wake()
        slot[0].wait(None)
        if slot[1] is not None:
            raise slot[1]

    def op_cancel(self, item: tuple, now: float) -> None:
        """Loop thread: cancel `(oid, force, slot)`; an error goes into the slot for `cancel`."""
        oid, force, slot = item
        try:
            self.owner.cancel(oid, force, now, self.out)
        except Exception as exc:  # e.g. force=True on an actor call
            slot[1] = exc
        slot[0].hit()

    def inspect(self, read: Callable[[Any], T]) -> T:
        """Run `read(view)` on the loop thread over fresh core tables; return its result.

        Owners and the raylet first flush their task events to the GCS, so the task table
        is current; `view` is a `runtime.util.state.ClusterView` of the core components.
        The read runs between steps, so it sees one consistent state.
        """
        self.check_open()
        slot: list[Any] = [Future(1), None, None]
        self.ops.append((self._op_inspect, (read, slot)))
        self.wake()
        while not slot[0].wait(0.1):
            if self.stopped():
                raise RayError("the node stopped before the state could be read")
        if slot[2] is not None:
            raise slot[2]
        return slot[1]  # type: ignore[no-any-return]

    def _op_inspect(self, item: tuple, now: float) -> None:
        read, slot = item
        try:
            view = self._cluster_view(now)
            out = self.out
            for owner in view.owners.values():
                owner.flush_task_events(now, out, pending=True)
            self.raylet.flush_task_events(now, out)
            self.execute(now)
            slot[1] = read(view)
        except Exception as exc:
            slot[2] = exc
        slot[0].hit()

    def req_inspect(self, w: Any, req_id: int, payload: bytes, now: float) -> None:
        """The state API from a worker or a connected driver: run its pickled `read`."""
        from runtime.real.serialization import loads_function

        slot: list[Any] = [Future(1), None, None]
        self._op_inspect((loads_function(payload), slot), now)
        if slot[2] is not None:
            self.nested.reply(w, req_id, False, slot[2])
        else:
            self.nested.reply(w, req_id, True, slot[1])

    def _cluster_view(self, now: float) -> Any:
        from runtime.util.state import ClusterView

        owners = {OWNER_ADDR: self.owner}
        pids = {OWNER_ADDR: os.getpid()}
        for addr, w in self.nested.owner_workers.items():
            if w.owner is not None:
                owners[addr] = w.owner
                pids[addr] = w.pid
        actor_pids = {aid: w.pid for aid, w in self.actor_workers.workers.items()}
        return ClusterView(
            self.gcs, [self.raylet], owners, now, pids, OWNER_ADDR, actor_pids,
            dict(self.actor_tokens),
        )  # fmt: skip

    def explain(self, target: Any) -> Any:
        """Why the task behind `target` (an ObjectRef, actor handle or placement group) is where it is."""
        from runtime.actor import ActorHandle
        from runtime.core import explain as ex
        from runtime.util.placement_group import PlacementGroup

        gs = self.gs
        if isinstance(target, ObjectRef):
            oid = target._oid

            def read(view: Any) -> Any:
                raylets = {r.node: r for r in view.raylets}
                return ex.explain_object(oid, view.owners.values(), raylets, view.gcs, gs)

        elif isinstance(target, ActorHandle):
            actor_id = target._actor_id

            def read(view: Any) -> Any:
                raylets = {r.node: r for r in view.raylets}
                return ex.explain_actor(actor_id, view.owners.values(), raylets, view.gcs, gs)

        elif isinstance(target, PlacementGroup):
            pg_id = target.id.value

            def read(view: Any) -> Any:
                return ex.explain_placement_group(pg_id, view.gcs)

        else:
            raise TypeError(
                "explain() takes an ObjectRef, an actor handle or a placement group, "
                f"got {type(target).__name__}"
            )
        return self.inspect(read)

    def runtime_info(self) -> dict[str, Any]:
        """Total and available resources of the node (a snapshot), and the job's namespace."""
        raylet = self.raylet
        return {
            "namespace": self.job_namespace,
            "total": raylet.total_resources(),
            "available": {k: max(0.0, v) for k, v in raylet.available_resources().items()},
            "node_id": f"{raylet.node:056x}",
            "store": self.arena.capacity,
        }

    def assigned_resources(self) -> dict[str, float]:
        """Only tasks and actors have assigned resources: the driver has none (as in Ray)."""
        raise AssertionError(
            "get_assigned_resources() is only available in a task or an actor, not in the driver"
        )

    def req_assigned(self, w: Any, req_id: int, payload: Any, now: float) -> None:
        """What the body running on worker `w` was given: an actor's lifetime resources,
        or the running task's request; zero amounts left out."""
        resources: dict[str, float] = {}
        if w.actor_id:
            hold = self.raylet.actor_hold(w.actor_id)
            if hold is not None:
                resources = hold
            elif w.spec is not None:  # still in its constructor
                spec = w.spec
                resources = spec.hold if spec.hold is not None else spec.resources
        elif w.spec is not None:
            resources = w.spec.resources
        self.nested.reply(w, req_id, True, {k: float(v) for k, v in resources.items() if v > 0})

    def timeline(self, filename: str | None = None) -> list[dict[str, Any]]:
        """Task executions as Chrome trace / Perfetto events; written to `filename` if given."""
        t0 = self.t0
        events = []
        for name, kind, worker_id, pid, start, end, status in list(self.pool.spans):
            events.append(
                {
                    "name": name,
                    "cat": _KIND_NAMES.get(kind, "task"),
                    "ph": "X",
                    "pid": f"worker {worker_id}",
                    "tid": pid,
                    "ts": (start - t0) * 1e6,
                    "dur": max(0.0, (end - start) * 1e6),
                    "args": {"status": status},
                }
            )
        if filename is not None:
            tmp = f"{filename}.tmp{os.getpid()}"
            with open(tmp, "w") as f:
                json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)
            os.replace(tmp, filename)
        return events
