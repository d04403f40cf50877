"""`runtime.core.explain`: why a task is pending or ran where it did, and the GCS task table."""

from __future__ import annotations

from typing import Any

from runtime.core import explain as ex
from runtime.core.config import CoreConfig
from runtime.core.gcs import TASK_STATE_RANK
from runtime.core.ids import object_id
from runtime.core.placement import PlacementGroupRecord
from tests.core.fake_host import FakeHost


def _explain(host: FakeHost, oid: int) -> ex.Explanation:
    raylets = {r.node: r for r in host.raylets}
    return ex.explain_object(oid, host.owners, raylets, host.gcs, host.gs)


def _task(host: FakeHost, tid: int) -> ex.Explanation:
    raylets = {r.node: r for r in host.raylets}
    return ex.explain_task(tid, host.owners, raylets, host.gcs, host.gs)


def test_running_and_queued_tasks_say_where_and_what_they_lack() -> None:
    host = FakeHost(nodes=1, cpus=1, config=CoreConfig(spillback_threshold=10))
    (first,) = host.submit(duration=5.0, name="first")
    (second,) = host.submit(duration=5.0, name="second", resources={"CPU": 1.0})
    host.run(until=1.0)
    running = _explain(host, first)
    assert running.cause == ex.RUNNING and running.state == "RUNNING"
    assert running.node == 0 and running.reason.startswith("local")
    assert "running on node 0" in str(running)
    queued = _explain(host, second)
    assert queued.cause == ex.QUEUED_FOR_RESOURCES
    assert queued.state == "PENDING_NODE_ASSIGNMENT"
    assert queued.needs == {"CPU": 1.0} and queued.missing == {"CPU": 1.0}
    assert queued.available == {"CPU": 0.0} and queued.ahead == 0
    assert "short of {CPU: 1}" in queued.text
    assert queued.task is not None and queued.task.kind == "task"
    assert queued.as_dict()["cause"] == ex.QUEUED_FOR_RESOURCES


def test_a_task_waiting_for_arguments_names_them() -> None:
    host = FakeHost(nodes=1, cpus=2)
    (producer,) = host.submit(duration=5.0, name="producer")
    (consumer,) = host.submit(duration=1.0, name="consumer", arg_refs=(producer,))
    host.run(until=1.0)
    waiting = _explain(host, consumer)
    assert waiting.cause == ex.WAITING_FOR_ARGUMENTS
    assert waiting.state == "PENDING_ARGS_AVAIL"
    assert waiting.waiting_for == [f"{producer:032x}"]
    assert f"{producer:x}" in str(waiting)


def test_a_task_fetching_a_remote_argument_says_so() -> None:
    host = FakeHost(nodes=2, cpus=1, transfer_time=5.0, extra_resources={1: {"X": 1.0}})
    resources = {"CPU": 1.0, "X": 1.0}  # only node 1 has X: the value is stored there
    (big,) = host.submit(duration=0.1, name="big", output_sizes=(10 << 20,), resources=resources)
    host.run(until=1.0)
    (reader,) = host.submit(duration=0.1, name="reader", arg_refs=(big,))
    host.run(until=2.0)
    fetching = _explain(host, reader)
    assert fetching.cause == ex.FETCHING_ARGUMENTS, fetching.text
    assert fetching.waiting_for == [f"{big:032x}"]
    assert fetching.node == 0


def test_finished_and_failed_tasks_say_where_they_ran_and_how_they_ended() -> None:
    host = FakeHost(nodes=1, cpus=1, timers=True)
    (ok,) = host.submit(duration=0.1, name="ok")
    (bad,) = host.submit(duration=0.1, name="bad", function="fail", max_retries=0)
    (huge,) = host.submit(duration=0.1, name="huge", resources={"CPU": 64.0})
    host.run(until=2.0)
    done = _explain(host, ok)
    assert done.cause == ex.FINISHED and done.state == "FINISHED" and done.node == 0
    assert "finished on node 0" in done.text and done.reason
    failed = _explain(host, bad)
    assert failed.cause == ex.FAILED and failed.error_kind == "application"
    infeasible = _explain(host, huge)
    assert infeasible.cause == ex.INFEASIBLE and "64" in infeasible.text


def test_a_task_spilled_to_the_global_scheduler_says_so() -> None:
    config = CoreConfig(spillback_threshold=0)
    host = FakeHost(nodes=2, cpus=1, latency=0.5, config=config, timers=True)
    host.submit(duration=5.0, name="busy")
    host.run(until=1.5)
    (spilled,) = host.submit(duration=1.0, name="spilled")
    host.run(until=host.now + 0.75)  # at the raylet: spilled, not yet placed
    found = _explain(host, spilled)
    assert found.cause == ex.AT_GLOBAL_SCHEDULER, found.text
    assert found.spills >= 1 and found.reason.startswith("spill")
    host.run(until=host.now + 5.0)
    placed = _explain(host, spilled)
    assert placed.cause in (ex.RUNNING, ex.FINISHED) and placed.node == 1


def test_actor_explanations_follow_its_lifecycle() -> None:
    host = FakeHost(nodes=1, cpus=1)
    actor = host.create_actor(duration=0.5, name="Worker")
    raylets = {r.node: r for r in host.raylets}
    pending = ex.explain_actor(actor, host.owners, raylets, host.gcs, host.gs)
    assert pending.state == "PENDING_CREATION" and pending.cause != ex.RUNNING
    host.run(until=2.0)
    alive = ex.explain_actor(actor, host.owners, raylets, host.gcs, host.gs)
    assert alive.state == "ALIVE" and alive.node == 0 and "alive on node 0" in alive.text
    (call,) = host.call(actor, duration=5.0, name="Worker.work")
    (later,) = host.call(actor, duration=1.0, name="Worker.work")
    host.run(until=3.0)
    assert _explain(host, call).cause == ex.RUNNING
    queued = _explain(host, later)
    assert queued.cause == ex.ACTOR_QUEUE and queued.ahead >= 1
    unknown = ex.explain_actor(12345, host.owners, raylets, host.gcs)
    assert unknown.cause == ex.UNKNOWN


def test_unknown_task_and_placement_group() -> None:
    host = FakeHost(nodes=1)
    assert _task(host, 987654).cause == ex.UNKNOWN
    assert ex.explain_placement_group(5, host.gcs).cause == ex.UNKNOWN


def test_placement_group_records_are_explained_from_the_gcs_table() -> None:
    host = FakeHost(nodes=1)
    pending = PlacementGroupRecord(7, "pg", [{"CPU": 8.0}], "PACK", None, -1)
    pending.reason = "infeasible: no node has {CPU: 8}"
    placed = PlacementGroupRecord(9, "", [{"CPU": 1.0}] * 2, "SPREAD", None, -1, "CREATED")
    placed.bundle_nodes = [0, 0]
    host.gcs.placement_groups.update({7: pending, 9: placed})
    found = ex.explain_placement_group(7, host.gcs)
    assert found.cause == ex.INFEASIBLE and found.state == "PENDING"
    assert "{CPU: 8}" in found.text and "PACK" in found.text
    ok = ex.explain_placement_group(9, host.gcs)
    assert ok.cause == ex.RUNNING and ok.node == 0 and "nodes [0, 0]" in ok.text


def test_task_table_records_name_kind_errors_and_only_moves_forward() -> None:
    host = FakeHost(nodes=1, cpus=1, timers=True)
    (ok,) = host.submit(duration=0.1, name="ok")
    (bad,) = host.submit(duration=0.1, name="bad", function="fail", max_retries=0)
    (blocked,) = host.submit(duration=0.1, name="blocked", arg_refs=(bad,))
    host.run(until=2.0)
    tasks = host.gcs.tasks
    assert tasks[ok >> 8].state == "FINISHED" and tasks[ok >> 8].name == "ok"
    assert tasks[ok >> 8].node == 0 and tasks[ok >> 8].reason
    assert tasks[bad >> 8].state == "FAILED" and tasks[bad >> 8].error_kind == "application"
    failed_dep = tasks[blocked >> 8]
    assert failed_dep.state == "FAILED" and failed_dep.node == -1  # failed at its owner
    # a stale, earlier state never overwrites a later one
    out: list[Any] = []
    spec = host.owners[0].objects[ok].lineage or _spec_of(host, ok)
    from runtime.core.messages import TaskEvents

    host.gcs.handle(
        TaskEvents(-1, [(ok >> 8, "PENDING_NODE_ASSIGNMENT", -1, 0.0, spec, 0, None, None)]),
        host.now,
        out,
    )
    assert tasks[ok >> 8].state == "FINISHED"
    assert TASK_STATE_RANK["FINISHED"] > TASK_STATE_RANK["RUNNING"]


def _spec_of(host: FakeHost, oid: int) -> Any:
    for cmd in host.dispatched:
        if object_id(cmd.spec.task_id, 1) == oid:
            return cmd.spec
    raise AssertionError(f"no dispatch of {oid:x}")


def test_pending_tasks_reach_the_task_table_from_their_owner() -> None:
    host = FakeHost(nodes=1, cpus=1, timers=True)
    (producer,) = host.submit(duration=5.0, name="producer")
    (consumer,) = host.submit(duration=1.0, name="consumer", arg_refs=(producer,))
    host.run(until=1.0)
    tasks = host.gcs.tasks
    assert consumer >> 8 not in tasks  # pending tasks cost nothing until asked for
    out: list[Any] = []
    host.owners[0].flush_task_events(host.now, out, pending=True)
    host.raylets[0].flush_task_events(host.now, out)
    host._effect(out)
    host.run(until=host.now + 0.01)
    assert tasks[consumer >> 8].state == "PENDING_ARGS_AVAIL"
    assert tasks[producer >> 8].state == "RUNNING"
    host.run(until=10.0)
    assert tasks[consumer >> 8].state == "FINISHED"


def test_wait_breakdown_accumulates_per_cause_in_the_core() -> None:
    host = FakeHost(nodes=1, cpus=1, config=CoreConfig(spillback_threshold=10))
    host.submit(duration=2.0, name="a")
    host.submit(duration=1.0, name="b")  # queued 2 s behind a
    host.run(until=10.0)
    waited = host.raylets[0].wait_seconds()
    assert abs(waited["resources"] - (2.0 - 0.0)) < 0.01  # b queued while a ran
    assert waited["arguments"] > 0  # the submission messages (latency)
    assert waited["transfers"] == waited["actor_queue"] == waited["global_scheduler"] == 0
