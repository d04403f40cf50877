"""`NodeLike`: what "the current node" offers, whether the driver's `Node` or a worker's `WorkerClient`.

The public API (`runtime.api`, `ObjectRef`, actor handles, generators, placement groups)
talks to one object per process: the driver's `runtime.real.node.Node`, or, inside a
worker process, the `runtime.real.worker_client.WorkerClient` that forwards each call to
the driver. Both implement this protocol; code that needs the current node gets it typed
as `NodeLike` (`runtime.api._current_node`, `session_node`) instead of probing it with
``hasattr``.
"""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from runtime.generators import ObjectRefGenerator
    from runtime.object_ref import ObjectRef

__all__ = ["NodeLike", "session_node"]


@runtime_checkable
class NodeLike(Protocol):
    """The operations the API calls on the current node (driver `Node` or `WorkerClient`)."""

    session: int
    """Distinguishes nodes (and sessions) for per-node caches such as function ids."""
    closed: bool
    """True once the node was shut down: calls on it fail."""
    in_worker: bool
    """True for a worker process's `WorkerClient`, False for the driver's `Node`."""

    # -- functions and tasks ------------------------------------------------------------------

    def register_function(self, pickled: bytes) -> int:
        """Give a pickled function an id on this node; return it."""
        ...

    def submit(self, rf: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        """Submit a task of remote function `rf`; return its ObjectRef(s) or generator."""
        ...

    def cancel(self, ref: ObjectRef, force: bool) -> None:
        """Cancel the task producing `ref`."""
        ...

    # -- objects --------------------------------------------------------------------------------

    def put(self, value: Any) -> ObjectRef:
        """Store `value`; return its ref (owned by this node)."""
        ...

    def get(self, refs: list[ObjectRef], timeout: float | None) -> list[Any]:
        """Wait for `refs` and return their values (raising the first error)."""
        ...

    def wait(
        self, refs: list[ObjectRef], num_returns: int, timeout: float | None
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """Return ``(ready, not_ready)``."""
        ...

    def future_of(self, ref: ObjectRef) -> concurrent.futures.Future:
        """A `concurrent.futures.Future` of `ref`'s value (what ``await ref`` waits on)."""
        ...

    def release_ref(self, oid: int) -> None:
        """Drop one reference (from `ObjectRef.__del__`)."""
        ...

    def reduce_ref(self, oid: int) -> int:
        """A ref is being pickled into a value leaving this node: record it; return its owner."""
        ...

    def adopt_ref(self, oid: int, owner: int) -> ObjectRef:
        """A ref was unpickled here: borrow it from `owner`; return the local handle."""
        ...

    # -- actors ---------------------------------------------------------------------------------

    def create_actor(self, ac: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        """Create an actor of actor class `ac`; return its handle."""
        ...

    def call_actor(
        self,
        handle: Any,
        method: str,
        args: tuple,
        kwargs: dict,
        num_returns: int,
        max_retries: int = 0,
        retry_exceptions: bool = False,
    ) -> Any:
        """Submit a call of `method` on `handle`'s actor; return its ObjectRef(s)."""
        ...

    def get_actor(self, name: str) -> Any:
        """The handle of the live actor named `name`."""
        ...

    def kill_actor(self, handle: Any, no_restart: bool) -> None:
        """Terminate the actor of `handle`."""
        ...

    # -- generators -----------------------------------------------------------------------------

    def stream_next(self, gen: ObjectRefGenerator, timeout: float | None) -> ObjectRef | None:
        """The next item of `gen` (None at its end)."""
        ...

    def stream_ready(self, gen: ObjectRefGenerator) -> bool:
        """True if `gen` has an item (or its end) to hand out without waiting."""
        ...

    def stream_finished(self, gen: ObjectRefGenerator) -> bool:
        """True once every item of `gen` was handed out and it ended."""
        ...

    def drop_stream(self, gen: ObjectRefGenerator) -> None:
        """`gen` was dropped: release the items it did not hand out."""
        ...

    def adopt_stream_items(self, task_id: int, count: int) -> list[ObjectRef]:
        """Refs to the `count` items of dynamic generator task `task_id` (unpickling)."""
        ...

    def wait_mixed(
        self, items: list[Any], num_returns: int, timeout: float | None
    ) -> tuple[list[Any], list[Any]]:
        """`wait` over refs and generators together."""
        ...

    # -- placement groups -------------------------------------------------------------------

    def create_placement_group(
        self, bundles: list[dict[str, float]], strategy: str, name: str, lifetime: str | None
    ) -> int:
        """Ask the core to reserve `bundles`; return the group's id."""
        ...

    def remove_placement_group(self, pg_id: int) -> None:
        """Remove the group."""
        ...

    def placement_group_ready(self, pg_id: int, payload: bytes) -> ObjectRef:
        """A ref that resolves to `payload` once the group is placed."""
        ...

    def placement_group_rows(self, pg_id: int | None, name: str | None) -> list[dict[str, Any]]:
        """Snapshots of the GCS's placement-group rows."""
        ...

    def current_placement_group(self) -> tuple[int, list[dict[str, float]], bool] | None:
        """The group of the task or actor running here (None on the driver)."""
        ...

    # -- introspection ------------------------------------------------------------------------

    def runtime_info(self) -> dict[str, Any]:
        """Resources and context as the driver sees them."""
        ...

    def assigned_resources(self) -> dict[str, float]:
        """The resources of the task or actor running here."""
        ...

    def timeline(self, filename: str | None = None) -> list:
        """Finished task executions as Chrome trace events (driver only)."""
        ...


def session_node() -> NodeLike | None:
    """The node of this process's running session, or None outside one (never starts one)."""
    from runtime import api

    return api._node
