"""Actor calls' stored arguments go through the raylet's pull, as tasks' do (fake host)."""

from __future__ import annotations

from typing import Any

from runtime.core.messages import ActorWorkerDied, MakeRoom, ObjectLocations
from runtime.core.task import ACTOR_METHOD, ERR_OBJECT_LOST
from tests.core.fake_host import FakeHost

MB = 1 << 20


def _put(host: FakeHost, size: int, node: int = 0) -> int:
    out: list[Any] = []
    oid = host.owners[node].put(size, None, True, host.now, out)
    host._effect(out)
    host.run()
    return oid


def _calls(host: FakeHost) -> list[str]:
    return [d.spec.name for d in host.dispatched if d.spec.kind == ACTOR_METHOD]


def test_a_remote_argument_is_pulled_by_the_actors_raylet_before_the_call_runs() -> None:
    host = FakeHost(nodes=2, extra_resources={1: {"B": 1.0}})
    actor = host.create_actor(node=0, resources={"B": 0.5})
    host.run()
    raylet = host.raylets[1]
    assert raylet.actor_spec(actor) is not None  # it lives on node 1
    big = _put(host, 2 * MB, node=0)  # stored on node 0
    first = host.call(actor, node=0, arg_refs=(big,), name="first")[0]
    second = host.call(actor, node=0, name="second")[0]
    host.run()
    pulls = [t for t in host.transfers if t.oid == big]
    assert len(pulls) == 1 and pulls[0].dst == 1 and pulls[0].src == 0
    pulled_at = host.commands.index(pulls[0])
    first_at = next(
        i
        for i, c in enumerate(host.commands)
        if getattr(c, "spec", None) and c.spec.name == "first"
    )
    assert pulled_at < first_at
    assert _calls(host) == ["first", "second"]  # the second call did not overtake
    assert host.ready[first].error_kind is None and host.ready[second].error_kind is None
    assert raylet.store_usage().pinned == 0  # unpinned once the call ended
    assert big in raylet.stored_objects()  # a secondary copy, counted in the store


def test_a_spilled_argument_of_an_actor_call_is_restored_by_the_raylet() -> None:
    host = FakeHost(nodes=1, store_capacity=10 * MB)
    actor = host.create_actor()
    host.run()
    a = _put(host, 3 * MB)
    host.inject(0, MakeRoom(10 * MB))
    host.run()
    assert host.disk == {(0, a)}
    (r,) = host.call(actor, arg_refs=(a,), name="uses-a", duration=1.0)
    host.run()
    assert [x.oid for x in host.restored] == [a]
    restore_at = host.commands.index(host.restored[0])
    dispatch_at = host.commands.index(next(d for d in host.dispatched if d.spec.name == "uses-a"))
    assert restore_at < dispatch_at
    assert host.ready[r].error_kind is None
    raylet = host.raylets[0]
    assert raylet.store_usage().pinned == 0 and host.disk == set()
    assert raylet.wait_seconds()["transfers"] > 0


def test_a_call_whose_argument_is_lost_fails_and_the_next_calls_run() -> None:
    host = FakeHost(nodes=2, extra_resources={1: {"B": 1.0}}, transfer_time=5.0)
    actor = host.create_actor(node=0, resources={"B": 0.5})
    host.run()
    lost = _put(host, 2 * MB, node=0)
    (first,) = host.call(actor, node=0, arg_refs=(lost,), name="first")
    (second,) = host.call(actor, node=0, name="second")
    host.run(until=host.now + 1.0)  # the pull is in flight
    host.inject(1, ObjectLocations(lost, []))  # as if the GCS said no node holds it
    host.run()
    assert host.ready[first].error_kind == ERR_OBJECT_LOST
    assert _calls(host) == ["second"] and host.ready[second].error_kind is None
    raylet = host.raylets[1]
    assert raylet.backlog() == 0 and raylet.store_usage().pinned == 0


def test_cancelling_a_call_that_waits_for_its_argument_lets_the_next_one_run() -> None:
    host = FakeHost(nodes=2, extra_resources={1: {"B": 1.0}}, transfer_time=5.0)
    actor = host.create_actor(node=0, resources={"B": 0.5})
    host.run()
    big = _put(host, 2 * MB, node=0)
    (first,) = host.call(actor, node=0, arg_refs=(big,), name="first")
    host.call(actor, node=0, name="second")
    host.run(until=host.now + 1.0)  # the pull is in flight
    assert host.raylets[1].task_state(first >> 8) == "actor_fetching"
    out: list[Any] = []
    host.owners[0].cancel(first, False, host.now, out)
    host._effect(out)
    host.run()
    assert _calls(host) == ["second"]
    assert host.raylets[1].store_usage().pinned == 0


def test_an_actor_that_dies_while_a_call_fetches_unpins_and_fails_it() -> None:
    host = FakeHost(nodes=2, extra_resources={1: {"B": 1.0}}, transfer_time=5.0)
    actor = host.create_actor(node=0, resources={"B": 0.5})
    host.run()
    big = _put(host, 2 * MB, node=0)
    (first,) = host.call(actor, node=0, arg_refs=(big,), name="first")
    host.run(until=host.now + 1.0)
    host.inject(1, ActorWorkerDied(actor, "boom"))
    host.run()
    assert host.ready[first].error_kind is not None
    raylet = host.raylets[1]
    assert raylet.backlog() == 0 and raylet.store_usage().pinned == 0
