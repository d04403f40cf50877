"""Actors in the core, driven by the fake host: creation, ordered calls, death, restarts, names, kill."""

from __future__ import annotations

from runtime.core.config import CoreConfig
from runtime.core.messages import ActorWorkerDied
from runtime.core.task import ERR_ACTOR_DIED
from tests.core.fake_host import FakeHost


def test_calls_run_one_at_a_time_in_submission_order() -> None:
    host = FakeHost(nodes=2)
    actor = host.create_actor(node=0, name="counter")
    calls = [host.call(actor, duration=0.1, name=f"m{i}")[0] for i in range(6)]
    host.run()
    assert [host.ready[c].result.payload for c in calls] == [f"value-of-m{i}" for i in range(6)]
    methods = [d for d in host.dispatched if d.spec.kind == 2]
    assert [d.spec.name for d in methods] == [f"m{i}" for i in range(6)]
    # serial: each call started after the previous one ended
    assert host.gcs.actors[actor].state == "ALIVE"
    assert [e.state for e in host.actor_events if e.actor_id == actor] == ["ALIVE"]


def test_an_actor_holds_its_resources_while_alive_and_default_actors_hold_none() -> None:
    host = FakeHost(nodes=1, cpus=2)
    a = host.create_actor(resources={"CPU": 1.0})
    b = host.create_actor(resources={"CPU": 1.0}, hold={})
    host.run()
    assert host.raylets[0].available == {"CPU": 1.0}
    assert host.gcs.actors[a].state == host.gcs.actors[b].state == "ALIVE"


def test_calls_from_two_callers_are_each_kept_in_order() -> None:
    host = FakeHost(nodes=2)
    actor = host.create_actor(node=0)
    host.run()
    mine = [host.call(actor, node=0, duration=0.01, name=f"a{i}")[0] for i in range(3)]
    theirs = [host.call(actor, node=1, duration=0.01, name=f"b{i}")[0] for i in range(3)]
    host.run()
    order = [d.spec.name for d in host.dispatched if d.spec.kind == 2]
    assert [n for n in order if n[0] == "a"] == ["a0", "a1", "a2"]
    assert [n for n in order if n[0] == "b"] == ["b0", "b1", "b2"]
    assert all(host.ready[o].error_kind is None for o in mine + theirs)


def test_a_call_waits_for_its_arguments_without_overtaking_earlier_calls() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor()
    (slow,) = host.submit(duration=5.0, name="slow")
    first = host.call(actor, arg_refs=(slow,), name="first")[0]
    second = host.call(actor, name="second")[0]
    host.run()
    order = [d.spec.name for d in host.dispatched if d.spec.kind == 2]
    assert order == ["first", "second"]
    assert host.ready[first].error_kind is None and host.ready[second].error_kind is None


def test_a_dead_actor_fails_its_calls_with_actor_died() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor()
    host.run()
    running = host.call(actor, duration=10.0, name="long")[0]
    queued = host.call(actor, duration=1.0, name="queued")[0]
    host.run(until=host.now + 1.0)
    host.inject(0, ActorWorkerDied(actor, "segfault"))
    host.run()
    assert host.ready[running].error_kind == ERR_ACTOR_DIED
    assert host.ready[queued].error_kind == ERR_ACTOR_DIED
    assert "segfault" in host.ready[running].error
    assert host.gcs.actors[actor].state == "DEAD"
    later = host.call(actor, name="later")[0]
    host.run()
    assert host.ready[later].error_kind == ERR_ACTOR_DIED
    assert host.raylets[0].available == {"CPU": 2.0}


def test_max_restarts_brings_a_crashed_actor_back() -> None:
    host = FakeHost(nodes=2)
    actor = host.create_actor(max_restarts=1)
    host.run()
    node = host.gcs.actors[actor].node
    host.inject(node, ActorWorkerDied(actor))
    host.run()
    assert host.gcs.actors[actor].state == "ALIVE"
    assert host.gcs.actors[actor].restarts == 1
    after = host.call(actor, name="after")[0]
    host.run()
    assert host.ready[after].error_kind is None
    states = [e.state for e in host.actor_events if e.actor_id == actor]
    assert states == ["ALIVE", "RESTARTING", "ALIVE"]
    host.inject(host.gcs.actors[actor].node, ActorWorkerDied(actor))
    host.run()
    assert host.gcs.actors[actor].state == "DEAD"  # restarts used up


def test_kill_terminates_the_worker_and_never_restarts() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor(max_restarts=5, name="victim")
    host.run()
    out: list = []
    host.owners[0].kill_actor(actor, True, out)
    host._effect(out)
    host.run()
    assert [k.actor_id for k in host.killed] == [actor]
    assert host.gcs.actors[actor].state == "DEAD"
    assert "victim" not in host.gcs.actor_names  # the name is free again


def test_named_actors_get_if_exists_and_lookup() -> None:
    host = FakeHost(nodes=1)
    first = host.create_actor(name="svc")
    host.run()
    second = host.create_actor(name="svc", get_if_exists=True)
    host.run()
    alias = [e for e in host.actor_events if e.actor_id == second and e.alias_of]
    assert alias and alias[0].alias_of == first
    call = host.call(second, name="via_alias")[0]
    host.run()
    assert host.ready[call].error_kind is None
    assert len([d for d in host.dispatched if d.spec.kind == 1]) == 1  # created once
    duplicate = host.create_actor(name="svc")
    host.run()
    dead = [e for e in host.actor_events if e.actor_id == duplicate]
    assert dead[-1].state == "DEAD" and "already exists" in dead[-1].error
    out: list = []
    host.owners[0].lookup_actor("svc", 7, out)
    host.owners[0].lookup_actor("nope", 8, out)
    host._effect(out)
    host.run()
    replies = {e.request_id: e for e in host.actor_events if e.request_id}
    assert replies[7].actor_id == first and replies[7].spec is not None
    assert replies[8].actor_id == 0


def test_a_constructor_error_kills_the_actor_with_the_cause() -> None:
    host = FakeHost(nodes=1, config=CoreConfig())
    actor = host.create_actor(function="fail", max_restarts=3)
    call = host.call(actor, name="m")[0]
    host.run()
    assert host.gcs.actors[actor].state == "DEAD"
    assert host.ready[call].error_kind == ERR_ACTOR_DIED
    assert "constructor" in str(host.ready[call].error)


def test_an_actor_that_needs_an_absent_resource_dies_with_a_clear_reason() -> None:
    host = FakeHost(nodes=1)
    actor = host.create_actor(resources={"GPU": 1.0}, name="gpu_actor")
    call = host.call(actor, name="m")[0]
    host.run()
    assert host.gcs.actors[actor].state == "DEAD"
    events = [e for e in host.actor_events if e.actor_id == actor]
    assert events[-1].state == "DEAD" and "GPU" in events[-1].error
    assert host.ready[call].error_kind == ERR_ACTOR_DIED and "GPU" in host.ready[call].error


def test_get_if_exists_on_an_actor_this_owner_already_calls_keeps_one_call_order() -> None:
    host = FakeHost(nodes=1)
    first = host.create_actor(name="svc")
    before = [host.call(first, name=f"a{i}")[0] for i in range(3)]
    host.run()
    second = host.create_actor(name="svc", get_if_exists=True)
    early = host.call(second, name="early")[0]  # before the GCS answered
    host.run()
    late = host.call(second, name="late")[0]
    again = host.call(first, name="again")[0]
    host.run()
    for oid in before + [early, late, again]:
        assert host.ready[oid].error_kind is None
    order = [d.spec.name for d in host.dispatched if d.spec.kind == 2]
    assert order == ["a0", "a1", "a2", "early", "late", "again"]
    assert [d.spec.seq for d in host.dispatched if d.spec.kind == 2] == [1, 2, 3, 4, 5, 6]
