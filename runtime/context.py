"""`get_runtime_context()`: which job, task, actor and node the calling code runs in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime._session import NodeLike

__all__ = ["RuntimeContext", "current_context"]

JOB_ID = "01000000"


@dataclass(slots=True)
class RuntimeContext:
    """Ids of the current job, task, actor and node, as hex strings (None when not applicable)."""

    job_id: str
    task_id: str | None
    actor_id: str | None
    node_id: str
    _node: Any = field(default=None, repr=False, compare=False)

    def get_job_id(self) -> str:
        """The job id (one job per driver)."""
        return self.job_id

    def get_task_id(self) -> str | None:
        """The id of the running task; None in the driver."""
        return self.task_id

    def get_actor_id(self) -> str | None:
        """The id of the actor this code runs in; None outside actors."""
        return self.actor_id

    def get_node_id(self) -> str:
        """The id of the node."""
        return self.node_id

    def get_assigned_resources(self) -> dict[str, float]:
        """The resources the running task (or actor, for its lifetime) was given, e.g.
        ``{"CPU": 1.0, "GPU": 0.5}``; in the driver it raises `AssertionError`, as in Ray."""
        return self._node.assigned_resources()


def current_context(node: NodeLike) -> RuntimeContext:
    """The context of the caller, given the process's node (driver) or worker client."""
    node_id = f"{0:056x}"
    if not node.in_worker:
        return RuntimeContext(JOB_ID, None, None, node_id, node)
    from runtime.real.addresses import NODE_ID  # the worker's node in a cluster

    node_id = f"{NODE_ID:056x}"
    worker = node.worker  # type: ignore[attr-defined]  # a WorkerClient's
    task = f"{worker.task_id:032x}" if worker.task_id is not None else None
    actor = f"{worker.actor_id:032x}" if worker.actor_id is not None else None
    return RuntimeContext(JOB_ID, task, actor, node_id, node)
