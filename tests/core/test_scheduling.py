"""Core scheduling driven by the fake host: local runs, spillback, infeasible requests, policies."""

from __future__ import annotations

import random

import pytest

from runtime.core.config import CoreConfig
from runtime.core.messages import ScheduleTask, Send, SpillTask
from runtime.core.policies import POLICIES, NodeView, make_policy, policies_with
from runtime.core.task import ERR_UNSCHEDULABLE, TaskSpec
from tests.core.fake_host import FakeHost


def test_a_task_runs_locally_and_its_inline_result_reaches_the_owner() -> None:
    host = FakeHost(nodes=2)
    (oid,) = host.submit(node=1, duration=0.5, name="t")
    host.run()
    ready = host.ready[oid]
    assert ready.error_kind is None
    assert ready.node == 1
    assert ready.result is not None and not ready.result.stored
    assert ready.result.payload == "value-of-t"
    assert [d.node for d in host.dispatched] == [1]
    assert not any(isinstance(c, Send) and isinstance(c.msg, SpillTask) for c in host.commands)


def test_bottom_up_spills_beyond_the_threshold_and_everything_completes() -> None:
    host = FakeHost(nodes=4, cpus=2, config=CoreConfig(spillback_threshold=2))
    oids = [host.submit(node=0, duration=1.0, name=f"t{i}")[0] for i in range(20)]
    host.run()
    assert all(host.ready[o].error_kind is None for o in oids)
    nodes = {d.node for d in host.dispatched}
    assert len(nodes) > 1, "spilled tasks should run on other nodes"
    raylet0 = host.raylets[0]
    assert raylet0.spilled == 20 - 2 - 2  # 2 start now, 2 queue, the rest spill
    assert sum(r.dispatched for r in host.raylets) == 20
    assert all(not r.running and not r.queued for r in host.raylets)


def test_resources_are_never_oversubscribed() -> None:
    host = FakeHost(nodes=1, cpus=3, config=CoreConfig(spillback_threshold=100))
    for i in range(10):
        host.submit(duration=1.0, name=f"t{i}")
    host.run(until=0.5)
    assert len(host.raylets[0].running) == 3
    assert host.raylets[0].queued == 7
    host.run()
    assert len(host.ready) == 10
    assert host.raylets[0].available == {"CPU": 3.0}


def test_an_infeasible_request_fails_with_a_clear_error_instead_of_hanging() -> None:
    host = FakeHost(nodes=2)
    (oid,) = host.submit(resources={"CPU": 1.0, "GPU": 1.0}, name="needs_gpu")
    host.run()
    ready = host.ready[oid]
    assert ready.error_kind == ERR_UNSCHEDULABLE
    assert "GPU" in ready.error and "needs_gpu" in ready.error
    assert not host.owners[0].pending


def test_a_task_needing_a_resource_only_one_node_has_goes_there() -> None:
    host = FakeHost(nodes=3, extra_resources={2: {"GPU": 1.0}})
    (oid,) = host.submit(node=0, resources={"CPU": 1.0, "GPU": 1.0})
    host.run()
    assert host.ready[oid].node == 2
    scheduled = [
        c for c in host.commands if isinstance(c, Send) and isinstance(c.msg, ScheduleTask)
    ]
    assert len(scheduled) == 1


def test_tasks_queued_for_resources_start_in_fifo_order() -> None:
    host = FakeHost(nodes=1, cpus=1, config=CoreConfig(spillback_threshold=100))
    oids = [host.submit(duration=1.0, name=f"t{i}")[0] for i in range(5)]
    host.run()
    order = [d.spec.name for d in host.dispatched]
    assert order == [f"t{i}" for i in range(5)]
    assert [host.ready[o].result.payload for o in oids] == [f"value-of-t{i}" for i in range(5)]


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_every_policy_completes_a_workload(policy: str) -> None:
    host = FakeHost(nodes=4, cpus=2, config=CoreConfig(policy=policy, spillback_threshold=1))
    oids = [host.submit(node=i % 4, duration=0.1, name=f"t{i}")[0] for i in range(40)]
    host.run()
    assert all(host.ready[o].error_kind is None for o in oids)
    if policy in ("centralized", "random", "power_of_two"):
        assert host.gs.placed == 40  # every task went through the global scheduler


def test_unknown_policy_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="bottom_up"):
        make_policy(CoreConfig(policy="fastest"))


def test_sampling_policies_are_deterministic_for_a_seed() -> None:
    views = [NodeView(i, 100 + i, {"CPU": 4.0}, queued=i % 3) for i in range(50)]
    spec = TaskSpec(task_id=1, owner=0, owner_node=0)
    for name in POLICIES:
        policy = make_policy(CoreConfig(policy=name))
        a = [policy.choose(views, spec, random.Random(3))[0].node for _ in range(5)]
        b = [policy.choose(views, spec, random.Random(3))[0].node for _ in range(5)]
        assert a == b


def test_every_policy_is_built_from_the_config() -> None:
    for name in POLICIES:
        config = CoreConfig(policy=name)
        assert make_policy(config).config is config


def test_the_sample_size_reaches_every_sampling_policy() -> None:
    """A sample of every node finds the least loaded one; a sample of one is a random pick."""
    views = [NodeView(i, 100 + i, {"CPU": 4.0}, queued=5) for i in range(8)]
    views[5].queued = 0
    spec = TaskSpec(task_id=1, owner=0, owner_node=0)
    assert policies_with("sample_size") == ["bottom_up", "locality", "power_of_two"]
    for name in policies_with("sample_size"):
        everyone = make_policy(CoreConfig(policy=name, sample_size=1000))
        assert everyone.choose(views, spec, random.Random(0))[0].node == 5
        one = make_policy(CoreConfig(policy=name, sample_size=1))
        picks = {one.choose(views, spec, random.Random(seed))[0].node for seed in range(40)}
        assert len(picks) > 2


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_a_bad_sample_size_is_refused(size: object) -> None:
    with pytest.raises(ValueError, match="sample_size: expected an integer >= 1"):
        make_policy(CoreConfig(policy="power_of_two", sample_size=size))  # type: ignore[arg-type]


def test_centralized_picks_the_least_loaded_node() -> None:
    views = [NodeView(i, 100 + i, {"CPU": 4.0}, queued=5) for i in range(10)]
    views[7].queued = 0
    spec = TaskSpec(task_id=1, owner=0, owner_node=0)
    node, reason = make_policy(CoreConfig(policy="centralized")).choose(
        views, spec, random.Random(0)
    )
    assert node.node == 7 and "least loaded" in reason


def test_explain_says_why_a_task_is_queued() -> None:
    host = FakeHost(nodes=1, cpus=1, config=CoreConfig(spillback_threshold=10))
    host.submit(duration=5.0, name="first")
    (second,) = host.submit(duration=5.0, name="second")
    host.run(until=1.0)
    raylet = host.raylets[0]
    queued_task = second >> 8
    assert "queued on node 0" in raylet.explain(queued_task)
    assert "needs {CPU: 1}" in raylet.explain(queued_task)
    assert "task was submitted" in host.owners[0].explain(second)
    running = next(iter(raylet.running))
    assert raylet.explain(running).startswith("running on node 0")


def test_resource_reports_reach_the_global_scheduler_when_timers_run() -> None:
    host = FakeHost(nodes=2, timers=True, config=CoreConfig(report_interval=0.05))
    host.submit(duration=1.0)
    host.run(until=0.3)
    view = host.gs.views[0]
    assert view.running == 1 and view.available == {"CPU": 1.0}
    assert host.gcs.tasks, "task events should have been flushed to the GCS task table"


def test_a_blocked_worker_lends_its_cpu_to_the_tasks_it_waits_for() -> None:
    from runtime.core.messages import WorkerBlocked, WorkerUnblocked

    host = FakeHost(nodes=1, cpus=1, config=CoreConfig(spillback_threshold=100))
    (parent,) = host.submit(duration=10.0, name="parent")
    (child,) = host.submit(duration=1.0, name="child")
    host.run(until=0.5)
    assert [d.spec.name for d in host.dispatched] == ["parent"]
    parent_tid = parent >> 8
    host.inject(0, WorkerBlocked(parent_tid))
    assert [d.spec.name for d in host.dispatched] == ["parent", "child"]
    host.run(until=2.0)
    assert host.ready[child].error_kind is None
    host.inject(0, WorkerUnblocked(parent_tid))
    assert host.raylets[0].available == {"CPU": 0.0}
    host.run()
    assert host.raylets[0].available == {"CPU": 1.0}
    host.inject(0, WorkerBlocked(parent_tid))  # already finished: ignored
    assert host.raylets[0].available == {"CPU": 1.0}


def test_a_lone_node_never_spills_to_the_global_scheduler() -> None:
    host = FakeHost(nodes=1, cpus=1, config=CoreConfig(spillback_threshold=0))
    oids = [host.submit(duration=0.1, name=f"t{i}")[0] for i in range(10)]
    host.run()
    assert host.raylets[0].spilled == 0 and host.gs.placed == 0
    assert all(host.ready[o].error_kind is None for o in oids)
    assert "no other node" in host.dispatched[-1].spec.reason


def test_a_raylet_learns_its_peers_from_the_gcs_and_forgets_dead_ones() -> None:
    host = FakeHost(nodes=3)
    assert host.raylets[0].peers == {1, 2}
    host.kill_node(2)
    host.run()
    assert host.raylets[0].peers == {1}
