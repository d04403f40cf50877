"""GPU instance ids are a raylet decision: which instances a task gets, sharing fractions, keeping them."""

from __future__ import annotations

from runtime.core.messages import ActorWorkerDied, KillActor, WorkerBlocked
from runtime.core.resources import pick_instances, unit_instances
from tests.core.fake_host import FakeHost


def _gpu_host(gpus: float = 2, cpus: float = 4) -> FakeHost:
    return FakeHost(nodes=1, cpus=cpus, extra_resources={0: {"GPU": gpus}})


def _ids(host: FakeHost) -> dict[str, tuple[int, ...]]:
    return {d.spec.name: (d.spec.instances or {}).get("GPU", ()) for d in host.dispatched}


def test_whole_gpu_tasks_get_distinct_instances_and_a_waiting_one_gets_the_freed_id() -> None:
    host = _gpu_host()
    host.submit(duration=1.0, name="a", resources={"CPU": 1, "GPU": 1})
    host.submit(duration=2.0, name="b", resources={"CPU": 1, "GPU": 1})
    host.submit(duration=1.0, name="c", resources={"CPU": 1, "GPU": 1})
    host.run(until=0.5)
    assert _ids(host) == {"a": (0,), "b": (1,)}  # c waits: both instances are in use
    b = next(d.spec for d in host.dispatched if d.spec.name == "b")
    assert host.raylets[0].explain(b.task_id).startswith("running on node 0, GPU 1 (")
    host.run()
    assert _ids(host) == {"a": (0,), "b": (1,), "c": (0,)}
    assert host.raylets[0].instances == {"GPU": [1.0, 1.0]}


def test_a_two_gpu_task_sees_both_instances() -> None:
    host = _gpu_host()
    host.submit(duration=1.0, name="pair", resources={"CPU": 1, "GPU": 2})
    host.run()
    assert _ids(host) == {"pair": (0, 1)}


def test_fractional_tasks_pack_onto_instance_zero_first() -> None:
    host = _gpu_host()
    for name in "abcd":
        host.submit(duration=1.0, name=name, resources={"CPU": 1, "GPU": 0.5})
    host.run()
    assert _ids(host) == {"a": (0,), "b": (0,), "c": (1,), "d": (1,)}


def test_a_fraction_waits_when_no_single_instance_has_room_even_if_the_total_does() -> None:
    host = _gpu_host()
    host.submit(duration=1.0, name="x", resources={"CPU": 1, "GPU": 0.7})
    host.submit(duration=3.0, name="y", resources={"CPU": 1, "GPU": 0.7})
    host.submit(duration=1.0, name="z", resources={"CPU": 1, "GPU": 0.5})  # 0.6 free in total
    host.run(until=0.5)
    assert set(_ids(host)) == {"x", "y"}
    host.run()
    assert _ids(host)["z"] == (0,)  # started when x gave instance 0 back


def test_an_actor_keeps_its_gpu_for_its_lifetime_and_gives_it_back_when_killed() -> None:
    host = _gpu_host()
    actor = host.create_actor(duration=0.1, name="A", resources={"CPU": 1, "GPU": 1}, kind=1)
    host.run()
    assert host.raylets[0].instances == {"GPU": [0.0, 1.0]}
    host.submit(duration=1.0, name="t", resources={"CPU": 1, "GPU": 1})
    host.run()
    assert _ids(host)["t"] == (1,)
    host.inject(0, KillActor(actor, True))
    host.run()
    assert host.raylets[0].instances == {"GPU": [1.0, 1.0]}


def test_a_restarted_actor_gets_an_instance_again_and_nothing_leaks() -> None:
    host = _gpu_host(gpus=1)
    actor = host.create_actor(
        duration=0.1, name="A", resources={"CPU": 1, "GPU": 1}, kind=1, max_restarts=1
    )
    host.run()
    host.inject(0, ActorWorkerDied(actor, "crash"))
    host.run()
    assert host.gcs.actors[actor].state == "ALIVE"
    assert host.raylets[0].instances == {"GPU": [0.0]}
    host.inject(0, ActorWorkerDied(actor, "crash again"))
    host.run()
    assert host.gcs.actors[actor].state == "DEAD"
    assert host.raylets[0].instances == {"GPU": [1.0]}
    assert host.raylets[0].available["GPU"] == 1.0


def test_a_blocked_task_lends_its_cpu_but_keeps_its_gpu() -> None:
    host = _gpu_host(gpus=1, cpus=1)
    host.submit(duration=5.0, name="holder", resources={"CPU": 1, "GPU": 1})
    host.run(until=0.1)
    (holder,) = [d.spec for d in host.dispatched]
    host.submit(duration=1.0, name="cpu-only", resources={"CPU": 1})
    host.submit(duration=1.0, name="gpu-too", resources={"CPU": 1, "GPU": 1})
    host.inject(0, WorkerBlocked(holder.task_id))
    host.run(until=2.0)
    started = set(_ids(host))
    assert "cpu-only" in started and "gpu-too" not in started
    host.run()
    assert _ids(host)["gpu-too"] == (0,)
    assert host.raylets[0].instances == {"GPU": [1.0]}


def test_instance_helpers() -> None:
    assert unit_instances({"CPU": 4}) == {}
    assert unit_instances({"GPU": 1.5}) == {"GPU": [1.0, 0.5]}
    assert pick_instances([1.0, 0.5], 2) is None  # the partial instance is never whole
    assert pick_instances([0.2, 1.0, 1.0], 2) == (1, 2)
    assert pick_instances([0.2, 0.4], 0.3) == (1,)
