"""The GCS's durable tables: Persist commands after each message, and a GCS restored from them."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from runtime.core.gcs import Gcs
from runtime.core.gcs_persistence import RestoreError
from runtime.core.messages import (
    ACTOR_ALIVE,
    ACTOR_DEAD,
    ACTOR_RESTARTING,
    ActorDied,
    ActorStarted,
    CreatePlacementGroup,
    FreeObjects,
    KillActor,
    LookupActor,
    NodeAdded,
    NodeDied,
    ObjectAdded,
    ObjectLost,
    ObjectRemoved,
    Persist,
    PlacementGroupPlaced,
    RegisterActor,
    RegisterNode,
    RemovePlacementGroup,
    Send,
    SpillTask,
    Subscribe,
    SubscribeActor,
)
from runtime.core.placement import PG_CREATED, PG_REMOVED
from runtime.core.task import ACTOR_CREATION, TaskSpec

GS = 1
OWNER = 500
NODE_ADDR = {0: 10, 1: 11, 2: 12}


def actor_spec(actor_id: int) -> TaskSpec:
    """The creation spec of actor ``actor_id``, owned by OWNER on node 0."""
    return TaskSpec(actor_id << 8, OWNER, 0, kind=ACTOR_CREATION, actor_id=actor_id)


def history() -> list[Any]:
    """A run of the GCS: three nodes, objects, actors (named, detached, killed, restarted,
    on a node that dies), placement groups (placed, removed)."""
    msgs: list[Any] = [RegisterNode(n, a, {"CPU": 2.0}, 1 << 20) for n, a in NODE_ADDR.items()]
    msgs += [Subscribe(NODE_ADDR[n]) for n in NODE_ADDR] + [Subscribe(OWNER, joins=False)]
    msgs += [
        RegisterActor(actor_spec(1), "keeper", max_restarts=0),  # lives on node 1
        RegisterActor(actor_spec(2), "mover", max_restarts=2),  # on node 2, which dies
        RegisterActor(actor_spec(3), "doomed", max_restarts=-1),  # killed
        RegisterActor(actor_spec(4), "", max_restarts=0),
        ActorStarted(1, 1, 1001),
        ActorStarted(2, 2, 2001),
        ActorStarted(3, 1, 1002),
        SubscribeActor(1, 777),
        KillActor(3, True),
        ActorDied(3, 1, "killed", killed=True),
        ObjectAdded(0xA1, 1, 1000, OWNER),
        ObjectAdded(0xA2, 2, 2000, OWNER),
        ObjectAdded(0xA2, 1, 2000, OWNER, primary=False),
        ObjectAdded(0xA3, 2, 3000, OWNER),
        ObjectAdded(0xA4, 0, 4000, OWNER),
        ObjectAdded(0xA5, 1, 5000, 1001),
        ObjectRemoved(0xA2, 1),
        FreeObjects([0xA1]),
        CreatePlacementGroup(0x51, [{"CPU": 1.0}], "PACK", OWNER, "pg-kept", "detached"),
        PlacementGroupPlaced(0x51, [1]),
        CreatePlacementGroup(0x52, [{"CPU": 1.0}], "PACK", OWNER, "pg-gone"),
        PlacementGroupPlaced(0x52, [2]),
        RemovePlacementGroup(0x52),
        NodeDied(2),
    ]
    return msgs


class Store:
    """What a host does with Persist commands: the last value of each row."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, Any], bytes] = {}

    def apply(self, out: list[Any]) -> None:
        for cmd in out:
            if isinstance(cmd, Persist):
                if cmd.value is None:
                    self.rows.pop((cmd.table, cmd.key), None)
                else:
                    self.rows[(cmd.table, cmd.key)] = pickle.dumps(cmd.value)

    def records(self) -> list[tuple[str, Any, Any]]:
        return [(t, k, pickle.loads(v)) for (t, k), v in self.rows.items()]


def run(gcs: Gcs, msgs: list[Any], store: Store | None = None) -> list[Any]:
    everything: list[Any] = []
    for msg in msgs:
        out: list[Any] = []
        gcs.handle(msg, 1.0, out)
        if store is not None:
            store.apply(out)
            # after every message the store holds exactly the GCS's durable rows
            snap = {(t, k): pickle.dumps(v) for t, k, v in gcs.snapshot()}
            assert store.rows == snap, f"after {type(msg).__name__}"
        everything += out
    return everything


@pytest.fixture(scope="module")
def restored() -> tuple[Gcs, Gcs, list[Any]]:
    """The GCS that ran `history` with persistence on, and a fresh one restored from its rows."""
    gcs = Gcs(0, gs_addr=GS)
    gcs.enable_persistence()
    store = Store()
    run(gcs, history(), store)
    fresh = Gcs(0, gs_addr=GS)
    out: list[Any] = []
    fresh.restore(store.records(), 2.0, out)
    fresh.check()
    return gcs, fresh, out


def test_off_by_default_no_persist_commands() -> None:
    gcs = Gcs(0, gs_addr=GS)
    assert "handle" not in vars(gcs)  # the class's method: nothing added on the hot path
    out = run(gcs, history())
    assert not [c for c in out if isinstance(c, Persist)]


def test_restored_gcs_answers_the_same_queries(restored: tuple[Gcs, Gcs, list[Any]]) -> None:
    gcs, fresh, out = restored
    # the global scheduler learns the live group and where its bundle is; nothing else
    assert [(c.dst, type(c.msg).__name__, c.msg.pg_id, c.msg.placed) for c in out] == [
        (GS, "SchedulePlacementGroup", 0x51, {0: 1})
    ]
    for name in ("keeper", "mover", "doomed", "nobody"):
        assert fresh.actor_named(name) == gcs.actor_named(name)
    assert fresh.actor_named("keeper") == 1 and fresh.actor_named("doomed") == 0
    for actor_id, rec in gcs.actor_table().items():
        got = fresh.actor_record(actor_id)
        assert got is not None
        assert (got.state, got.node, got.addr, got.restarts, got.name, got.subscribers) == (
            rec.state, rec.node, rec.addr, rec.restarts, rec.name, rec.subscribers
        )  # fmt: skip
    assert fresh.actor_record(1).state == ACTOR_ALIVE
    assert fresh.actor_record(2).state == ACTOR_RESTARTING  # its node died before the restart
    assert fresh.actor_record(3).state == ACTOR_DEAD
    assert {o: (e.size, e.owner, e.locations) for o, e in fresh.object_table().items()} == {
        o: (e.size, e.owner, e.locations) for o, e in gcs.object_table().items()
    }
    assert 0xA1 not in fresh.object_table() and fresh.object_table()[0xA2].locations == []
    pgs = fresh.placement_group_table()
    assert pgs[0x51].state == PG_CREATED and pgs[0x51].bundle_nodes == [1]
    assert pgs[0x52].state == PG_REMOVED
    assert fresh.placement_group_named("pg-kept") == 0x51
    assert fresh.placement_group_named("pg-gone") is None
    assert fresh.subscribers == gcs.subscribers
    assert fresh.death_subscribers == gcs.death_subscribers


def test_lookup_by_name_after_restore(restored: tuple[Gcs, Gcs, list[Any]]) -> None:
    _, fresh, _ = restored
    out: list[Any] = []
    fresh.handle(LookupActor("keeper", 9, 321), 3.0, out)
    (reply,) = [c.msg for c in out if isinstance(c, Send)]
    assert (reply.actor_id, reply.state, reply.node, reply.addr) == (1, ACTOR_ALIVE, 1, 1001)


def test_nodes_rejoin_then_the_table_matches() -> None:
    gcs = Gcs(0, gs_addr=GS)
    gcs.enable_persistence()
    store = Store()
    run(gcs, history(), store)
    fresh = Gcs(0, gs_addr=GS)
    fresh.restore(store.records(), 2.0, [])
    assert sorted(fresh.rejoining) == [0, 1] and sorted(fresh.node_table()) == [2]
    out: list[Any] = []
    fresh.handle(RegisterNode(1, NODE_ADDR[1], {"CPU": 2.0}, 1 << 20), 3.0, out)
    added = [c for c in out if isinstance(c, Send) and isinstance(c.msg, NodeAdded)]
    assert {c.dst for c in added} == set(gcs.subscribers)  # the restored subscribers hear it
    assert fresh.node_table()[1].alive and sorted(fresh.rejoining) == [0]
    fresh.check()
    # a node that never comes back is declared dead by the host: the core's recovery
    out = []
    fresh.handle(NodeDied(0), 4.0, out)
    assert not fresh.rejoining and not fresh.node_table()[0].alive
    lost = [c.msg for c in out if isinstance(c, Send) and isinstance(c.msg, ObjectLost)]
    assert [m.oids for m in lost] == [[0xA4]]  # its only copy was on node 0
    fresh.check()


def test_lost_nodes_die_at_restore() -> None:
    """The restarted head's own node: its objects are reported lost, its actors restart."""
    gcs = Gcs(0, gs_addr=GS)
    gcs.enable_persistence()
    store = Store()
    msgs = history()[:-1] + [RegisterActor(actor_spec(9), "on-head", max_restarts=1)]
    run(gcs, msgs + [ActorStarted(9, 0, 3001)], store)
    fresh = Gcs(0, gs_addr=GS)
    out: list[Any] = []
    fresh.restore(store.records(), 2.0, out, lost_nodes=[0])
    fresh.check()
    assert not fresh.node_table()[0].alive
    assert fresh.actor_record(9).state == ACTOR_RESTARTING
    spills = [c.msg for c in out if isinstance(c, Send) and isinstance(c.msg, SpillTask)]
    assert [s.spec.actor_id for s in spills] == [9]
    lost = [c.msg for c in out if isinstance(c, Send) and isinstance(c.msg, ObjectLost)]
    assert [m.oids for m in lost] == [[0xA4]]
    assert fresh.actor_record(1).state == ACTOR_ALIVE  # node 1's actor is untouched


def test_unknown_table_is_refused() -> None:
    with pytest.raises(RestoreError, match="no durable GCS table 'tasks'"):
        Gcs(0).restore([("tasks", 1, object())], 0.0, [])
