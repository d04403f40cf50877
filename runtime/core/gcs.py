"""The global control store: node table, object directory, bounded task table and node pub/sub."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.core.config import CoreConfig
from runtime.core.ids import Address, NodeId, ObjectId, TaskId
from runtime.core.messages import (
    EvictObjects,
    FreeObjects,
    NodeAdded,
    ObjectAdded,
    ObjectRemoved,
    RegisterNode,
    Send,
    Subscribe,
    TaskEvents,
)
from runtime.core.resources import Resources


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


@dataclass(slots=True)
class TaskRecord:
    """A row of the task table: the latest known state of a task."""

    state: str
    node: NodeId
    updated_at: float


class Gcs:
    """The global control store, as one component (sharding comes with the simulated cluster)."""

    def __init__(self, addr: Address, config: CoreConfig | None = None) -> None:
        self.addr = addr
        self.config = config or CoreConfig()
        self.nodes: dict[NodeId, NodeInfo] = {}
        self.objects: dict[ObjectId, DirectoryEntry] = {}
        self.tasks: dict[TaskId, TaskRecord] = {}
        self.tasks_dropped = 0
        self.subscribers: list[Address] = []
        self.freed_early: set[ObjectId] = set()
        """Objects freed before their primary copy registered (a race between paths)."""
        self._handlers: dict[type, Callable[[Any, float, list[Any]], None]] = {
            RegisterNode: self._on_register_node,
            Subscribe: self._on_subscribe,
            ObjectAdded: self._on_object_added,
            ObjectRemoved: self._on_object_removed,
            FreeObjects: self._on_free_objects,
            TaskEvents: self._on_task_events,
        }

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        """React to one message, appending commands to ``out``."""
        self._handlers[type(msg)](msg, now, out)

    # -- node table and pub/sub ---------------------------------------------------------

    def _on_register_node(self, msg: RegisterNode, now: float, out: list[Any]) -> None:
        self.nodes[msg.node] = NodeInfo(
            msg.node, msg.addr, dict(msg.resources), msg.store_capacity, True, now
        )
        for sub in self.subscribers:
            out.append(Send(sub, NodeAdded(msg.node, msg.addr, dict(msg.resources)), 256))

    def _on_subscribe(self, msg: Subscribe, now: float, out: list[Any]) -> None:
        self.subscribers.append(msg.addr)
        for info in self.nodes.values():
            if info.alive:
                out.append(Send(msg.addr, NodeAdded(info.node, info.addr, dict(info.resources))))

    # -- object directory ---------------------------------------------------------------

    def _on_object_added(self, msg: ObjectAdded, now: float, out: list[Any]) -> None:
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

    def _on_object_removed(self, msg: ObjectRemoved, now: float, out: list[Any]) -> None:
        entry = self.objects.get(msg.oid)
        if entry is not None and msg.node in entry.locations:
            entry.locations.remove(msg.node)

    def _on_free_objects(self, msg: FreeObjects, now: float, out: list[Any]) -> None:
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

    def _on_task_events(self, msg: TaskEvents, now: float, out: list[Any]) -> None:
        tasks = self.tasks
        for task_id, state, node, at in msg.records:
            record = tasks.pop(task_id, None)
            if record is None:
                record = TaskRecord(state, node, at)
            else:
                record.state, record.node, record.updated_at = state, node, at
            tasks[task_id] = record  # most recently updated last
        excess = len(tasks) - self.config.task_table_max
        if excess > 0:
            for task_id in self._oldest(excess):
                del tasks[task_id]
            self.tasks_dropped += excess

    def _oldest(self, n: int) -> list[TaskId]:
        it = iter(self.tasks)
        return [next(it) for _ in range(n)]
