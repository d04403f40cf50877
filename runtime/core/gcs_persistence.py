"""The GCS's durable tables as rows: which rows a message changed (`Persist` commands) and a GCS rebuilt from them.

A GCS with persistence enabled (`Gcs.enable_persistence`) appends, after each message it
handled, one `Persist(table, key, value)` per durable row the message changed (``value``
None: the row is gone). A host writes them (the head: SQLite in its session directory,
`runtime.real.gcs_store`) and, after a restart, hands every row back to `restore`, which
rebuilds the tables and the indexes derived from them. Still sans-I/O: no clock, no files.

The durable tables (`TABLES`): ``nodes`` (node id -> `NodeInfo`), ``objects`` (object id
-> `DirectoryEntry`: size, owner, locations), ``actors`` (actor id -> `ActorRecord`, its
creation spec, name, state, restarts and subscribers: named and detached actors included),
``placement_groups`` (group id -> `PlacementGroupRecord`) and ``subscribers`` (who hears
of node joins and deaths: the components on the nodes that survive a head restart stay
subscribed). The task table is observability, bounded and rebuilt by the raylets' task
events: it is not persisted.

Frequent messages (an object stored or freed, an actor started) name the rows they
touch; the rare ones that can change many rows (a node's death, an actor's death or kill,
a group's removal) persist the whole actor and group tables, which are small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from runtime.core.messages import (
    ACTOR_DEAD,
    ActorCheckpointed,
    ActorDied,
    ActorStarted,
    CreatePlacementGroup,
    FreeObjects,
    KillActor,
    NodeDied,
    ObjectAdded,
    ObjectRemoved,
    Persist,
    PlacementGroupPending,
    PlacementGroupPlaced,
    RegisterActor,
    RegisterNode,
    RemovePlacementGroup,
    SchedulePlacementGroup,
    Send,
    Subscribe,
    SubscribeActor,
    SubscribePlacementGroup,
)
from runtime.core.placement import PG_REMOVED

if TYPE_CHECKING:
    from runtime.core.gcs import Gcs

NODES: Final = "nodes"
OBJECTS: Final = "objects"
ACTORS: Final = "actors"
PLACEMENT_GROUPS: Final = "placement_groups"
SUBSCRIBERS: Final = "subscribers"
TABLES: Final = (NODES, OBJECTS, ACTORS, PLACEMENT_GROUPS, SUBSCRIBERS)
"""The durable tables, in the order `restore` loads them."""

Row = tuple[str, Any, Any]
"""``(table, key, value)``: one durable row (value None: deleted)."""


class RestoreError(ValueError):
    """A row given to `restore` names an unknown table (the snapshot is not a GCS's)."""


# -- which rows a message touched --------------------------------------------------------


def _all_actors_and_groups(gcs: Gcs) -> list[tuple[str, Any]]:
    keys: list[tuple[str, Any]] = [(ACTORS, a) for a in gcs.actors]
    keys += [(PLACEMENT_GROUPS, g) for g in gcs.placement_groups]
    return keys


def _subscribers(gcs: Gcs, msg: Subscribe) -> list[tuple[str, Any]]:
    return [(SUBSCRIBERS, "joins"), (SUBSCRIBERS, "deaths")]


def _node_died(gcs: Gcs, msg: NodeDied) -> list[tuple[str, Any]]:
    return [(NODES, msg.node), *_all_actors_and_groups(gcs)]


TOUCHED: dict[type, Callable[[Gcs, Any], list[tuple[str, Any]]]] = {
    RegisterNode: lambda gcs, msg: [(NODES, msg.node)],
    Subscribe: _subscribers,
    ObjectAdded: lambda gcs, msg: [(OBJECTS, msg.oid)],
    ObjectRemoved: lambda gcs, msg: [(OBJECTS, msg.oid)],
    FreeObjects: lambda gcs, msg: [(OBJECTS, oid) for oid in msg.oids],
    RegisterActor: lambda gcs, msg: [(ACTORS, msg.spec.actor_id)],
    SubscribeActor: lambda gcs, msg: [(ACTORS, msg.actor_id)],
    ActorStarted: lambda gcs, msg: [(ACTORS, msg.actor_id)],
    ActorCheckpointed: lambda gcs, msg: [(ACTORS, msg.actor_id)],
    ActorDied: lambda gcs, msg: _all_actors_and_groups(gcs),
    KillActor: lambda gcs, msg: _all_actors_and_groups(gcs),
    NodeDied: _node_died,
    CreatePlacementGroup: lambda gcs, msg: [(PLACEMENT_GROUPS, msg.pg_id)],
    RemovePlacementGroup: lambda gcs, msg: _all_actors_and_groups(gcs),
    SubscribePlacementGroup: lambda gcs, msg: [(PLACEMENT_GROUPS, msg.pg_id)],
    PlacementGroupPlaced: lambda gcs, msg: [(PLACEMENT_GROUPS, msg.pg_id)],
    PlacementGroupPending: lambda gcs, msg: [(PLACEMENT_GROUPS, msg.pg_id)],
}
"""Message type -> the durable rows its handler may have changed (read after it ran).
Messages not listed (task events, lookups, locations) change no durable row."""

BEFORE: dict[type, Callable[[Gcs, Any], list[tuple[str, Any]]]] = {
    NodeDied: lambda gcs, msg: [
        (OBJECTS, oid) for oid, e in gcs.objects.items() if msg.node in e.locations
    ],
}
"""Message type -> rows to read before its handler runs (a node's death removes it from
the locations of objects that can only be found by scanning before)."""


def value(gcs: Gcs, table: str, key: Any) -> Any:
    """The current value of row ``key`` of ``table`` (None: absent)."""
    if table == NODES:
        return gcs.nodes.get(key)
    if table == OBJECTS:
        return gcs.objects.get(key)
    if table == ACTORS:
        return gcs.actors.get(key)
    if table == PLACEMENT_GROUPS:
        return gcs.placement_groups.get(key)
    if table == SUBSCRIBERS:  # an empty list is no row
        return list(gcs.subscribers if key == "joins" else gcs.death_subscribers) or None
    raise RestoreError(f"no durable GCS table {table!r} (tables: {', '.join(TABLES)})")


def handle_persisted(gcs: Gcs, msg: Any, now: float, out: list[Any]) -> None:
    """`Gcs.handle` with persistence on: handle ``msg``, then persist the rows it changed."""
    before = BEFORE.get(type(msg))
    keys = before(gcs, msg) if before is not None else None
    removed_head = gcs._removed_pgs[0] if gcs._removed_pgs else None
    gcs._handlers[type(msg)](msg, now, out)
    touched = TOUCHED.get(type(msg))
    if touched is None:
        return
    keys = touched(gcs, msg) if keys is None else keys + touched(gcs, msg)
    if removed_head is not None and removed_head not in gcs.placement_groups:
        keys.append((PLACEMENT_GROUPS, removed_head))  # the table dropped its oldest
    for table, key in keys:
        out.append(Persist(table, key, value(gcs, table, key)))


def snapshot(gcs: Gcs) -> list[Row]:
    """Every durable row of ``gcs`` now (what a fresh store starts from)."""
    rows: list[Row] = []
    for table, rows_of in (
        (NODES, gcs.nodes),
        (OBJECTS, gcs.objects),
        (ACTORS, gcs.actors),
        (PLACEMENT_GROUPS, gcs.placement_groups),
    ):
        rows += [(table, k, v) for k, v in rows_of.items()]
    for key in ("joins", "deaths"):
        subs = value(gcs, SUBSCRIBERS, key)
        if subs is not None:
            rows.append((SUBSCRIBERS, key, subs))
    return rows


# -- a GCS rebuilt from rows -------------------------------------------------------------


def restore(
    gcs: Gcs, rows: Iterable[Row], now: float, out: list[Any], lost_nodes: Iterable[int] = ()
) -> None:
    """Rebuild ``gcs``'s durable tables from ``rows`` (later rows of a key win).

    The global scheduler is sent every group not removed, with the bundles already
    placed (it places the missing ones). Nodes alive in the rows wait in ``gcs.rejoining`` until their raylet registers again
    (their actors, objects and bundles stay where they were); a node that never does is
    declared dead by the host (`NodeDied`). Nodes in ``lost_nodes`` (the restarted head's
    own: its workers and arena did not survive) die now, with the core's recovery:
    their objects are reported lost to their owners, their actors restart elsewhere
    within ``max_restarts``, their groups are rescheduled. Commands go to ``out``.
    """
    tables: dict[str, dict[Any, Any]] = {t: {} for t in TABLES}
    for table, key, val in rows:
        if table not in tables:
            raise RestoreError(f"no durable GCS table {table!r} (tables: {', '.join(TABLES)})")
        if val is None:
            tables[table].pop(key, None)
        else:
            tables[table][key] = val
    for node, info in tables[NODES].items():
        (gcs.rejoining if info.alive else gcs.nodes)[node] = info
    gcs.objects.update(tables[OBJECTS])
    for actor_id, rec in tables[ACTORS].items():
        gcs.actors[actor_id] = rec
        if rec.name and rec.state != ACTOR_DEAD:
            gcs.actor_names[rec.name] = actor_id
    for pg_id in sorted(tables[PLACEMENT_GROUPS]):
        rec = tables[PLACEMENT_GROUPS][pg_id]
        gcs.placement_groups[pg_id] = rec
        if rec.state == PG_REMOVED:
            gcs._removed_pgs.append(pg_id)
            continue
        if rec.name:
            gcs.placement_group_names[rec.name] = pg_id
        if rec.creator_actor and rec.lifetime != "detached":
            gcs._pgs_of_actor.setdefault(rec.creator_actor, []).append(pg_id)
    subs = tables[SUBSCRIBERS]
    for addr in subs.get("joins", ()):
        if addr not in gcs.subscribers:
            gcs.subscribers.append(addr)
    for addr in subs.get("deaths", ()):
        if addr not in gcs.death_subscribers:
            gcs.death_subscribers.append(addr)
    for pg_id, rec in sorted(gcs.placement_groups.items()):
        if rec.state == PG_REMOVED:
            continue
        # the new global scheduler learns the groups and where their bundles are (the
        # raylets that survived still hold them), and places the missing ones
        placed = {i: n for i, n in enumerate(rec.bundle_nodes) if n >= 0}
        schedule = SchedulePlacementGroup(pg_id, rec.bundles, rec.strategy, placed)
        out.append(Send(gcs.gs_addr, schedule, 128 + 32 * len(rec.bundles)))
    for node in lost_nodes:
        info = gcs.rejoining.pop(node, None)
        if info is not None:
            gcs.nodes[node] = info
            gcs.handle(NodeDied(node), now, out)
