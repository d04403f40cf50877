"""GCS sharding in the simulator: route each message sent to the GCS to the shard(s) that own it.

As in the Ray paper, the GCS's tables are split over ``gcs_shards`` shards, each an
ordinary ``Gcs`` component with its own service queue. The core addresses one GCS; the
host routes what is sent to that address:

* object-directory messages (``ObjectAdded``, ``ObjectRemoved``, ``LocateObject``) to the
  shard of their object, ``task_of(oid) % shards`` (all returns of a task together);
  ``FreeObjects`` and batched ``TaskEvents`` are split by object / task id;
* ``RegisterNode`` and ``NodeDied`` to every shard (each needs the node table: to evict
  copies, and to find the objects a dead node took with it);
* everything else (subscriptions, actors) to shard 0, the GCS's own address.

Shard 0 is the only one with subscribers, so node-table changes are published once.
Shards run on the head node (separate processes there); messages between a component and
a shard cost what they would to the unsharded GCS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.core.ids import task_of
from runtime.core.messages import (
    FreeObjects,
    LocateObject,
    NodeDied,
    ObjectAdded,
    ObjectRemoved,
    RegisterNode,
    TaskEvents,
)

Routed = list[tuple[int, Any, int]]
"""(shard index, message, wire bytes) triples."""


def _by_object(msg: Any, nbytes: int, shards: int) -> Routed:
    return [(task_of(msg.oid) % shards, msg, nbytes)]


def _everywhere(msg: Any, nbytes: int, shards: int) -> Routed:
    return [(shard, msg, nbytes) for shard in range(shards)]


def _free(msg: FreeObjects, nbytes: int, shards: int) -> Routed:
    parts: dict[int, list[int]] = {}
    for oid in msg.oids:
        parts.setdefault(task_of(oid) % shards, []).append(oid)
    return [(s, FreeObjects(oids), 64 + 8 * len(oids)) for s, oids in sorted(parts.items())]


def _task_events(msg: TaskEvents, nbytes: int, shards: int) -> Routed:
    parts: dict[int, list[Any]] = {}
    for record in msg.records:
        parts.setdefault(record[0] % shards, []).append(record)
    return [
        (s, TaskEvents(msg.node, records), 32 * len(records))
        for s, records in sorted(parts.items())
    ]


ROUTES: dict[type, Callable[[Any, int, int], Routed]] = {
    ObjectAdded: _by_object,
    ObjectRemoved: _by_object,
    LocateObject: _by_object,
    FreeObjects: _free,
    TaskEvents: _task_events,
    RegisterNode: _everywhere,
    NodeDied: _everywhere,
}
"""Message type -> router; unlisted types go to shard 0."""


def route(msg: Any, nbytes: int, shards: int) -> Routed:
    """The shard(s) that must receive `msg` sent to the GCS."""
    router = ROUTES.get(type(msg))
    if router is None:
        return [(0, msg, nbytes)]
    return router(msg, nbytes, shards)
