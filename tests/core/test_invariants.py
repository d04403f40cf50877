"""The owner's, GCS's and global scheduler's check(): silent through real workloads in the fake host, loud on a corrupted state."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.core.gcs import Gcs
from runtime.core.ids import task_of
from runtime.core.invariants import InvariantError
from runtime.core.messages import ACTOR_ALIVE, ACTOR_DEAD, ActorWorkerDied
from runtime.core.owner import (
    ENDED,
    HELD_TASK_STATES,
    OBJECT_TRANSITIONS,
    SUBMITTED,
    TASK_STATES,
    TASK_TRANSITIONS,
    WAITING_ARGS,
    Owner,
)
from runtime.core.placement import PG_CREATED
from runtime.core.task import ERR_WORKER_DIED, TaskSpec
from tests.core.fake_host import FakeHost, owner_addr

BIG = 1 << 20


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the calls of Owner.check and Gcs.check (the fake host makes them)."""
    calls = {"owner": 0, "gcs": 0}

    def wrap(cls: type, key: str) -> None:
        original = cls.check  # type: ignore[attr-defined]

        def check(self: Any) -> None:
            calls[key] += 1
            original(self)

        monkeypatch.setattr(cls, "check", check)

    wrap(Owner, "owner")
    wrap(Gcs, "gcs")
    return calls


def _mixed_workload(host: FakeHost) -> list[int]:
    """Dependencies, a stored chain, an actor (restarted), borrowing, retries: every result."""
    (a,) = host.submit(node=0, duration=1.0, name="a", output_sizes=(BIG,))
    (b,) = host.submit(node=0, duration=0.5, name="b", arg_refs=(a,))
    (c, d) = host.submit(node=1, duration=0.2, name="cd", num_returns=2)
    actor = host.create_actor(node=0, max_restarts=1, name="svc")
    calls = [host.call(actor, node=0, arg_refs=(a,), name="m0")[0]]
    calls += [host.call(actor, node=1, duration=0.1, name=f"m{i}")[0] for i in (1, 2)]
    out: list[Any] = []
    host.owners[1].borrow(a, owner_addr(0), host.now, out)
    host._effect(out)
    (e,) = host.submit(node=1, duration=0.1, name="e", arg_refs=(a,))
    host.run(until=host.now + 0.3)
    host.inject(host.gcs.actors[actor].node, ActorWorkerDied(actor, "crash"))
    host.run()
    host.release(a, node=1)
    host.release(a, node=0)
    host.run()
    return [b, c, d, e, *calls]


def test_checks_run_after_every_delivery_and_pass_through_a_mixed_workload(
    counted: dict[str, int],
) -> None:
    host = FakeHost(nodes=2)
    results = _mixed_workload(host)
    assert all(oid in host.ready for oid in results)
    assert counted["owner"] > 100 and counted["gcs"] > 50  # after each delivery, per owner
    host.check()


def test_checks_pass_through_retries_node_death_and_lineage_reconstruction() -> None:
    died: set[int] = set()

    def once(spec: Any) -> str | None:
        if spec.name == "flaky" and spec.task_id not in died:
            died.add(spec.task_id)
            return ERR_WORKER_DIED
        return None

    host = FakeHost(nodes=3, fail_hook=once)
    (flaky,) = host.submit(node=0, name="flaky", duration=0.1)
    stored = [host.submit(node=0, name=f"s{i}", output_sizes=(BIG,))[0] for i in range(6)]
    (total,) = host.submit(node=0, name="total", arg_refs=tuple(stored), duration=0.5)
    host.run(until=host.now + 0.2)
    host.kill_node(1)
    host.run()
    assert host.ready[flaky].error_kind is None
    assert host.owners[0].retries >= 1
    assert host.ready[total].error_kind is None
    host.check()


def test_the_task_lifecycle_table_is_closed_over_its_declared_states() -> None:
    assert TASK_TRANSITIONS.keys() == TASK_STATES
    for src, targets in TASK_TRANSITIONS.items():
        assert targets.keys() <= TASK_STATES, src
        assert all(cause for cause in targets.values())
    assert HELD_TASK_STATES < TASK_STATES and ENDED not in HELD_TASK_STATES
    assert TASK_TRANSITIONS[ENDED].keys() <= HELD_TASK_STATES  # only reconstruction leaves
    assert set(OBJECT_TRANSITIONS) == {0, 1, 2, 3}


def test_a_held_task_carries_the_state_of_where_it_is() -> None:
    host = FakeHost(nodes=1)
    (slow,) = host.submit(duration=5.0, name="slow")
    (after,) = host.submit(duration=1.0, name="after", arg_refs=(slow,))
    host.run(until=1.0)
    owner = host.owners[0]
    states = {spec.name: spec.owner_state for spec in owner.pending.values()}
    assert states == {"slow": SUBMITTED, "after": WAITING_ARGS}
    spec = owner.pending[task_of(after)]
    host.run()
    assert not owner.pending and spec.owner_state == ENDED


# -- corrupted states are caught ------------------------------------------------------------


def _settled(nodes: int = 1) -> FakeHost:
    host = FakeHost(nodes=nodes)
    host.submit(duration=5.0, name="slow", output_sizes=(BIG,))
    host.run(until=1.0)
    return host


def test_a_task_in_two_places_is_caught() -> None:
    host = _settled()
    owner = host.owners[0]
    (tid,) = owner.pending
    owner._blocked[tid] = 1  # SUBMITTED, yet also held back for arguments
    with pytest.raises(InvariantError, match="SUBMITTED but blocked"):
        owner.check()


def test_an_undeclared_task_state_is_caught() -> None:
    host = _settled()
    owner = host.owners[0]
    next(iter(owner.pending.values())).owner_state = "LIMBO"
    with pytest.raises(InvariantError, match="'LIMBO'"):
        owner.check()


def test_a_reference_count_that_does_not_match_its_holders_is_caught() -> None:
    host = FakeHost(nodes=1)
    (slow,) = host.submit(duration=5.0, name="slow")
    host.submit(duration=1.0, name="after", arg_refs=(slow,))
    host.run(until=1.0)
    owner = host.owners[0]
    owner.objects[slow].task_refs += 1  # a leak: no task holds this reference
    with pytest.raises(InvariantError, match="task_refs 2, 1 tasks"):
        owner.check()


def test_an_object_nothing_references_is_caught() -> None:
    host = FakeHost(nodes=1)
    (a,) = host.submit(duration=0.1, name="a")
    host.run()
    host.owners[0].objects[a].refs = 0  # dropped without being freed
    with pytest.raises(InvariantError, match="referenced by nothing"):
        host.owners[0].check()


def test_an_actor_call_both_unsent_and_in_flight_is_caught() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor()
    host.run()
    host.call(actor, duration=5.0, name="m")
    host.run(until=host.now + 1.0)
    owner = host.owners[0]
    handle = owner.actors[actor]
    (spec,) = handle.inflight.values()
    handle.unsent = [spec]
    with pytest.raises(InvariantError, match="INFLIGHT but 1x unsent"):
        owner.check()


def test_the_fake_host_stops_at_the_first_delivery_after_a_corruption() -> None:
    host = _settled()
    owner = host.owners[0]
    (tid,) = owner.pending
    owner._blocked[tid] = 1
    with pytest.raises(InvariantError):
        host.run()
    assert issubclass(InvariantError, AssertionError)


def test_a_name_held_by_a_dead_actor_is_caught() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor(name="svc")
    host.run()
    rec = host.gcs.actors[actor]
    rec.state, rec.node, rec.addr = ACTOR_DEAD, -1, -1  # died, but kept its name
    with pytest.raises(InvariantError, match="'svc' maps to actor"):
        host.gcs.check()


def test_an_alive_actor_without_a_node_is_caught() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor()
    host.run()
    assert host.gcs.actors[actor].state == ACTOR_ALIVE
    host.gcs.actors[actor].node = -1
    with pytest.raises(InvariantError, match="is ALIVE at node -1"):
        host.gcs.check()


def test_a_created_group_with_a_bundle_on_a_dead_node_is_caught() -> None:
    host = FakeHost(nodes=2)
    owner = host.owners[0]
    pg_id = owner.new_task_id()
    out: list[Any] = []
    owner.create_placement_group(pg_id, [{"CPU": 1.0}], "PACK", "", None, out)
    host._effect(out)
    host.run()
    rec = host.gcs.placement_groups[pg_id]
    assert rec.state == PG_CREATED
    host.gcs.nodes[rec.bundle_nodes[0]].alive = False  # dead, yet the group kept its bundle
    with pytest.raises(InvariantError, match="has a bundle on node"):
        host.gcs.check()


def test_a_directory_location_on_a_dead_node_is_caught() -> None:
    host = _settled(nodes=2)
    host.run()
    (oid,) = host.gcs.objects
    node = host.gcs.objects[oid].locations[0]
    host.gcs.nodes[node].alive = False
    with pytest.raises(InvariantError, match="located on dead node"):
        host.gcs.check()


def test_a_stale_node_view_in_the_scheduler_is_caught() -> None:
    host = FakeHost(nodes=2)
    host.submit(duration=0.1, name="a")
    host.run()
    gs = host.gs
    gs.check()
    gone = gs.views.pop(1)  # the node left, but the feasibility cache still offers it
    gs._feasible[("CPU",)] = [gs.views[0], gone]  # type: ignore[index]
    with pytest.raises(InvariantError, match="feasibility cache"):
        gs.check()


def test_a_task_parked_while_nodes_are_known_is_caught() -> None:
    host = FakeHost(nodes=1)
    assert host.gs.views  # the node registered
    host.gs.parked.append(TaskSpec(task_id=1, owner=owner_addr(0), owner_node=0))
    with pytest.raises(InvariantError, match="parked although nodes are known"):
        host.gs.check()
